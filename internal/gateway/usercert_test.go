package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/usercert"
)

// certWorld is a world whose gateway logs in to the target only with
// certificates of its user CA (state/user_ca, created at start), which
// the target trusts through TrustedUserCAKeys and nothing else.
type certWorld struct {
	*world
	trusted string // the target's TrustedUserCAKeys file
	aux     string // a folder for the test's own files
}

func newCertWorld(t *testing.T, o worldOptions) *certWorld {
	t.Helper()
	aux := t.TempDir()
	trusted := filepath.Join(aux, "trusted_user_ca_keys")
	o.certOnly = true
	o.upstream = "      user_ca: ./state/user_ca\n" + o.upstream
	o.sshdConfig = append([]string{"TrustedUserCAKeys " + trusted, "ExposeAuthInfo yes"}, o.sshdConfig...)
	w := newWorld(t, o)
	cw := &certWorld{world: w, trusted: trusted, aux: aux}
	cw.trust(t, cw.caPublic(t, "state/user_ca"))
	return cw
}

// trust makes the target trust exactly keys (sshd reads the file at each
// login).
func (w *certWorld) trust(t *testing.T, keys ...ssh.PublicKey) {
	t.Helper()
	var b bytes.Buffer
	for _, k := range keys {
		b.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(w.trusted, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ca returns the CA whose private key is at name in the world's folder.
func (w *certWorld) ca(t *testing.T, name string) ssh.Signer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *certWorld) caPublic(t *testing.T, name string) ssh.PublicKey {
	return w.ca(t, name).PublicKey()
}

// received runs a command through the gateway that prints the
// certificate the target authenticated the login with (sshd's
// ExposeAuthInfo), and returns it.
func (w *certWorld) received(t *testing.T) *ssh.Certificate {
	t.Helper()
	r := w.ssh(nil, `cat "$SSH_USER_AUTH"`)
	if r.code != 0 {
		t.Fatalf("ssh through the gateway: exit %d, stderr %q", r.code, r.stderr)
	}
	f := strings.Fields(r.stdout)
	if len(f) < 3 || f[0] != "publickey" {
		t.Fatalf("SSH_USER_AUTH: got %q, want a publickey line", r.stdout)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(f[1] + " " + f[2]))
	if err != nil {
		t.Fatalf("SSH_USER_AUTH: %v", err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		t.Fatalf("SSH_USER_AUTH: got a %s key, want a certificate", k.Type())
	}
	return cert
}

// direct logs in to the target without the gateway, from the address
// from, with signer.
func (w *certWorld) direct(t *testing.T, from string, signer ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", w.sshd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, w.sshd.Addr, &ssh.ClientConfig{
		User:            w.osUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(w.sshd.HostKey),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// resign returns a signer for a copy of cert with a key of the test's own
// (the gateway's never leaves its memory), signed by ca after edit.
func resign(t *testing.T, ca ssh.Signer, cert *ssh.Certificate, edit func(*ssh.Certificate)) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	c := *cert
	c.Key = s.PublicKey()
	c.Permissions = ssh.Permissions{CriticalOptions: maps.Clone(cert.CriticalOptions), Extensions: maps.Clone(cert.Extensions)}
	if edit != nil {
		edit(&c)
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(&c, s)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// upstreamEvent returns the accepted upstream event of the n-th login
// (from 1).
func (w *certWorld) upstreamEvent(t *testing.T, n int) audit.Event {
	t.Helper()
	evs := w.events("upstream", func(e audit.Event) bool { return e.Verdict == audit.Accept })
	if len(evs) < n {
		t.Fatalf("got %d accepted upstream events, want at least %d", len(evs), n)
	}
	return evs[n-1]
}

// TestUserCertLogin logs in through the gateway to an sshd that trusts
// only the gateway's user CA, with a policy that denies a pty and every
// forwarding, and checks the certificate the target received, the sshd
// log, the audit, and that the target itself refuses what the
// certificate leaves out.
func TestUserCertLogin(t *testing.T) {
	t.Parallel()
	w := newCertWorld(t, worldOptions{policy: `      pty: false
      shell: true
      exec: {allow: [".*"]}
`})
	cert := w.received(t)
	e := w.upstreamEvent(t, 1)
	sid := e.SessionID
	if want := "alice " + sid; cert.KeyId != want {
		t.Errorf("key id: got %q, want %q", cert.KeyId, want)
	}
	if !slices.Equal(cert.ValidPrincipals, []string{w.osUser}) || cert.CertType != ssh.UserCert {
		t.Errorf("principals %q type %d: want [%s] user certificate", cert.ValidPrincipals, cert.CertType, w.osUser)
	}
	if got := cert.CriticalOptions[usercert.OptSourceAddress]; got != "127.0.0.1/32" {
		t.Errorf("source-address: got %q, want 127.0.0.1/32 (the gateway's address towards the target)", got)
	}
	if len(cert.Extensions) != 0 {
		t.Errorf("extensions: got %v, want none (no pty, no forwarding, never permit-user-rc)", cert.Extensions)
	}
	after, before := time.Unix(int64(cert.ValidAfter), 0), time.Unix(int64(cert.ValidBefore), 0)
	if now := time.Now(); after.After(now) || before.Before(now) || before.Sub(after) > 5*time.Minute {
		t.Errorf("validity %v to %v: want a few minutes around now", after, before)
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), w.caPublic(t, "state/user_ca").Marshal()) {
		t.Error("certificate not signed by state/user_ca")
	}
	serial := fmt.Sprint(cert.Serial)
	if e.Detail["cert_serial"] != serial || e.Detail["cert_key_id"] != cert.KeyId {
		t.Errorf("upstream audit: got serial %v key id %v, want %s %q", e.Detail["cert_serial"], e.Detail["cert_key_id"], serial, cert.KeyId)
	}
	if want := "ID " + cert.KeyId + " (serial " + serial + ")"; !strings.Contains(w.sshd.Log(t), want) {
		t.Errorf("sshd log does not name the login: no %q in\n%s", want, w.sshd.Log(t))
	}

	// The target refuses a pty to this certificate even from a client
	// that skips the gateway's own check; the same certificate with
	// permit-pty gets one.
	ca := w.ca(t, "state/user_ca")
	for _, withPty := range []bool{false, true} {
		s := resign(t, ca, cert, func(c *ssh.Certificate) {
			if withPty {
				c.Extensions[usercert.ExtPTY] = ""
			}
		})
		client, err := w.direct(t, "127.0.0.1", s)
		if err != nil {
			t.Fatalf("direct login with the certificate's copy: %v", err)
		}
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		err = sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{})
		if (err == nil) != withPty {
			t.Errorf("pty with permit-pty %v: got err %v", withPty, err)
		}
		sess.Close()
		client.Close()
	}

	// Another address cannot use it (source-address).
	if _, err := w.direct(t, "127.0.0.3", resign(t, ca, cert, nil)); err == nil {
		t.Error("login from 127.0.0.3 with a certificate for 127.0.0.1: got in, want refused")
	}
}

// TestUserCertExpired checks that a certificate cannot be replayed after
// its validity: one issued for a login an hour ago is refused by the
// target, and one issued now, from the same CA, is taken.
func TestUserCertExpired(t *testing.T) {
	t.Parallel()
	w := newCertWorld(t, worldOptions{})
	a := usercert.New(w.ca(t, "state/user_ca"), nil)
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{{time.Now().Add(-time.Hour), false}, {time.Now(), true}} {
		cred, err := a.Issue(usercert.Request{Login: w.osUser, KeyID: "replay test", Source: netip.MustParseAddr("127.0.0.1"), Now: tc.at})
		if err != nil {
			t.Fatal(err)
		}
		client, err := w.direct(t, "127.0.0.1", cred.Signer)
		if (err == nil) != tc.ok {
			t.Errorf("certificate issued at %v: got err %v, want ok %v", tc.at, err, tc.ok)
		}
		if client != nil {
			client.Close()
		}
	}
}

// TestUserCertGrants checks that a policy that permits a pty and
// forwarding gets the matching extensions, and a pty through the gateway.
func TestUserCertGrants(t *testing.T) {
	t.Parallel()
	w := newCertWorld(t, worldOptions{policy: `      pty: true
      shell: true
      exec: {allow: [".*"]}
      forward_local: ["127.0.0.1:*"]
      agent: true
`})
	cert := w.received(t)
	var got []string
	for k := range cert.Extensions {
		got = append(got, k)
	}
	slices.Sort(got)
	if want := []string{usercert.ExtAgentForwarding, usercert.ExtPortForwarding, usercert.ExtPTY}; !slices.Equal(got, want) {
		t.Errorf("extensions: got %q, want %q", got, want)
	}
	if r := w.ssh([]string{"-tt"}, "tty"); r.code != 0 || !strings.Contains(r.stdout, "/dev/pts/") {
		t.Errorf("pty through the gateway: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestUserCertPrincipals runs the target with AuthorizedPrincipalsFile:
// the login must be listed there.
func TestUserCertPrincipals(t *testing.T) {
	t.Parallel()
	aux := t.TempDir()
	principals := filepath.Join(aux, "principals")
	w := newCertWorld(t, worldOptions{sshdConfig: []string{"AuthorizedPrincipalsFile " + principals}})
	if err := os.WriteFile(principals, []byte("someone-else\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := w.ssh(nil, "echo", "in"); r.code == 0 {
		t.Fatalf("login not in the principals file: got in (%q)", r.stdout)
	}
	if evs := w.events("upstream", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) != 1 {
		t.Errorf("got %d refused upstream events, want 1", len(evs))
	}
	if err := os.WriteFile(principals, []byte(w.osUser+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := w.ssh(nil, "echo", "in"); r.code != 0 || r.stdout != "in\n" {
		t.Errorf("login in the principals file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestUserCertRotation rotates the user CA while logins go on: the
// targets trust old and new, the gateway swaps to the new CA on reload,
// the targets drop the old.
func TestUserCertRotation(t *testing.T) {
	t.Parallel()
	w := newCertWorld(t, worldOptions{})
	login := func(step string, ca ssh.PublicKey) {
		t.Helper()
		cert := w.received(t)
		if !bytes.Equal(cert.SignatureKey.Marshal(), ca.Marshal()) {
			t.Errorf("%s: certificate signed by %s, want %s", step, ssh.FingerprintSHA256(cert.SignatureKey), ssh.FingerprintSHA256(ca))
		}
	}
	old := w.caPublic(t, "state/user_ca")
	login("before", old)

	// 1. A new CA (made as an operator would), trusted by the targets
	// beside the old one.
	newCA := usercertKey(t, filepath.Join(w.dir, "user_ca.new"))
	w.trust(t, old, newCA)
	login("both trusted", old)

	// 2. The gateway signs with the new one; the old stays listed.
	if err := w.reloadWith(t, "      user_ca: ./state/user_ca\n", "      user_ca: ./user_ca.new\n      user_ca_previous: ./state/user_ca\n"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	login("swapped", newCA)

	// 3. The targets drop the old CA: logins go on; the old CA's
	// certificates are refused.
	w.trust(t, newCA)
	login("old dropped", newCA)
	cred, err := usercert.New(w.ca(t, "state/user_ca"), nil).Issue(usercert.Request{Login: w.osUser, KeyID: "old", Source: netip.MustParseAddr("127.0.0.1"), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := w.direct(t, "127.0.0.1", cred.Signer); err == nil {
		c.Close()
		t.Error("a certificate of the dropped CA: got in, want refused")
	}
}

// usercertKey makes a CA key at path as the gateway does, and returns its
// public key.
func usercertKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	a, err := usercert.Load(path, "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	return a.Keys()[0]
}

// TestUserCertReuse checks that a reused upstream connection keeps the
// identity of the certificate it logged in with in its audit.
func TestUserCertReuse(t *testing.T) {
	t.Parallel()
	w := newCertWorld(t, worldOptions{upstream: "      reuse: 30s\n"})
	first := w.received(t)
	if r := w.ssh(nil, "true"); r.code != 0 {
		t.Fatalf("second login: exit %d, stderr %q", r.code, r.stderr)
	}
	e := w.upstreamEvent(t, 2)
	if e.Detail["reused"] != true {
		t.Fatalf("second login: got upstream detail %v, want reused", e.Detail)
	}
	if e.Detail["cert_key_id"] != first.KeyId || e.Detail["cert_serial"] != fmt.Sprint(first.Serial) {
		t.Errorf("reused connection: got key id %v serial %v, want the first login's %q %d", e.Detail["cert_key_id"], e.Detail["cert_serial"], first.KeyId, first.Serial)
	}
}

// TestUserCertFallback checks that the static identity still logs in
// where a target does not trust the CA, and that the audit says so.
func TestUserCertFallback(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{upstream: "      user_ca: ./state/user_ca\n"})
	if r := w.ssh(nil, "echo", "in"); r.code != 0 || r.stdout != "in\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	evs := w.events("upstream", func(e audit.Event) bool { return e.Verdict == audit.Accept })
	if len(evs) != 1 || evs[0].Detail["cert_refused"] != true || evs[0].Detail["cert_serial"] != nil {
		t.Errorf("got upstream events %+v, want one with cert_refused and no certificate", evs)
	}
}
