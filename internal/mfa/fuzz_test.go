package mfa

import (
	"strings"
	"testing"
	"time"
)

// FuzzCheck feeds Check what a client may answer to the prompt: it never
// panics, and accepts only one of the codes within the skew.
func FuzzCheck(f *testing.F) {
	key, err := ParseSecret("otpauth://totp/Sluice:alice?secret=JBSWY3DPEHPK3PXP&issuer=Sluice&period=30&digits=6&algorithm=SHA1")
	if err != nil {
		f.Fatal(err)
	}
	at := time.Unix(1_800_000_000, 0)
	valid := map[string]bool{}
	for c := uint64(at.Unix())/period - skew; c <= uint64(at.Unix())/period+skew; c++ {
		s, err := code(key, c)
		if err != nil {
			f.Fatal(err)
		}
		valid[s] = true
		f.Add(s)
	}
	for _, s := range []string{"", " ", "000000", "12345", "1234567", "１２３４５６", "12 456", "\x00\x00\x00\x00\x00\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		v := NewVerifier(func() time.Time { return at })
		if err := v.Check("alice", key, answer); err == nil && !valid[strings.TrimSpace(answer)] {
			t.Errorf("accepted %q, which is none of the valid codes", answer)
		}
	})
}
