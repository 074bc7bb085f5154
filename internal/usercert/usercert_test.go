package usercert

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func loadCA(t *testing.T) (*Authority, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "user_ca")
	a, err := Load(path, "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	return a, path
}

// addrMeta is the ssh.ConnMetadata CertChecker.Authenticate reads.
type addrMeta struct {
	ssh.ConnMetadata
	user   string
	remote net.Addr
}

func (m addrMeta) User() string         { return m.user }
func (m addrMeta) RemoteAddr() net.Addr { return m.remote }

func TestIssue(t *testing.T) {
	a, _ := loadCA(t)
	now := time.Now()
	cred, err := a.Issue(Request{
		Login: "deploy", KeyID: KeyID("alice", "gw1/ssh-in:42"), Source: netip.MustParseAddr("::ffff:127.0.0.1"),
		Grants: Grants{PTY: true, X11Forwarding: true}, Now: now, Lifetime: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := cred.Cert
	if c.KeyId != "alice gw1/ssh-in:42" || !slices.Equal(c.ValidPrincipals, []string{"deploy"}) || c.CertType != ssh.UserCert {
		t.Errorf("got key id %q principals %q type %d, want %q [deploy] %d", c.KeyId, c.ValidPrincipals, c.CertType, "alice gw1/ssh-in:42", ssh.UserCert)
	}
	if got, want := c.CriticalOptions[OptSourceAddress], "127.0.0.1/32"; got != want {
		t.Errorf("source-address: got %q, want %q", got, want)
	}
	var ext []string
	for k := range c.Extensions {
		ext = append(ext, k)
	}
	slices.Sort(ext)
	if want := []string{ExtX11Forwarding, ExtPTY}; !slices.Equal(ext, want) {
		t.Errorf("extensions: got %q, want %q", ext, want)
	}
	if got, want := int64(c.ValidAfter), now.Add(-Skew).Unix(); got != want {
		t.Errorf("valid after: got %d, want %d", got, want)
	}
	if got, want := int64(c.ValidBefore), now.Add(10*time.Second+Skew).Unix(); got != want {
		t.Errorf("valid before: got %d, want %d", got, want)
	}
	if !bytes.Equal(c.SignatureKey.Marshal(), a.Keys()[0].Marshal()) {
		t.Error("certificate not signed by the CA")
	}
	if cred.Used() {
		t.Error("Used before signing: got true, want false")
	}
	if _, err := cred.Signer.Sign(nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if !cred.Used() {
		t.Error("Used after signing: got false, want true")
	}

	// What sshd checks, checked by x/crypto's own CertChecker (but for
	// source-address, which x/crypto's server checks outside it; the
	// gateway's tests show sshd refusing another source).
	checker := func(at time.Time) *ssh.CertChecker {
		return &ssh.CertChecker{
			IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), a.Keys()[0].Marshal()) },
			Clock:           func() time.Time { return at },
		}
	}
	from := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 5000} }
	for _, tc := range []struct {
		name   string
		at     time.Time
		user   string
		remote net.Addr
		ok     bool
	}{
		{"at the login", now, "deploy", from("127.0.0.1"), true},
		{"skewed clock", now.Add(-Skew + time.Second), "deploy", from("127.0.0.1"), true},
		{"other login", now, "root", from("127.0.0.1"), false},
		{"replayed later", now.Add(10*time.Second + Skew + time.Second), "deploy", from("127.0.0.1"), false},
		{"before", now.Add(-Skew - time.Second), "deploy", from("127.0.0.1"), false},
	} {
		_, err := checker(tc.at).Authenticate(addrMeta{user: tc.user, remote: tc.remote}, c)
		if (err == nil) != tc.ok {
			t.Errorf("%s: got err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestIssueDistinct(t *testing.T) {
	a, _ := loadCA(t)
	r := Request{Login: "u", KeyID: "k", Source: netip.MustParseAddr("::1"), Now: time.Now()}
	x, err := a.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cert.Serial == y.Cert.Serial || bytes.Equal(x.Cert.Key.Marshal(), y.Cert.Key.Marshal()) {
		t.Error("two certificates share a serial or a key")
	}
	if got, want := x.Cert.CriticalOptions[OptSourceAddress], "::1/128"; got != want {
		t.Errorf("source-address: got %q, want %q", got, want)
	}
	if len(x.Cert.Extensions) != 0 {
		t.Errorf("extensions without grants: got %v, want none", x.Cert.Extensions)
	}
	if got := int64(x.Cert.ValidBefore) - r.Now.Unix(); got != int64((DefaultLifetime+Skew)/time.Second) {
		t.Errorf("default lifetime: got %ds after now", got)
	}
}

func TestIssueRefuses(t *testing.T) {
	a, _ := loadCA(t)
	if _, err := a.Issue(Request{Login: "", Source: netip.MustParseAddr("127.0.0.1")}); err == nil {
		t.Error("empty login: got a certificate")
	}
	if _, err := a.Issue(Request{Login: "u"}); err == nil {
		t.Error("no source address: got a certificate")
	}
}

func TestGrantsString(t *testing.T) {
	for _, tc := range []struct {
		g    Grants
		want string
	}{
		{Grants{}, "none"},
		{Grants{PTY: true, PortForwarding: true, AgentForwarding: true, X11Forwarding: true}, "permit-pty,permit-port-forwarding,permit-agent-forwarding,permit-X11-forwarding"},
		{Grants{AgentForwarding: true}, "permit-agent-forwarding"},
	} {
		if got := tc.g.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.g, got, tc.want)
		}
		if _, ok := tc.g.Extensions()["permit-user-rc"]; ok {
			t.Errorf("%+v: permit-user-rc granted", tc.g)
		}
	}
}

func TestLoad(t *testing.T) {
	a, path := loadCA(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode: got %#o, want 0600", perm)
	}
	if got := a.Keys()[0].Type(); got != ssh.KeyAlgoED25519 {
		t.Errorf("type: got %s, want %s", got, ssh.KeyAlgoED25519)
	}
	// Loaded again, the same key; the old one listed as previous, by its
	// private key or by its .pub.
	next := filepath.Join(filepath.Dir(path), "user_ca.next")
	for _, prev := range []string{path, path + ".pub"} {
		b, err := Load(next, "ecdsa", prev)
		if err != nil {
			t.Fatal(err)
		}
		keys := b.Keys()
		if len(keys) != 2 || keys[0].Type() != ssh.KeyAlgoECDSA256 || !bytes.Equal(keys[1].Marshal(), a.Keys()[0].Marshal()) {
			t.Errorf("previous %s: got keys %v", prev, keys)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, "ed25519", ""); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("key readable by others: got %v, want a refusal naming 0600", err)
	}
	if _, err := ReadPublicKey(filepath.Join(filepath.Dir(path), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want not exist", err)
	}
	junk := filepath.Join(filepath.Dir(path), "junk")
	if err := os.WriteFile(junk, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPublicKey(junk); err == nil {
		t.Error("junk: got a key")
	}
}

// TestIssueRSA checks that an RSA CA signs with SHA-2, which OpenSSH
// requires of certificates since 8.2 (CASignatureAlgorithms), never with
// SHA-1 ssh-rsa.
func TestIssueRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := New(ca, nil).Issue(Request{Login: "u", KeyID: "k", Source: netip.MustParseAddr("127.0.0.1"), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got := cred.Cert.Signature.Format; got != ssh.KeyAlgoRSASHA256 && got != ssh.KeyAlgoRSASHA512 {
		t.Errorf("signature algorithm: got %s, want rsa-sha2-256 or rsa-sha2-512", got)
	}
}
