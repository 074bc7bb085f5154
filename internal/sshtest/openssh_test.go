package sshtest

import (
	"os/exec"
	"os/user"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	return u.Username
}

func TestStartSshdOpenSSHClient(t *testing.T) {
	RequireTool(t, "ssh")
	signer, keyPath := NewKey(t, t.TempDir(), "id_ed25519")
	sshd := StartSshd(t, SshdOptions{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})

	args := append(ClientArgs(t, "ssh", sshd.Port, keyPath, sshd.HostKey), currentUser(t)+"@127.0.0.1", "echo hi")
	out, err := exec.Command("ssh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v\n%s\nsshd log:\n%s", err, out, sshd.Log(t))
	}
	if got, want := string(out), "hi\n"; got != want {
		t.Errorf("ssh output: got %q, want %q", got, want)
	}
	fp := ssh.FingerprintSHA256(signer.PublicKey())
	if log := sshd.Log(t); !strings.Contains(log, fp) {
		t.Errorf("sshd log does not name the key tried: got no %q in\n%s", fp, log)
	}
}

func TestStartSshdRejectsUnknownKey(t *testing.T) {
	RequireTool(t, "ssh")
	dir := t.TempDir()
	good, _ := NewKey(t, dir, "good")
	_, badPath := NewKey(t, dir, "bad")
	sshd := StartSshd(t, SshdOptions{AuthorizedKeys: []ssh.PublicKey{good.PublicKey()}})

	args := append(ClientArgs(t, "ssh", sshd.Port, badPath, sshd.HostKey), currentUser(t)+"@127.0.0.1", "echo hi")
	out, err := exec.Command("ssh", args...).CombinedOutput()
	if err == nil {
		t.Fatalf("ssh with an unlisted key: got success (%q), want failure", out)
	}
}

func TestStartSshdCryptoClient(t *testing.T) {
	signer, _ := NewKey(t, t.TempDir(), "id_ed25519")
	sshd := StartSshd(t, SshdOptions{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})

	c, err := ssh.Dial("tcp", sshd.Addr, ClientConfig(currentUser(t), signer, sshd.HostKey))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer sess.Close()
	out, err := sess.Output("printf '%s' sluice")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if got, want := string(out), "sluice"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
}

func TestStartSshdWrongHostKeyRefused(t *testing.T) {
	signer, _ := NewKey(t, t.TempDir(), "id_ed25519")
	other, _ := NewKey(t, t.TempDir(), "other")
	sshd := StartSshd(t, SshdOptions{AuthorizedKeys: []ssh.PublicKey{signer.PublicKey()}})

	c, err := ssh.Dial("tcp", sshd.Addr, ClientConfig(currentUser(t), signer, other.PublicKey()))
	if err == nil {
		c.Close()
		t.Fatal("dial with the wrong host key: got success, want error")
	}
}
