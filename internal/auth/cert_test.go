package auth

import (
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// testNow is the fixed clock of the certificate tests.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func signCert(t *testing.T, ca ssh.Signer, key ssh.PublicKey, edit func(*ssh.Certificate)) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key:             key,
		CertType:        ssh.UserCert,
		KeyId:           "test",
		ValidPrincipals: []string{"alice"},
		ValidAfter:      uint64(testNow.Add(-time.Hour).Unix()),
		ValidBefore:     uint64(testNow.Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{
			"permit-pty": "", "permit-port-forwarding": "", "permit-agent-forwarding": "", "permit-X11-forwarding": "",
		}},
	}
	if edit != nil {
		edit(c)
	}
	if len(c.ValidPrincipals) == 0 {
		signUnchecked(t, c, ca)
		return c
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

// signUnchecked signs c as SignCert does, without its refusal of a
// certificate with no principals: ssh-keygen makes such certificates (and
// OpenSSH reads them as valid for any principal), so a client can present
// one and the gateway must refuse it. The signed bytes are the
// certificate's wire form without its signature field (PROTOCOL.certkeys).
func signUnchecked(t *testing.T, c *ssh.Certificate, ca ssh.Signer) {
	t.Helper()
	c.Nonce = make([]byte, 32)
	if _, err := rand.Read(c.Nonce); err != nil {
		t.Fatal(err)
	}
	c.SignatureKey = ca.PublicKey()
	c.Signature = nil
	b := c.Marshal()
	sig, err := ca.Sign(rand.Reader, b[:len(b)-4]) // drop the empty signature's length
	if err != nil {
		t.Fatal(err)
	}
	c.Signature = sig
}

func certSigner(t *testing.T, c *ssh.Certificate, s ssh.Signer) ssh.Signer {
	t.Helper()
	cs, err := ssh.NewCertSigner(c, s)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestCertificates(t *testing.T) {
	ca, otherCA, key := newSigner(t), newSigner(t), newSigner(t)
	tests := []struct {
		name     string
		ca       ssh.Signer
		edit     func(*ssh.Certificate)
		want     Restrictions
		wantRule string
	}{
		{name: "valid"},
		{name: "no extensions", edit: func(c *ssh.Certificate) { c.Extensions = nil },
			want: Restrictions{NoPty: true, NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}},
		{name: "only permit-pty", edit: func(c *ssh.Certificate) { c.Extensions = map[string]string{"permit-pty": ""} },
			want: Restrictions{NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}},
		{name: "force-command", edit: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"force-command": "id"} },
			want: Restrictions{ForcedCommand: "id", ForcedCommandRule: "trusted_user_ca_keys force-command"}},
		{name: "source-address matches", edit: func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8,127.0.0.1"}
		}},
		{name: "source-address other", edit: func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8"}
		}, wantRule: "trusted_user_ca_keys source-address"},
		{name: "unknown critical option", edit: func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"verify-required": ""}
		}, wantRule: "trusted_user_ca_keys critical options"},
		{name: "other principal", edit: func(c *ssh.Certificate) { c.ValidPrincipals = []string{"bob"} },
			wantRule: "trusted_user_ca_keys principals"},
		{name: "empty principals", edit: func(c *ssh.Certificate) { c.ValidPrincipals = nil },
			wantRule: "trusted_user_ca_keys principals"},
		{name: "expired", edit: func(c *ssh.Certificate) { c.ValidBefore = uint64(testNow.Unix()) },
			wantRule: "trusted_user_ca_keys validity"},
		{name: "not yet valid", edit: func(c *ssh.Certificate) { c.ValidAfter = uint64(testNow.Add(time.Second).Unix()) },
			wantRule: "trusted_user_ca_keys validity"},
		{name: "forever", edit: func(c *ssh.Certificate) { c.ValidAfter, c.ValidBefore = 0, ssh.CertTimeInfinity }},
		{name: "host certificate", edit: func(c *ssh.Certificate) { c.CertType = ssh.HostCert },
			wantRule: "trusted_user_ca_keys"},
		{name: "untrusted CA", ca: otherCA, wantRule: "trusted_user_ca_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f failures
			a, err := New(Params{
				Users:         []User{{Name: "alice"}},
				TrustedCAKeys: []ssh.PublicKey{ca.PublicKey()},
				Clock:         func() time.Time { return testNow },
			})
			if err != nil {
				t.Fatal(err)
			}
			signer := ca
			if tt.ca != nil {
				signer = tt.ca
			}
			c := signCert(t, signer, key.PublicKey(), tt.edit)
			r := startServer(t, a, f.record).login(t, "alice", ssh.PublicKeys(certSigner(t, c, key)))
			if tt.wantRule != "" {
				if r.err == nil {
					t.Fatalf("got login accepted, want refused by %s", tt.wantRule)
				}
				if got := f.rules(); len(got) == 0 || got[0] != tt.wantRule {
					t.Fatalf("got rules %q, want %q", got, tt.wantRule)
				}
				return
			}
			id := r.identity(t)
			want := Identity{User: "alice", Method: MethodCertificate,
				KeyFingerprint: ssh.FingerprintSHA256(key.PublicKey()), Restrictions: tt.want}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("got %+v, want %+v", id, want)
			}
		})
	}
}

// TestOpenSSHClient logs in with OpenSSH's ssh, first with a plain key from
// authorized_keys, then with a certificate found beside the key.
func TestOpenSSHClient(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	dir := t.TempDir()
	key, keyPath := sshtest.NewKey(t, dir, "id_ed25519")
	ca := newSigner(t)
	ak := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(ak, []byte(authorizedLine("no-pty", key.PublicKey())), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(Params{
		Users:         []User{{Name: "alice", AuthorizedKeysFile: ak}},
		TrustedCAKeys: []ssh.PublicKey{ca.PublicKey()},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, a, nil)
	_, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	runSSH := func() {
		t.Helper()
		cmd := exec.Command(sshPath, "-F", "none", "-i", keyPath, "-p", port,
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "alice@127.0.0.1", "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ssh: %v\n%s", err, out)
		}
	}
	runSSH()
	id := s.next(t).identity(t)
	if id.Method != MethodPublicKey || id.KeyFingerprint != ssh.FingerprintSHA256(key.PublicKey()) || !id.Restrictions.NoPty {
		t.Errorf("got %+v, want publickey with no-pty", id)
	}

	cert := signCert(t, ca, key.PublicKey(), func(c *ssh.Certificate) {
		c.ValidAfter, c.ValidBefore = 0, ssh.CertTimeInfinity
		c.CriticalOptions = map[string]string{"force-command": "true"}
	})
	if err := os.WriteFile(keyPath+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(ak); err != nil { // only the certificate can succeed now
		t.Fatal(err)
	}
	runSSH()
	id = s.next(t).identity(t)
	if id.Method != MethodCertificate || id.Restrictions.ForcedCommand != "true" || id.KeyFingerprint != ssh.FingerprintSHA256(key.PublicKey()) {
		t.Errorf("got %+v, want certificate with force-command true", id)
	}
}
