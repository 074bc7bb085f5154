package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// startDemo runs the demo in-process on a free loopback port and returns
// the lines it printed up to "Press Ctrl-C".
func startDemo(t *testing.T, state string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := demo(ctx, "127.0.0.1:0", "127.0.0.1:0", state, pw, t.Output())
		pw.Close()
		done <- code
	}()
	scanned := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("demo exit code: got %d, want 0", code)
		}
		<-scanned
	})
	lines := make(chan []string, 1)
	go func() {
		defer close(scanned)
		var got []string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			got = append(got, sc.Text())
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				lines <- got
			}
		}
		io.Copy(io.Discard, pr) // after a scan error, until the demo ends
	}()
	select {
	case got := <-lines:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("demo printed no instructions within 10s")
		return nil
	}
}

// printed returns the first printed command that starts with prefix.
func printed(t *testing.T, lines []string, prefix string) []string {
	t.Helper()
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return f
		}
	}
	t.Fatalf("no printed command starting with %q in:\n%s", prefix, strings.Join(lines, "\n"))
	return nil
}

func TestDemoPrintedCommandsWork(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	state := filepath.Join(t.TempDir(), "demo state") // a space: commands must quote it
	lines := startDemo(t, state)
	if _, err := os.Stat(filepath.Join(state, "demo_ed25519.pub")); err != nil {
		t.Errorf("demo public key: %v", err)
	}

	// The printed line is a shell command; run it through sh as a user
	// would, with BatchMode so that nothing waits for a prompt.
	cmdLine := strings.Join(printed(t, lines, "ssh -i"), " ")
	cmdLine = strings.TrimSuffix(cmdLine, " echo hello")
	cmdLine = strings.Replace(cmdLine, "ssh ", sshPath+" -F /dev/null -o BatchMode=yes ", 1)
	out, err := exec.Command("/bin/sh", "-c", cmdLine+" echo ok").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmdLine, err, out)
	}
	if got, want := string(out), "ok\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}

	// The printed denial goes through the gateway's policy: refused with a
	// message, the exec request fails (ssh exits 255), and the file is still there.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var denyLine string
	for _, l := range lines {
		if strings.Contains(l, " rm -rf ") {
			denyLine = strings.TrimSpace(l)
		}
	}
	denyLine = strings.Replace(denyLine, "ssh ", sshPath+" -F /dev/null -o BatchMode=yes ", 1)
	denyLine = strings.Replace(denyLine, "/tmp/nothing", victim, 1)
	out, err = exec.Command("/bin/sh", "-c", denyLine).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 255 || !strings.Contains(string(out), "denied by policy") {
		t.Fatalf("%s: got %v %q, want exit 255 and a denial", denyLine, err, out)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("the refused rm -rf ran: %v", err)
	}
}

func TestDemoSFTPCommand(t *testing.T) {
	sftpPath := sshtest.RequireTool(t, "sftp")
	lines := startDemo(t, t.TempDir())
	cmdLine := strings.Join(printed(t, lines, "sftp "), " ")
	cmdLine = strings.Replace(cmdLine, "sftp ", sftpPath+" -F /dev/null -o BatchMode=yes -b - ", 1)
	cmd := exec.Command("/bin/sh", "-c", cmdLine)
	cmd.Stdin = strings.NewReader("pwd\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmdLine, err, out)
	}
	if !strings.Contains(string(out), "Remote working directory:") {
		t.Errorf("sftp pwd: got %q, want a remote working directory", out)
	}
}

func TestDemoKeepsKeysAcrossRestarts(t *testing.T) {
	state := t.TempDir()
	d1, err := setupDemo(state)
	if err != nil {
		t.Fatalf("first setup: %v", err)
	}
	d2, err := setupDemo(state)
	if err != nil {
		t.Fatalf("second setup: %v", err)
	}
	if got, want := string(d2.userKey.Marshal()), string(d1.userKey.Marshal()); got != want {
		t.Error("demo user key: got a new key on restart, want the same")
	}
	if got, want := string(d2.hostKey.PublicKey().Marshal()), string(d1.hostKey.PublicKey().Marshal()); got != want {
		t.Error("host key: got a new key on restart, want the same")
	}
	if got, want := string(d2.upstreamKey.Marshal()), string(d1.upstreamKey.Marshal()); got != want {
		t.Error("upstream key: got a new key on restart, want the same")
	}
	st, err := os.Stat(d1.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("demo key mode: got %v, want %v", got, want)
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/a/demo_ed25519", "/tmp/a/demo_ed25519"},
		{"demo@127.0.0.1", "demo@127.0.0.1"},
		{"UserKnownHostsFile=/x y/known_hosts", "'UserKnownHostsFile=/x y/known_hosts'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
