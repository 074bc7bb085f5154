package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// NewKey generates an ed25519 key, writes it in OpenSSH format to
// dir/name (mode 0600) with its public half in dir/name.pub, and returns
// the signer and the absolute path of the private key file.
func NewKey(t testing.TB, dir, name string) (signer ssh.Signer, privPath string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sshtest: generate key: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sluice test key "+name)
	if err != nil {
		t.Fatalf("sshtest: marshal key: %v", err)
	}
	signer, err = ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("sshtest: signer: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	privPath = filepath.Join(abs, name)
	if err := os.WriteFile(privPath, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sshtest: write key: %v", err)
	}
	if err := os.WriteFile(privPath+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatalf("sshtest: write public key: %v", err)
	}
	return signer, privPath
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it; prefer listening
// on 127.0.0.1:0 where the program under test allows it.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshtest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClientConfig returns an x/crypto/ssh client configuration that
// authenticates as user with signer and accepts only hostKey.
func ClientConfig(user string, signer ssh.Signer, hostKey ssh.PublicKey) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
	}
}
