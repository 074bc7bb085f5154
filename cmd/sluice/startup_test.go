package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// a test can start `sluice` as a subprocess and see its exit status and
// everything it prints, a panic included.
const runMainEnv = "SLUICE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// sluiceCmd is the test binary started as `sluice ARGS...`.
func sluiceCmd(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	return cmd
}

// startupFiles writes what a gateway needs to start in dir: an authorized
// key, the upstream identity, a known_hosts and a CA key.
func startupFiles(t *testing.T, dir string) {
	t.Helper()
	signer, _ := sshtest.NewKey(t, dir, "upstream_ed25519")
	line := sshtest.KnownHostsLine("127.0.0.1:22", signer.PublicKey())
	for name, text := range map[string]string{
		"alice.pub":   "ssh-ed25519 " + strings.Fields(line)[2] + " alice\n",
		"known_hosts": line + "\n",
		"ca.pub":      "ssh-ed25519 " + strings.Fields(line)[2] + " ca\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startupConfig is a complete config whose files are in dir; edit names a
// file to leave out ("" for none) and listen is the service's address.
func startupConfig(t *testing.T, dir, listen, missing string) string {
	t.Helper()
	path := func(name string) string {
		if name == missing {
			return filepath.Join(dir, "missing-"+name)
		}
		return filepath.Join(dir, name)
	}
	cfg := `gateway:
  name: gw
  state_dir: ` + filepath.Join(dir, "state") + `
zones:
  - {name: lo, networks: ["127.0.0.0/8"]}
users:
  - {name: alice, authorized_keys: ` + path("alice.pub") + `}
trusted_user_ca_keys: [` + path("ca.pub") + `]
services:
  - name: ssh-in
    listen: ` + listen + `
    client_zones: [lo]
    server_zones: [lo]
    router: {directed: ["127.0.0.1:22"]}
    upstream:
      identity: ` + path("upstream_ed25519") + `
      known_hosts: ` + path("known_hosts") + `
    policy: {shell: true}
`
	p := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServeStartupErrors starts `sluice serve` on configs that `check`
// accepts but that cannot start, and wants one line naming the cause and
// exit status 1: never a panic, never a hang.
func TestServeStartupErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name    string
		listen  string
		missing string
		want    []string
	}{
		{"port in use", busy.Addr().String(), "", []string{"services[ssh-in]: listen " + busy.Addr().String(), "address already in use", "another process listens there"}},
		{"no upstream identity", "127.0.0.1:0", "upstream_ed25519", []string{"upstream.identity", "missing-upstream_ed25519", "no such file"}},
		{"no known_hosts", "127.0.0.1:0", "known_hosts", []string{"upstream.known_hosts", "missing-known_hosts", "no such file"}},
		{"no CA file", "127.0.0.1:0", "ca.pub", []string{"missing-ca.pub", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			startupFiles(t, dir)
			cfg := startupConfig(t, dir, tc.listen, tc.missing)
			var out bytes.Buffer
			if code := run([]string{"check", "-c", cfg}, &out, io.Discard); code != 0 {
				t.Fatalf("check: got exit %d, want 0 (the case must be one check cannot see): %s", code, out.String())
			}
			wantStartupFailure(t, sluiceCmd(os.Args[0], "serve", "-c", cfg), "sluice serve: cannot start: ", tc.want)
		})
	}
}

// TestServeLowPort starts the gateway on port 1022 as an unprivileged
// user (the tests run as root in CI: the subprocess drops to nobody).
func TestServeLowPort(t *testing.T) {
	dir, err := os.MkdirTemp("", "sluice-lowport")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	startupFiles(t, dir)
	cfg := startupConfig(t, dir, "127.0.0.1:1022", "")
	bin := filepath.Join(dir, "sluice")
	copyExecutable(t, os.Args[0], bin)
	cmd := sluiceCmd(bin, "serve", "-c", cfg)
	if os.Geteuid() == 0 {
		// nobody must be able to read the files and write the state.
		for _, p := range []string{dir, filepath.Join(dir, "upstream_ed25519")} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(filepath.Join(dir, "upstream_ed25519"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "state"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	wantStartupFailure(t, cmd, "sluice serve: cannot start: ", []string{"listen 127.0.0.1:1022", "permission denied", "CAP_NET_BIND_SERVICE"})
}

// TestDemoBusyPort: the demo on a port in use says so and how to pick
// another, instead of hanging.
func TestDemoBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cmd := sluiceCmd(os.Args[0], "demo", "--listen", busy.Addr().String(), "--console", "127.0.0.1:0", "--state", t.TempDir())
	wantStartupFailure(t, cmd, "sluice demo: ", []string{busy.Addr().String() + " or ", "is in use", "--listen"})
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// wantStartupFailure runs cmd and wants exit status 1 within a minute and
// one stderr line that starts with prefix and holds every want.
func wantStartupFailure(t *testing.T, cmd *exec.Cmd, prefix string, want []string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running after a minute; stderr %q", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit status: got %d, want 1", code)
	}
	text := stderr.String()
	if strings.Contains(text, "panic") || strings.Contains(text, "goroutine ") {
		t.Fatalf("stderr holds a panic: %s", text)
	}
	if n := strings.Count(text, "\n"); n != 1 || !strings.HasSuffix(text, "\n") {
		t.Errorf("stderr: got %d lines, want one: %q", n, text)
	}
	line := strings.TrimSuffix(text, "\n")
	if !strings.HasPrefix(line, prefix) {
		t.Errorf("stderr: got %q, want it to start with %q", line, prefix)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("stderr: got %q, want it to hold %q", line, w)
		}
	}
}

// TestServeStartAndStopLines: `sluice serve` says what it is and where it
// listens in one line when it starts, and says it drained and stopped on
// SIGTERM, exiting 0.
func TestServeStartAndStopLines(t *testing.T) {
	dir := t.TempDir()
	startupFiles(t, dir)
	cfg := startupConfig(t, dir, "127.0.0.1:0", "")
	cmd := sluiceCmd(os.Args[0], "serve", "-c", cfg)
	var logs lockedWriter
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	started := regexp.MustCompile(`msg="sluice started" version="sluice [^"]+" config=` + regexp.QuoteMeta(cfg) +
		` gateway=gw listeners="ssh-in=127\.0\.0\.1:\d+" metrics=off admin_socket=\S+`)
	waitFor(t, &logs, started)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v, want exit 0; log:\n%s", err, logs.String())
	}
	for _, want := range []string{`level=INFO msg="draining: listeners closed, waiting for live sessions" sessions=0`, `level=INFO msg=stopped`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// lockedWriter collects a subprocess's output for a test to poll.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits up to 20 s for re to match what w has collected.
func waitFor(t *testing.T, w *lockedWriter, re *regexp.Regexp) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if re.MatchString(w.String()) {
			return
		}
	}
	t.Fatalf("no line matching %s within 20s; log:\n%s", re, w.String())
}
