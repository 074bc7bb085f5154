package sniff

import "testing"

// BenchmarkClient measures one decision on a stream's first bytes: the
// whole per-stream cost of sniffing (afterwards the relay copies in bulk).
//
//	go test -run '^$' -bench Client -benchmem ./internal/sniff
func BenchmarkClient(b *testing.B) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"tls", clientHelloBytes(b, "www.example.corp")},
		{"http", []byte("GET /index.html HTTP/1.1\r\nHost: intranet\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n")},
		{"postgresql", pgStartup("user", "alice", "database", "sales", "application_name", "psql")},
		{"unknown-32KiB", make([]byte, 32<<10)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, done := Client(tc.in); !done {
					b.Fatal("undecided")
				}
			}
		})
	}
}

// BenchmarkClientTrickled measures the worst a client can make the relay
// pay: it asks for a decision after every byte (the relay does, on each
// channel data message) of a first message that never completes within
// MaxClientBytes. Each op is the whole stream's sniffing.
//
//	go test -run '^$' -bench ClientTrickled ./internal/sniff
func BenchmarkClientTrickled(b *testing.B) {
	for _, tc := range []struct{ name, start string }{
		{"tls-one-record", "\x16\x03\x01\x40\x00\x01\x00\x3f\xfc\x03\x03"},
		{"http-endless-header", "GET / HTTP/1.1\r\nX: "},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 0, MaxClientBytes)
			for b.Loop() {
				buf = append(buf[:0], tc.start...)
				for len(buf) < MaxClientBytes-1 {
					buf = append(buf, 'a')
					if _, done := Client(buf); done {
						b.Fatalf("decided after %d bytes", len(buf))
					}
				}
			}
		})
	}
}
