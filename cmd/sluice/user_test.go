package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/mfa"
)

func TestUserTOTP(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(filepath.Join(dir, "k.pub"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(`gateway: {name: gw1, state_dir: ./state}
zones: [{name: lo, networks: ["127.0.0.0/8"]}]
users:
  - {name: alice, authorized_keys: k.pub, totp_file: ./totp/alice}
  - {name: bob, authorized_keys: k.pub}
services:
  - {name: s, listen: "127.0.0.1:0", client_zones: [lo], server_zones: [lo], router: {directed: ["127.0.0.1:22"]}, upstream: {known_hosts: ./kh}, mfa: {required: true}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "totp", "alice")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"user", "totp", "-c", cfg, "alice"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code: got %d, want 0 (stderr %q)", code, stderr.String())
	}
	key, err := mfa.ReadSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	if !strings.Contains(out, key.URL()) || !strings.Contains(out, "█") {
		t.Errorf("stdout: got %q, want the URI %q and a QR code", out, key.URL())
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"user", "totp", "-c", cfg, "alice"}, 1, "exists already"},
		{[]string{"user", "totp", "-c", cfg, "bob"}, 1, "users[bob] has no totp_file"},
		{[]string{"user", "totp", "-c", cfg, "carol"}, 1, `no user "carol"`},
		{[]string{"user", "totp", "alice"}, 2, "-c FILE is required"},
		{[]string{"user", "add", "-c", cfg, "alice"}, 2, "the only verb is totp"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: got %d %q, want %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	stdout.Reset()
	if code := run([]string{"user", "totp", "-c", cfg, "alice", "--force"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--force: exit code %d, want 0", code)
	}
	if again, err := mfa.ReadSecret(secret); err != nil || again.Secret() == key.Secret() {
		t.Errorf("--force: got %v, want a new secret", err)
	}
}
