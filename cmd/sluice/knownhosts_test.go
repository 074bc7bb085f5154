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
