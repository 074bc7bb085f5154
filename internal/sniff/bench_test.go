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
