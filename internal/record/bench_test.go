package record

import (
	"crypto/rand"
	"testing"
)

// BenchmarkChannelOutput is the data path's cost of recording a channel's
// output in 32 KiB writes (an SSH packet's worth): past the cap of a
// channel without a pty only the SHA-256; a pty channel is recorded whole
// (JSON, gzip, the writer), random bytes (each one not UTF-8 becomes a
// six-byte \ufffd) or text.
func BenchmarkChannelOutput(b *testing.B) {
	for _, bc := range []struct {
		name string
		pty  bool
		text bool
	}{{"past the cap", false, false}, {"pty, random bytes", true, false}, {"pty, text", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := Create(b.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{MaxStreamBytes: 1})
			if err != nil {
				b.Fatal(err)
			}
			c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: bc.pty})
			p := make([]byte, 32<<10)
			_, _ = rand.Read(p)
			if bc.text {
				// Log-like lines: letters, digits and spaces that vary.
				const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789    :.-"
				for i := range p {
					p[i] = alphabet[int(p[i])%len(alphabet)]
					if i%80 == 79 {
						p[i] = '\n'
					}
				}
			}
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				c.Output(p)
			}
			c.Close()
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
