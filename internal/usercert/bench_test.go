package usercert

import (
	"net/netip"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// BenchmarkIssue is the signing cost of one upstream login: a fresh
// ed25519 key pair and the certificate, signed by an ed25519 CA.
func BenchmarkIssue(b *testing.B) {
	a, err := Load(filepath.Join(b.TempDir(), "user_ca"), "ed25519", "")
	if err != nil {
		b.Fatal(err)
	}
	r := Request{Login: "deploy", KeyID: KeyID("alice", "gw1/ssh-in:42"), Source: netip.MustParseAddr("127.0.0.1"), Grants: Grants{PTY: true}}
	b.ReportAllocs()
	for b.Loop() {
		r.Now = time.Now()
		if _, err := a.Issue(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpstreamLogin is the upstream setup the signing cost adds to:
// TCP connect, SSH handshake and public key authentication against
// OpenSSH's sshd on loopback, with the static key (identity) or with a
// certificate issued for each login (certificate, issuing included).
func BenchmarkUpstreamLogin(b *testing.B) {
	dir := b.TempDir()
	a, err := Load(filepath.Join(dir, "user_ca"), "ed25519", "")
	if err != nil {
		b.Fatal(err)
	}
	static, _ := sshtest.NewKey(b, dir, "identity")
	trusted := filepath.Join(dir, "user_ca.pub")
	sshd := sshtest.StartSshd(b, sshtest.SshdOptions{
		AuthorizedKeys: []ssh.PublicKey{static.PublicKey()},
		Config:         []string{"TrustedUserCAKeys " + trusted, "MaxStartups 100"},
	})
	u, err := user.Current()
	if err != nil {
		b.Fatal(err)
	}
	login := func(b *testing.B, s ssh.Signer) {
		c, err := ssh.Dial("tcp", sshd.Addr, &ssh.ClientConfig{User: u.Username, Auth: []ssh.AuthMethod{ssh.PublicKeys(s)}, HostKeyCallback: ssh.FixedHostKey(sshd.HostKey)})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.Run("identity", func(b *testing.B) {
		for b.Loop() {
			login(b, static)
		}
	})
	b.Run("certificate", func(b *testing.B) {
		for b.Loop() {
			cred, err := a.Issue(Request{Login: u.Username, KeyID: "bench", Source: netip.MustParseAddr("127.0.0.1"), Now: time.Now()})
			if err != nil {
				b.Fatal(err)
			}
			login(b, cred.Signer)
		}
	})
}
