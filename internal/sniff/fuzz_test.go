package sniff

import (
	"testing"
)

// check fails when a parser's answer breaks its contract.
func check(t *testing.T, name string, b []byte, r Result, st Status) {
	if st != No && st != More && st != Match {
		t.Fatalf("%s(%q): status %d", name, b, st)
	}
	if st == Match && r.Protocol == Unknown {
		t.Fatalf("%s(%q): matched Unknown", name, b)
	}
}

func FuzzClient(f *testing.F) {
	f.Add([]byte("SSH-2.0-x\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add(pgStartup("user", "u", "database", "d"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, done := Client(b)
		if !done && r.Protocol != Unknown {
			t.Fatalf("Client(%q): undecided but %s", b, r.Protocol)
		}
		// A decided prefix stays decided the same way for its protocol:
		// the parsers never read beyond what they need.
		if done && r.Protocol != Unknown {
			r2, done2 := Client(append(b[:len(b):len(b)], 'x'))
			if !done2 || r2.Protocol != r.Protocol {
				t.Fatalf("Client(%q) = %s, but with one more byte %s %v", b, r.Protocol, r2.Protocol, done2)
			}
		}
	})
}

func FuzzSSH(f *testing.F) {
	f.Add([]byte("SSH-2.0-x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, st := parseSSH(b)
		check(t, "parseSSH", b, r, st)
		_ = Server(b)
	})
}

func FuzzTLS(f *testing.F) {
	f.Add(clientHelloBytes(f, "a.corp"))
	f.Add(splitRecords(clientHelloBytes(f, "b.corp"), 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, st := parseTLS(b)
		check(t, "parseTLS", b, r, st)
		if r.SNI != "" {
			if _, ok := dnsName(r.SNI); !ok {
				t.Fatalf("parseTLS(%q): SNI %q is no DNS name", b, r.SNI)
			}
		}
	})
}

func FuzzHTTP(f *testing.F) {
	f.Add([]byte("GET http://a/ HTTP/1.1\r\nHost: a:80\r\nX: y\r\n\r\n"))
	f.Add([]byte("PUT / HTTP/1.0\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, st := parseHTTP(b)
		check(t, "parseHTTP", b, r, st)
		if r.Malformed != "" && r.Host != "" {
			t.Fatalf("parseHTTP(%q): malformed %q yet Host %q", b, r.Malformed, r.Host)
		}
	})
}

func FuzzPostgres(f *testing.F) {
	f.Add(pgStartup("user", "u", "database", "d", "options", "-c x=y"))
	f.Add([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, st := parsePostgres(b)
		check(t, "parsePostgres", b, r, st)
	})
}
