package hostcert

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func signer(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPatterns(t *testing.T) {
	got := Patterns(map[string]string{"db1": "10.0.0.5:22", "web": "192.0.2.7:2222", "DB2": "db2.internal:22", "bad": "no-port"})
	want := []string{"10.0.0.5", "[192.0.2.7]:2222", "[web]:2222", "db1", "db2", "db2.internal"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestKnownHosts checks certificates against the line KnownHostsLine
// makes, with x/crypto's known_hosts reader: the CA's certificate for a
// name passes; another name, another CA, an expired certificate, or the
// bare key do not.
func TestKnownHosts(t *testing.T) {
	dir := t.TempDir()
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadPublicKey(dir)
	if err != nil || string(pub.Marshal()) != string(a.PublicKey().Marshal()) {
		t.Fatalf("ReadPublicKey: got %v, %v, want the CA's key", pub, err)
	}
	if st, err := os.Stat(filepath.Join(dir, FileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", st, err)
	}
	hosts := map[string]string{"db1": "127.0.0.1:2200"}
	kh := filepath.Join(dir, "known_hosts")
	line := KnownHostsLine(Patterns(hosts), a.PublicKey(), "sluice gw1")
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(kh)
	if err != nil {
		t.Fatal(err)
	}
	hostKey := signer(t)
	now := time.Now()
	certFor := func(a *Authority, principals []string, at time.Time) ssh.PublicKey {
		s, cert, err := a.Certify(hostKey, principals, "db1 gw1/ssh-in:1", at)
		if err != nil {
			t.Fatal(err)
		}
		if cert.CertType != ssh.HostCert || string(s.PublicKey().Marshal()) != string(cert.Marshal()) {
			t.Fatalf("Certify: signer does not present the host certificate")
		}
		return cert
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2200}
	good := certFor(a, Principals("db1", hosts["db1"]), now)
	for _, name := range []string{"db1:2200", "127.0.0.1:2200"} {
		if err := check(name, addr, good); err != nil {
			t.Errorf("%s with the CA's certificate: got %v, want accepted", name, err)
		}
	}
	other, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what, name string
		key        ssh.PublicKey
	}{
		{"a name the certificate does not hold", "db1:2200", certFor(a, []string{"db2"}, now)},
		{"a host the line does not cover", "db2:2200", certFor(a, []string{"db2"}, now)},
		{"another CA", "db1:2200", certFor(other, []string{"db1"}, now)},
		{"an expired certificate", "db1:2200", certFor(a, []string{"db1"}, now.Add(-2*Lifetime))},
		{"the bare host key", "db1:2200", hostKey.PublicKey()},
	} {
		if err := check(c.name, addr, c.key); err == nil {
			t.Errorf("%s: accepted, want refused", c.what)
		}
	}
	if _, _, err := a.Certify(hostKey, nil, "x", now); err == nil {
		t.Error("Certify without principals: got no error")
	}
}

func TestReadPublicKeyMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPublicKey(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want not-exist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		t.Error("ReadPublicKey created the key")
	}
}
