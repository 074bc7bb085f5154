package sshsession

import (
	"bytes"
	"context"
	"io"
	"testing"

	"golang.org/x/crypto/ssh"
)

// plainChannel hides a channel's io.WriterTo, as upstream x/crypto's
// channels have none.
type plainChannel struct{ ssh.Channel }

func (plainChannel) WriteTo() {} // shadows the embedded method: no io.WriterTo

// TestSessionWriteTo checks that WriteTo hands over the client's stdin
// whole, up to the client's EOF, both through the channel's own WriteTo
// and through the fallback for channels without one.
func TestSessionWriteTo(t *testing.T) {
	stdin := make([]byte, 300<<10+7)
	for i := range stdin {
		stdin[i] = byte(i * 13)
	}
	fork := forkedXCrypto
	for _, plain := range []bool{false, true} {
		name := "channel WriteTo"
		if plain {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			type result struct {
				n    int64
				err  error
				data []byte
			}
			got := make(chan result, 1)
			h := &testHandler{serve: func(s *Session) {
				if plain {
					s = newSession(s.Context(), s.conn, plainChannel{s.ch})
				}
				if _, ok := s.ch.(io.WriterTo); ok != (fork && !plain) {
					t.Errorf("channel has WriteTo: %v, want %v", ok, fork && !plain)
				}
				var buf bytes.Buffer
				n, err := s.WriteTo(&buf)
				got <- result{n, err, buf.Bytes()}
			}}
			sv := startServer(t, context.Background(), nil, h)
			ch, reqs := openSession(t, sv.client)
			go ssh.DiscardRequests(reqs)
			if !sendRequest(t, ch, &ShellRequest{}) {
				t.Fatal("shell refused")
			}
			for b := stdin; len(b) > 0; {
				n := min(len(b), 20000)
				if _, err := ch.Write(b[:n]); err != nil {
					t.Fatal(err)
				}
				b = b[n:]
			}
			ch.CloseWrite()
			r := waitFor(t, got, "WriteTo")
			if r.err != nil || r.n != int64(len(stdin)) || !bytes.Equal(r.data, stdin) {
				t.Fatalf("WriteTo = %d bytes, %v; data equal: %v", r.n, r.err, bytes.Equal(r.data, stdin))
			}
			ch.Close()
		})
	}
}
