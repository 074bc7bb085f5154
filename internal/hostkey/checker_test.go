package hostkey

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func newPub(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testSshd is an OpenSSH sshd with an ed25519 and an ecdsa host key.
type testSshd struct {
	*sshtest.Sshd
	ecdsa  ssh.PublicKey
	client ssh.Signer
}

func startSshd(t *testing.T) *testSshd {
	t.Helper()
	keyDir := t.TempDir()
	client, _ := sshtest.NewKey(t, keyDir, "client")
	extra, err := LoadOrGenerate(keyDir, []string{"ecdsa"})
	if err != nil {
		t.Fatal(err)
	}
	s := sshtest.StartSshd(t, sshtest.SshdOptions{
		AuthorizedKeys: []ssh.PublicKey{client.PublicKey()},
		Config:         []string{"HostKey " + filepath.Join(keyDir, "ssh_host_ecdsa_key")},
	})
	return &testSshd{Sshd: s, ecdsa: extra[0].PublicKey(), client: client}
}

// dial runs the gateway's upstream handshake as user with the checker.
func (s *testSshd) dial(t *testing.T, c *Checker, user string) error {
	t.Helper()
	cl, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.client)},
		HostKeyCallback:   c.HostKeyCallback(),
		HostKeyAlgorithms: c.HostKeyAlgorithms(s.Addr),
		Timeout:           10 * time.Second,
	})
	if err == nil {
		cl.Close()
	}
	return err
}

// userauthLogged reports whether sshd logged an authentication request
// after the first skip bytes of its log (sshd logs "userauth-request for
// user U" at LogLevel DEBUG).
func (s *testSshd) userauthLogged(t *testing.T, skip int) bool {
	t.Helper()
	return strings.Contains(s.Log(t)[skip:], "userauth-request for user ")
}

// loginUser is the account the tests log in to sshd as.
func loginUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func writeKnownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckerAgainstSshd(t *testing.T) {
	s := startSshd(t)
	knownLine := sshtest.KnownHostsLine(s.Addr, s.HostKey)
	tests := []struct {
		name  string
		lines []string
		check func(t *testing.T, err error)
	}{
		{"known ed25519", []string{knownLine}, func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("got %v, want login", err)
			}
		}},
		{"known ecdsa only", []string{sshtest.KnownHostsLine(s.Addr, s.ecdsa)}, func(t *testing.T, err error) {
			if err != nil {
				t.Fatalf("got %v, want login", err)
			}
		}},
		{"unknown", []string{sshtest.KnownHostsLine("127.0.0.1:1", s.HostKey)}, func(t *testing.T, err error) {
			var ue *UnknownKeyError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want *UnknownKeyError", err)
			}
			if ue.Host != s.Addr || ue.Fingerprint == "" {
				t.Errorf("got host %q fingerprint %q, want %q and a fingerprint", ue.Host, ue.Fingerprint, s.Addr)
			}
		}},
		{"changed", []string{sshtest.KnownHostsLine(s.Addr, newPub(t))}, func(t *testing.T, err error) {
			var ce *ChangedKeyError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want *ChangedKeyError", err)
			}
			if ce.Fingerprint != ssh.FingerprintSHA256(s.HostKey) || len(ce.Known) != 1 {
				t.Errorf("got %+v, want offered %s and one known key", ce, ssh.FingerprintSHA256(s.HostKey))
			}
		}},
		{"revoked", []string{knownLine, "@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey)))}, func(t *testing.T, err error) {
			var re *RevokedKeyError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want *RevokedKeyError", err)
			}
			if !strings.HasSuffix(re.Where, ":2") {
				t.Errorf("got where %q, want line 2", re.Where)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChecker(writeKnownHosts(t, tt.lines...))
			if err != nil {
				t.Fatal(err)
			}
			before := len(s.Log(t))
			err = s.dial(t, c, loginUser(t))
			tt.check(t, err)
			// sshd logs the request before answering it, so after a
			// successful login the line is there; after a refused host key
			// there is nothing to wait for, only a log to read.
			if got, want := s.userauthLogged(t, before), err == nil; got != want {
				t.Errorf("got userauth from the gateway logged %v, want %v", got, want)
			}
		})
	}
}

