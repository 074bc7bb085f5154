package sshsession

import (
	"context"
	"io"
	"testing"
)

// BenchmarkSessionWrite measures stdout throughput from Session.Write, in
// 32 KiB writes (one full x/crypto packet each), to an x/crypto client
// reading over loopback.
func BenchmarkSessionWrite(b *testing.B) {
	const chunk = 32 << 10
	h := &testHandler{serve: func(s *Session) {
		buf := make([]byte, chunk)
		for {
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}}
	sv := startServer(b, context.Background(), nil, h)
	sess, err := sv.client.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sess.Start("bench"); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.ReadFull(out, buf); err != nil {
			b.Fatal(err)
		}
	}
}
