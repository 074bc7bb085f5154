package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("gateway:\n  name: gw\n  nmae: x\nservices: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	example := filepath.Join("..", "..", "examples", "bastion.yaml")
	missing := filepath.Join(dir, "missing.yaml")
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     string // exact, or a prefix when stderrPrefix
		prefixOnly bool
	}{
		{"valid", []string{"check", "-c", example}, 0, example + ": ok\n", "", false},
		{"valid long flag", []string{"check", "--config=" + example}, 0, example + ": ok\n", "", false},
		{"every error", []string{"check", "-c", bad}, 1, "",
			bad + `:3: gateway.nmae: unknown key (did you mean "name"?)` + "\n" +
				bad + ":4: services: must list at least one service\n", false},
		{"missing file", []string{"check", "-c", missing}, 1, "",
			missing + ": open: no such file or directory\n", false},
		{"no file", []string{"check"}, 2, "", "sluice check: -c FILE is required\nusage: sluice check -c FILE\n", true},
		{"extra argument", []string{"check", "-c", example, "more"}, 2, "", "sluice check: unexpected argument \"more\"\nusage: sluice check -c FILE\n", true},
		{"unknown flag", []string{"check", "-x"}, 2, "", "sluice check: flag provided but not defined: -x\nusage: sluice check -c FILE\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if got := stdout.String(); got != tc.stdout {
				t.Errorf("stdout: got %q, want %q", got, tc.stdout)
			}
			got := stderr.String()
			if tc.prefixOnly && !strings.HasPrefix(got, tc.stderr) || !tc.prefixOnly && got != tc.stderr {
				t.Errorf("stderr: got %q, want %q", got, tc.stderr)
			}
		})
	}
}

// TestCheckTransparentKeys: with a transparent service, a key listed for
// two users is an error (the service knows users by key); without one it
// is not.
func TestCheckTransparentKeys(t *testing.T) {
	dir := t.TempDir()
	_, pub := sshtest.NewKey(t, dir, "shared_ed25519")
	line, err := os.ReadFile(pub + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice.pub", "bob.pub"} {
		if err := os.WriteFile(filepath.Join(dir, n), line, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write := func(router string) string {
		path := filepath.Join(dir, "sluice.yaml")
		cfg := `gateway: {name: gw1, state_dir: ./state}
zones: [{name: z, networks: ["127.0.0.0/8"]}]
users: [{name: alice, authorized_keys: ./alice.pub}, {name: bob, authorized_keys: ./bob.pub}]
services:
  - {name: inline, listen: "127.0.0.1:0", client_zones: [z], server_zones: [z], router: ` + router + `, upstream: {known_hosts: ./kh}}
`
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-c", write("{inband: true}")}, &stdout, &stderr); code != 0 {
		t.Errorf("inband: got exit %d, stderr %q, want 0", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	path := write("{transparent: true}")
	code := run([]string{"check", "-c", path}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "is listed for users alice, bob; services[inline].router.transparent") {
		t.Errorf("transparent: got exit %d, stderr %q, want 1 and the shared key", code, stderr.String())
	}
}