// TestHostKeyAlgorithmsPinsKnownType shows why HostKeyAlgorithms exists: the
// server offers ecdsa before ed25519 to a client with default preferences,
// and a host known by its ed25519 key would look changed.
func TestHostKeyAlgorithmsPinsKnownType(t *testing.T) {
	s := startSshd(t)
	c, err := NewChecker(writeKnownHosts(t, sshtest.KnownHostsLine(s.Addr, s.HostKey)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.HostKeyAlgorithms(s.Addr), []string{ssh.KeyAlgoED25519}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	_, err = ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            "gwdefaults",
		HostKeyCallback: c.HostKeyCallback(),
		Timeout:         10 * time.Second,
	})
	var ce *ChangedKeyError
	if !errors.As(err, &ce) || ce.KeyType != ssh.KeyAlgoECDSA256 {
		t.Fatalf("without pinning got %v, want *ChangedKeyError for ecdsa", err)
	}
	if err := s.dial(t, c, loginUser(t)); err != nil {
		t.Fatalf("with pinning got %v, want login", err)
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	ca := newPub(t)
	signers, err := LoadOrGenerate(t.TempDir(), []string{"rsa", "ed25519"})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, edKey := signers[0].PublicKey(), signers[1].PublicKey()
	path := writeKnownHosts(t,
		sshtest.KnownHostsLine("db:2200", rsaKey),
		sshtest.KnownHostsLine("db:2200", edKey),
		"@cert-authority *.corp "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca))),
	)
	c, err := NewChecker(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want []string
	}{
		{"db:2200", []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoED25519}},
		{"db:22", nil},
		{"web.corp:22", certAlgorithms()},
		{"other:22", nil},
	}
	for _, tt := range tests {
		if got := c.HostKeyAlgorithms(tt.addr); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestCheckerReloads(t *testing.T) {
	key := newPub(t)
	path := writeKnownHosts(t)
	c, err := NewChecker(path)
	if err != nil {
		t.Fatal(err)
	}
	addr := "10.9.9.9:22" // never dialled: the callback only compares
	check := c.HostKeyCallback()
	remote := &net.TCPAddr{IP: net.IPv4(10, 9, 9, 9), Port: 22}
	var ue *UnknownKeyError
	if err := check(addr, remote, key); !errors.As(err, &ue) {
		t.Fatalf("got %v, want *UnknownKeyError", err)
	}
	if _, err := AppendKnownHosts(path, addr, []ssh.PublicKey{key}); err != nil {
		t.Fatal(err)
	}
	if err := check(addr, remote, key); err != nil {
		t.Fatalf("after append got %v, want nil", err)
	}
}

func TestNewCheckerRefuses(t *testing.T) {
	if _, err := NewChecker(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("got nil error for a missing file, want one")
	}
	if _, err := NewChecker(writeKnownHosts(t, "host ssh-ed25519 !!!")); err == nil {
		t.Error("got nil error for a corrupt file, want one")
	}
}

func TestScanAndAppend(t *testing.T) {
	s := startSshd(t)
	before := len(s.Log(t))
	keys, err := Scan(context.Background(), s.Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.userauthLogged(t, before) {
		t.Error("got a userauth request from Scan, want none")
	}
	var got []string
	for _, k := range keys {
		got = append(got, ssh.FingerprintSHA256(k))
	}
	want := []string{ssh.FingerprintSHA256(s.HostKey), ssh.FingerprintSHA256(s.ecdsa)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	added, err := AppendKnownHosts(path, s.Addr, keys)
	if err != nil || len(added) != 2 {
		t.Fatalf("got %d keys added, %v; want 2, nil", len(added), err)
	}
	if added, err := AppendKnownHosts(path, s.Addr, keys); err != nil || len(added) != 0 {
		t.Fatalf("second append: got %d keys added, %v; want 0, nil", len(added), err)
	}
	c, err := NewChecker(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.dial(t, c, loginUser(t)); err != nil {
		t.Fatalf("got %v, want login with the scanned keys", err)
	}
}
