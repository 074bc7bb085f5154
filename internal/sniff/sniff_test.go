package sniff

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// clientHello returns the first bytes crypto/tls sends for serverName.
func clientHelloBytes(t testing.TB, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		_ = c.Handshake()
	}()
	buf := make([]byte, MaxClientBytes)
	var got []byte
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := b.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the ClientHello: %v", err)
		}
		if r, done := Client(got); done {
			_ = r
			return got
		}
	}
}

// splitRecords re-frames a single-record ClientHello as records of size
// bytes of handshake each (RFC 8446 §5.1 allows it).
func splitRecords(hello []byte, size int) []byte {
	hs := hello[recordHeaderLen:]
	var out []byte
	for len(hs) > 0 {
		n := min(size, len(hs))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, hs[:n]...)
		hs = hs[n:]
	}
	return out
}

func pgStartup(params ...string) []byte {
	body := binary.BigEndian.AppendUint32(nil, 3<<16)
	for _, p := range params {
		body = append(append(body, p...), 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

func TestClient(t *testing.T) {
	hello := clientHelloBytes(t, "Web.Corp.")
	tests := []struct {
		name string
		in   []byte
		want Result
		done bool
	}{
		{"empty", nil, Result{Protocol: Unknown}, false},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), Result{Protocol: SSH}, true},
		{"ssh prefix", []byte("SS"), Result{Protocol: Unknown, Partial: SSH}, false},
		{"tls", hello, Result{Protocol: TLS, SNI: "web.corp"}, true},
		{"tls split in records of 1 byte", splitRecords(hello, 1), Result{Protocol: TLS, SNI: "web.corp"}, true},
		{"tls half", hello[:len(hello)/2], Result{Protocol: Unknown, Partial: TLS}, false},
		{"tls oversize", []byte{22, 3, 1, 0, 4, 1, 0x01, 0, 0}, Result{Protocol: TLS, Malformed: "ClientHello larger than 16 KiB"}, true},
		{"tls oversize, first record cut", []byte{22, 3, 1, 0x40, 0, 1, 0x10, 0, 0}, Result{Protocol: TLS, Malformed: "ClientHello larger than 16 KiB"}, true},
		{"tls header only", []byte{22, 3, 1, 0, 9}, Result{Protocol: Unknown, Partial: TLS}, false},
		{"tls not a hello", []byte{22, 3, 1, 0, 4, 2, 0, 0, 0}, Result{Protocol: Unknown}, true},
		{"http", []byte("GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: Web.Corp:8080\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Host: "web.corp"}, true},
		{"http bare LF", []byte("GET / HTTP/1.1\nHost: a\n\n"), Result{Protocol: HTTP, Method: "GET", Host: "a"}, true},
		{"http absolute form", []byte("GET http://b.corp/x HTTP/1.1\r\nHost: b.corp\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Host: "b.corp"}, true},
		{"http absolute form disagrees", []byte("GET http://evil/x HTTP/1.1\r\nHost: b.corp\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Host: "", Malformed: "request target disagrees with Host"}, true},
		{"http duplicate host", []byte("GET / HTTP/1.1\r\nHost: good\r\nHost: evil\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Malformed: "more than one Host header"}, true},
		{"http folded host", []byte("GET / HTTP/1.1\r\nHost: good\r\n evil\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Malformed: "folded header line"}, true},
		{"http space before colon", []byte("GET / HTTP/1.1\r\nHost : evil\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Malformed: "malformed header line"}, true},
		{"http no host", []byte("GET / HTTP/1.1\r\n\r\n"), Result{Protocol: HTTP, Method: "GET", Malformed: "no Host header"}, true},
		{"http/1.0 no host", []byte("GET / HTTP/1.0\r\n\r\n"), Result{Protocol: HTTP, Method: "GET"}, true},
		{"http headers pending", []byte("POST / HTTP/1.1\r\nHost: a\r\n"), Result{Protocol: Unknown, Partial: HTTP}, false},
		{"http method pending", []byte("GE"), Result{Protocol: Unknown, Partial: HTTP}, false},
		{"pg startup", pgStartup("user", "alice", "database", "sales"), Result{Protocol: PostgreSQL, User: "alice", Database: "sales"}, true},
		{"pg duplicate user", pgStartup("user", "alice", "user", "postgres"), Result{Protocol: PostgreSQL, User: "alice", Malformed: "duplicate startup parameter user"}, true},
		{"pg sslrequest", []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}, Result{Protocol: PostgreSQL, Encrypted: true}, true},
		{"pg gssencrequest", []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}, Result{Protocol: PostgreSQL, Encrypted: true}, true},
		{"pg pending", pgStartup("user", "alice")[:10], Result{Protocol: Unknown, Partial: PostgreSQL}, false},
		{"line protocol", []byte("ping\n"), Result{Protocol: Unknown}, true},
		{"binary", []byte{0x80, 1, 2}, Result{Protocol: Unknown}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done := Client(tt.in)
			if got != tt.want || done != tt.done {
				t.Errorf("got %+v %v, want %+v %v", got, done, tt.want, tt.done)
			}
		})
	}
}

func TestClientHelloEveryPrefixWaits(t *testing.T) {
	// Tiny TCP segments: every prefix of a hello asks for more, and the
	// whole decides the same as one segment.
	hello := splitRecords(clientHelloBytes(t, "a.corp"), 7)
	for i := range len(hello) {
		if r, done := Client(hello[:i]); done {
			t.Fatalf("prefix %d of %d: got %+v decided, want more", i, len(hello), r)
		}
	}
	if r, done := Client(hello); !done || r.SNI != "a.corp" {
		t.Fatalf("got %+v %v, want SNI a.corp", r, done)
	}
}

func TestServer(t *testing.T) {
	for in, want := range map[string]Protocol{
		"SSH-2.0-OpenSSH_9.6\r\n":            SSH,
		"hello first\r\nSSH-2.0-x\r\n":       SSH,
		"220 smtp ready\r\n":                 Unknown,
		"":                                   Unknown,
		"\x00\x00\x00\x4a\x0a8.0.36\x00....": Unknown,
	} {
		if got := Server([]byte(in)).Protocol; got != want {
			t.Errorf("Server(%q): got %s, want %s", in, got, want)
		}
	}
}
