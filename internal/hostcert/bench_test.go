package hostcert

import (
	"testing"
	"time"
)

// BenchmarkCertify is what a jump adds to its inner connection's setup
// for the host certificate: one ed25519 signature per gateway host key.
func BenchmarkCertify(b *testing.B) {
	a, err := Load(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	hostKey, err := Load(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	principals := Principals("db1", "10.0.0.5:22")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Certify(hostKey.ca, principals, "db1 gw1/ssh-in:1/ssh/direct-tcpip:0/ssh", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}
