package sshproxy

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestParseDirectTCPIP(t *testing.T) {
	good := ssh.Marshal(directTCPIP{"db.internal", 5432, "127.0.0.1", 40000})
	tests := []struct {
		name    string
		payload []byte
		wantErr bool
	}{
		{"ok", good, false},
		{"truncated", good[:len(good)-2], true},
		{"trailing", append(append([]byte{}, good...), 0), true},
		{"port 0", ssh.Marshal(directTCPIP{"h", 0, "o", 1}), true},
		{"port too big", ssh.Marshal(directTCPIP{"h", 70000, "o", 1}), true},
		{"control byte", ssh.Marshal(directTCPIP{"h\n", 22, "o", 1}), true},
		{"space", ssh.Marshal(directTCPIP{"a b", 22, "o", 1}), true},
		{"long host", ssh.Marshal(directTCPIP{string(bytes.Repeat([]byte("a"), 256)), 22, "o", 1}), true},
		{"empty", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseDirectTCPIP(tc.payload)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got err %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (m.Host != "db.internal" || m.Port != 5432) {
				t.Fatalf("got %+v, want db.internal:5432", m)
			}
		})
	}
}

func TestParseTCPIPForward(t *testing.T) {
	m, err := parseTCPIPForward(ssh.Marshal(tcpipForward{"localhost", 0}))
	if err != nil || m.Host != "localhost" || m.Port != 0 {
		t.Fatalf("got %+v, %v; want localhost:0, nil", m, err)
	}
	if _, err := parseTCPIPForward([]byte{0, 0, 0, 9, 'x'}); err == nil {
		t.Fatal("got nil error for a truncated payload, want an error")
	}
}

func FuzzParseDirectTCPIP(f *testing.F) {
	f.Add(ssh.Marshal(directTCPIP{"db.internal", 5432, "127.0.0.1", 40000}))
	f.Add(ssh.Marshal(directTCPIP{"[::1]", 22, "", 0}))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseDirectTCPIP(b)
		if err != nil {
			return
		}
		again, err := parseDirectTCPIP(ssh.Marshal(m))
		if err != nil || again != m {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, m)
		}
	})
}

func FuzzParseTCPIPForward(f *testing.F) {
	f.Add(ssh.Marshal(tcpipForward{"localhost", 8080}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseTCPIPForward(b)
		if err != nil {
			return
		}
		again, err := parseTCPIPForward(ssh.Marshal(m))
		if err != nil || again != m {
			t.Fatalf("round trip: got %+v, %v; want %+v", again, err, m)
		}
	})
}
