package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/hostcert"
	"github.com/sluice-ssh/sluice/internal/sshtest"
	"github.com/sluice-ssh/sluice/internal/usercert"
)

// caConfig writes a config whose two services log in with user CAs in
// dir, and returns its path.
func caConfig(t *testing.T, dir, upstream1, upstream2 string) string {
	t.Helper()
	cfg := fmt.Sprintf(`gateway: {name: gw1, state_dir: ./state}
zones: [{name: z, networks: ["127.0.0.0/8"]}]
users: [{name: alice, authorized_keys: ./alice.pub}]
services:
  - name: ssh-in
    listen: 127.0.0.1:0
    client_zones: [z]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: ./kh%s}
  - name: ops
    listen: 127.0.0.1:0
    client_zones: [z]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: ./kh%s}
`, upstream1, upstream2)
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCAShow(t *testing.T) {
	dir := t.TempDir()
	cfg := caConfig(t, dir, ", user_ca: ./state/user_ca", ", user_ca: ./state/user_ca")
	// Before the first start there is no key, and ca show makes none.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ca", "show", "-c", cfg}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "does not exist yet") {
		t.Errorf("no key yet: got exit %d, stderr %q, want 1 and \"does not exist yet\"", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "user_ca")); err == nil {
		t.Error("ca show created the key")
	}
	old, err := usercert.Load(filepath.Join(dir, "state", "user_ca"), "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	// Both services share one CA: one line.
	lines := caShow(t, cfg)
	if len(lines) != 1 || !strings.HasSuffix(lines[0], " sluice gw1 user_ca of ssh-in, user_ca of ops") {
		t.Fatalf("one shared CA: got %q", lines)
	}
	checkLine(t, lines[0], old.Keys()[0])

	// Mid-rotation: ops signs with a new CA, the old one listed after it.
	cfg = caConfig(t, dir, ", user_ca: ./state/user_ca", ", user_ca: ./user_ca.new, user_ca_previous: ./state/user_ca.pub")
	next, err := usercert.Load(filepath.Join(dir, "user_ca.new"), "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	lines = caShow(t, cfg)
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " sluice gw1 user_ca of ssh-in, user_ca_previous of ops") || !strings.HasSuffix(lines[1], " sluice gw1 user_ca of ops") {
		t.Fatalf("rotation: got %q, want the old CA (ssh-in's, ops' previous), then ops' new", lines)
	}
	checkLine(t, lines[0], old.Keys()[0])
	checkLine(t, lines[1], next.Keys()[0])

	// What it prints is a TrustedUserCAKeys file OpenSSH's sshd takes.
	trusted := filepath.Join(dir, "trusted")
	if err := os.WriteFile(trusted, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sshd := sshtest.StartSshd(t, sshtest.SshdOptions{Config: []string{"TrustedUserCAKeys " + trusted}})
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*usercert.Authority{old, next} {
		cred, err := a.Issue(usercert.Request{Login: u.Username, KeyID: "ca show test", Source: netip.MustParseAddr("127.0.0.1"), Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		c, err := ssh.Dial("tcp", sshd.Addr, &ssh.ClientConfig{User: u.Username, Auth: []ssh.AuthMethod{ssh.PublicKeys(cred.Signer)}, HostKeyCallback: ssh.FixedHostKey(sshd.HostKey)})
		if err != nil {
			t.Errorf("login with a certificate of %s: %v", ssh.FingerprintSHA256(a.Keys()[0]), err)
			continue
		}
		c.Close()
	}
}

func caShow(t *testing.T, cfg string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ca", "show", "-c", cfg}, &stdout, &stderr); code != 0 {
		t.Fatalf("ca show: exit %d, stderr %q", code, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
}

func checkLine(t *testing.T, line string, want ssh.PublicKey) {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || !bytes.Equal(k.Marshal(), want.Marshal()) {
		t.Errorf("line %q: got key err %v, want %s", line, err, ssh.FingerprintSHA256(want))
	}
}

func TestCAUsage(t *testing.T) {
	dir := t.TempDir()
	noCA := caConfig(t, dir, "", "")
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"ca"}, 2, "sluice ca show: the only verb is show\nusage: sluice ca show [--host] -c FILE"},
		{[]string{"ca", "list"}, 2, "sluice ca show: the only verb is show\nusage: sluice ca show [--host] -c FILE"},
		{[]string{"ca", "show"}, 2, "sluice ca show: -c FILE is required\nusage: sluice ca show [--host] -c FILE"},
		{[]string{"ca", "show", "-c", noCA}, 1, "sluice: no service sets upstream.user_ca"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.HasPrefix(stderr.String(), tc.stderr) || stdout.Len() != 0 {
			t.Errorf("%q: got exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stderr)
		}
	}
}

func TestCAShowHost(t *testing.T) {
	dir := t.TempDir()
	cfg := `gateway: {name: gw1, state_dir: ./state}
zones: [{name: z, networks: ["127.0.0.0/8"]}]
users: [{name: alice, authorized_keys: ./alice.pub}]
hosts:
  - {name: db1, address: "10.0.0.5:22"}
  - {name: web, address: "10.0.0.6:2222"}
roles: [{name: ops, users: [alice], hosts: ["*"], logins: [root]}]
services:
  - name: ssh-in
    listen: 127.0.0.1:0
    client_zones: [z]
    server_zones: [z]
    router: {inband: true, jump: true}
    upstream: {known_hosts: ./kh}
`
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ca", "show", "--host", "-c", path}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "does not exist yet") {
		t.Errorf("no key yet: got exit %d, stderr %q, want 1 and \"does not exist yet\"", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "state", hostcert.FileName)); err == nil {
		t.Error("ca show --host created the key")
	}
	a, err := hostcert.Load(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"ca", "show", "--host", "-c", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("got exit %d, stderr %q, want 0", code, stderr.String())
	}
	want := hostcert.KnownHostsLine([]string{"10.0.0.5", "[10.0.0.6]:2222", "[web]:2222", "db1"}, a.PublicKey(), "sluice gw1 host CA") + "\n"
	if stdout.String() != want {
		t.Errorf("got %q, want %q", stdout.String(), want)
	}
}
