package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func TestKnownHostsAdd(t *testing.T) {
	s := sshtest.StartSshd(t, sshtest.SshdOptions{})
	fp := ssh.FingerprintSHA256(s.HostKey)
	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantCode  int
		wantAdded bool
	}{
		{"refused at prompt", []string{"add", s.Addr}, "no\n", 1, false},
		{"no answer", []string{"add", s.Addr}, "", 1, false},
		{"confirmed at prompt", []string{"add", s.Addr}, "yes\n", 0, true},
		{"--yes", []string{"add", s.Addr, "--yes"}, "", 0, true},
		{"usage: no file", []string{"add", s.Addr}, "yes\n", 2, false},
		{"usage: no host", []string{"add"}, "yes\n", 2, false},
		{"usage: no verb", []string{s.Addr}, "yes\n", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "known_hosts")
			args := tt.args
			if !strings.HasPrefix(tt.name, "usage: no file") {
				args = append(args, "--known-hosts", file)
			}
			var stdout, stderr bytes.Buffer
			code := knownHosts(context.Background(), args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("got exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if code != 2 && (!strings.Contains(stdout.String(), "ssh-ed25519") || !strings.Contains(stdout.String(), fp)) {
				t.Errorf("got output %q, want the key type and fingerprint %s", stdout.String(), fp)
			}
			_, statErr := os.Stat(file)
			if added := statErr == nil; added != tt.wantAdded {
				t.Fatalf("got file written %v, want %v", added, tt.wantAdded)
			}
			if !tt.wantAdded {
				return
			}
			c, err := hostkey.NewChecker(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.HostKeyCallback()(s.Addr, nil, s.HostKey); err != nil {
				t.Errorf("got %v checking the added key, want nil", err)
			}
		})
	}
}

// TestKnownHostsChanged: a known_hosts that lists another key of the same
// type for the server is a changed host key. It is never appended beside
// the old one: the user sees OpenSSH's warning, and the old line is
// replaced only on confirmation; other hosts' lines stay.
func TestKnownHostsChanged(t *testing.T) {
	s := sshtest.StartSshd(t, sshtest.SshdOptions{})
	old, _ := sshtest.NewKey(t, t.TempDir(), "old")
	other, _ := sshtest.NewKey(t, t.TempDir(), "other")
	oldLine := sshtest.KnownHostsLine(s.Addr, old.PublicKey())
	otherLine := sshtest.KnownHostsLine("10.9.9.9:22", other.PublicKey())
	sharedLine := "db9," + oldLine
	tests := []struct {
		name     string
		lines    []string
		args     []string
		stdin    string
		wantCode int
		replaced bool
	}{
		{"refused at prompt", []string{otherLine, oldLine}, nil, "no\n", 1, false},
		{"--yes alone", []string{otherLine, oldLine}, []string{"--yes"}, "", 1, false},
		{"confirmed at prompt", []string{otherLine, oldLine}, nil, "yes\n", 0, true},
		{"--yes --replace", []string{oldLine, otherLine}, []string{"--yes", "--replace"}, "", 0, true},
		{"line shared with another host", []string{otherLine, sharedLine}, nil, "yes\n", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "known_hosts")
			before := strings.Join(tt.lines, "\n") + "\n"
			if err := os.WriteFile(file, []byte(before), 0o640); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"add", s.Addr, "--known-hosts", file}, tt.args...)
			var stdout, stderr bytes.Buffer
			code := knownHosts(context.Background(), args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("got exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), "REMOTE HOST IDENTIFICATION HAS CHANGED") || !strings.Contains(stderr.String(), ssh.FingerprintSHA256(old.PublicKey())) {
				t.Errorf("got stderr %q, want the changed-key warning with the old fingerprint", stderr.String())
			}
			after, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.replaced {
				if string(after) != before {
					t.Fatalf("got file %q, want it unchanged %q", after, before)
				}
				return
			}
			if strings.Contains(string(after), oldLine) {
				t.Errorf("got file %q, want the old key gone", after)
			}
			if !strings.Contains(string(after), otherLine) {
				t.Errorf("got file %q, want the other host's line kept", after)
			}
			if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("got mode %v (%v), want 0640 kept", st.Mode().Perm(), err)
			}
			c, err := hostkey.NewChecker(file)
			if err != nil {
				t.Fatal(err)
			}
			check := c.HostKeyCallback()
			if err := check(s.Addr, nil, s.HostKey); err != nil {
				t.Errorf("got %v checking the new key, want nil", err)
			}
			if err := check(s.Addr, nil, old.PublicKey()); err == nil {
				t.Error("the old key still passes the check, want it refused")
			}
		})
	}
}
