package target

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is a Target served on loopback for one test.
type server struct {
	addr    string
	port    int
	hostKey ssh.PublicKey
	signer  ssh.Signer // the client key it accepts
	keyPath string     // the same key for OpenSSH clients
	user    string
}

func startTarget(t *testing.T, opts Options) *server {
	t.Helper()
	dir := t.TempDir()
	host, _ := sshtest.NewKey(t, dir, "host")
	client, keyPath := sshtest.NewKey(t, dir, "client")
	want := client.PublicKey().Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), want) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(host)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	tg := New(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.Serve(ctx, l, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: got %v, want nil", err)
		}
	})
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	return &server{
		addr:    l.Addr().String(),
		port:    l.Addr().(*net.TCPAddr).Port,
		hostKey: host.PublicKey(),
		signer:  client,
		keyPath: keyPath,
		user:    u.Username,
	}
}

func (s *server) dial(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.addr, sshtest.ClientConfig(s.user, s.signer, s.hostKey))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *server) session(t *testing.T) *ssh.Session {
	t.Helper()
	sess, err := s.dial(t).NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// sshCmd returns an OpenSSH command connecting to s; extra goes before the
// destination, remote after it.
func (s *server) sshCmd(t *testing.T, tool string, extra []string, remote ...string) *exec.Cmd {
	t.Helper()
	path := sshtest.RequireTool(t, tool)
	args := append(sshtest.ClientArgs(t, tool, s.port, s.keyPath, s.hostKey), extra...)
	args = append(args, s.user+"@127.0.0.1")
	args = append(args, remote...)
	return exec.Command(path, args...)
}

func TestExecExitStatus(t *testing.T) {
	s := startTarget(t, Options{})
	for _, want := range []int{0, 1, 7, 255} {
		t.Run(strconv.Itoa(want), func(t *testing.T) {
			out, err := s.sshCmd(t, "ssh", nil, fmt.Sprintf("exit %d", want)).CombinedOutput()
			got := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				got = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("ssh: %v\n%s", err, out)
			}
			if got != want {
				t.Errorf("exit status: got %d, want %d (output %q)", got, want, out)
			}
		})
	}
}

func TestExecExitSignal(t *testing.T) {
	s := startTarget(t, Options{})
	err := s.session(t).Run("kill -TERM $$")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run: got %v, want *ssh.ExitError", err)
	}
	if got, want := ee.Signal(), "TERM"; got != want {
		t.Errorf("exit signal: got %q, want %q", got, want)
	}
}

func TestStderrSeparate(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Run("echo out; echo err >&2; echo out2"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := stdout.String(), "out\nout2\n"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if got, want := stderr.String(), "err\n"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
}

func TestStdinEOF(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	sess.Stdin = strings.NewReader("one\ntwo\n")
	out, err := sess.Output("wc -l")
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	if got, want := strings.TrimSpace(string(out)), "2"; got != want {
		t.Errorf("wc -l of stdin: got %q, want %q", got, want)
	}
}

func TestShellWithoutPty(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	sess.Stdin = strings.NewReader("echo from-shell\nexit 4\n")
	var stdout bytes.Buffer
	sess.Stdout = &stdout
	if err := sess.Shell(); err != nil {
		t.Fatalf("Shell: %v", err)
	}
	err := sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 4 {
		t.Errorf("Wait: got %v, want exit status 4", err)
	}
	if got, want := stdout.String(), "from-shell\n"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

func TestEnvAcceptance(t *testing.T) {
	s := startTarget(t, Options{AcceptEnv: func(name, _ string) bool { return strings.HasPrefix(name, "LC_") }})

	t.Run("crypto", func(t *testing.T) {
		sess := s.session(t)
		if err := sess.Setenv("LC_SLUICE", "yes"); err != nil {
			t.Errorf("Setenv LC_SLUICE: got %v, want nil", err)
		}
		if err := sess.Setenv("SLUICE_NO", "no"); err == nil {
			t.Error("Setenv SLUICE_NO: got nil, want refusal")
		}
		out, err := sess.Output(`echo "$LC_SLUICE-$SLUICE_NO-$HOME"`)
		if err != nil {
			t.Fatalf("Output: %v", err)
		}
		home, _ := os.UserHomeDir()
		if got, want := string(out), "yes--"+home+"\n"; got != want {
			t.Errorf("env: got %q, want %q", got, want)
		}
	})

	t.Run("openssh", func(t *testing.T) {
		cmd := s.sshCmd(t, "ssh", []string{"-o", "SendEnv=LC_SLUICE SLUICE_NO"}, `echo "$LC_SLUICE-$SLUICE_NO"`)
		cmd.Env = append(os.Environ(), "LC_SLUICE=sent", "SLUICE_NO=sent")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ssh: %v\n%s", err, out)
		}
		if got, want := string(out), "sent-\n"; got != want {
			t.Errorf("env: got %q, want %q", got, want)
		}
	})
}

func TestPtyOpenSSH(t *testing.T) {
	s := startTarget(t, Options{})
	cmd := s.sshCmd(t, "ssh", []string{"-t"}, `echo "term=$TERM size=$(stty size)"; test -t 0 && echo is-a-tty`)
	cmd.Env = append(os.Environ(), "TERM=xterm-sluice")
	// ssh -t takes the terminal size from its own terminal.
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 33, Cols: 111})
	if err != nil {
		t.Fatalf("start ssh on a pty: %v", err)
	}
	out, _ := io.ReadAll(f) // ends with EIO once ssh exits
	f.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	for _, want := range []string{"term=xterm-sluice size=33 111", "is-a-tty"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output: got %q, want it to contain %q", out, want)
		}
	}
}

func TestPtyForcedWithoutTerminal(t *testing.T) {
	s := startTarget(t, Options{})
	cmd := s.sshCmd(t, "ssh", []string{"-tt"}, `tty >/dev/null && echo tty-ok; exit 3`)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("ssh -tt: got %v, want exit status 3\n%s", err, out)
	}
	if !strings.Contains(string(out), "tty-ok\r\n") {
		t.Errorf("output: got %q, want tty-ok with a pty line ending", out)
	}
}

func TestPtyModesAndSize(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	modes := ssh.TerminalModes{ssh.ECHO: 0, ssh.ICANON: 1, ssh.VINTR: 3, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400, 100: 1}
	if err := sess.RequestPty("vt100-sluice", 40, 132, modes); err != nil {
		t.Fatalf("RequestPty: %v", err)
	}
	out, err := sess.Output(`echo "$TERM $(stty size)"; stty -a | grep -o -- '-echo '`)
	if err != nil {
		t.Fatalf("Output: %v\n%s", err, out)
	}
	if got, want := string(out), "vt100-sluice 40 132\r\n-echo \r\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
}

// lines delivers r's lines (with CR removed) on a channel until EOF.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- strings.TrimRight(sc.Text(), "\r")
		}
	}()
	return ch
}

func waitLine(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("no line %q within 10s", want)
		}
	}
}

func TestWindowChange(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	if err := sess.RequestPty("xterm", 24, 80, nil); err != nil {
		t.Fatalf("RequestPty: %v", err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := lines(stdout)
	if err := sess.Start(`trap 'echo "size $(stty size)"; exit 0' WINCH; echo ready; while :; do sleep 0.05; done`); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitLine(t, out, "ready")
	if err := sess.WindowChange(50, 100); err != nil {
		t.Fatalf("WindowChange: %v", err)
	}
	waitLine(t, out, "size 50 100")
	if err := sess.Wait(); err != nil {
		t.Errorf("Wait: got %v, want nil", err)
	}
}

func TestSignalDelivery(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := lines(stdout)
	if err := sess.Start(`trap 'echo got-usr1; exit 3' USR1; echo ready; while :; do sleep 0.05; done`); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitLine(t, out, "ready")
	if err := sess.Signal(ssh.SIGUSR1); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	waitLine(t, out, "got-usr1")
	err = sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
		t.Errorf("Wait: got %v, want exit status 3", err)
	}
}

func TestSignalKillsCommand(t *testing.T) {
	s := startTarget(t, Options{})
	sess := s.session(t)
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := lines(stdout)
	if err := sess.Start(`echo ready; exec sleep 1000`); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitLine(t, out, "ready")
	if err := sess.Signal(ssh.SIGINT); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	err = sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "INT" {
		t.Errorf("Wait: got %v, want exit signal INT", err)
	}
}

func TestUnknownSubsystemRefused(t *testing.T) {
	s := startTarget(t, Options{})
	if err := s.session(t).RequestSubsystem("no-such-subsystem"); err == nil {
		t.Error("RequestSubsystem: got nil, want refusal")
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d: got still alive after 10s, want killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestChannelCloseKillsProcessGroup(t *testing.T) {
	for _, withPty := range []bool{false, true} {
		t.Run(fmt.Sprintf("pty=%v", withPty), func(t *testing.T) {
			s := startTarget(t, Options{})
			sess := s.session(t)
			if withPty {
				if err := sess.RequestPty("xterm", 24, 80, nil); err != nil {
					t.Fatalf("RequestPty: %v", err)
				}
			}
			stdout, err := sess.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			out := lines(stdout)
			if err := sess.Start(`sleep 1000 & echo "pids $$ $!"; wait`); err != nil {
				t.Fatalf("Start: %v", err)
			}
			var shell, bg int
			select {
			case l := <-out:
				if _, err := fmt.Sscanf(l, "pids %d %d", &shell, &bg); err != nil {
					t.Fatalf("pids line %q: %v", l, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no pids line within 10s")
			}
			sess.Close()
			waitDead(t, shell)
			waitDead(t, bg)
		})
	}
}

func TestExitKillsBackgroundJobs(t *testing.T) {
	s := startTarget(t, Options{})
	start := time.Now()
	out, err := s.session(t).Output(`sleep 1000 & echo $!`)
	if err != nil {
		t.Fatalf("Output: %v", err)
	}
	if d := time.Since(start); d > drainTimeout {
		t.Errorf("command with a background job: got %v to finish, want under %v", d, drainTimeout)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("pid %q: %v", out, err)
	}
	waitDead(t, pid)
}

func sha256File(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestSFTPPutGet(t *testing.T) {
	s := startTarget(t, Options{})
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := make([]byte, 10<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(dir, "remote.bin")
	back := filepath.Join(dir, "back.bin")
	batch := filepath.Join(dir, "batch")
	script := fmt.Sprintf("put %s %s\nget %s %s\n", src, remote, remote, back)
	if err := os.WriteFile(batch, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := s.sshCmd(t, "sftp", []string{"-b", batch}).CombinedOutput()
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	want := sha256.Sum256(data)
	for _, p := range []string{remote, back} {
		if got := sha256File(t, p); got != want {
			t.Errorf("%s: got sha256 %x, want %x", filepath.Base(p), got, want)
		}
	}
}

func TestExecLargeOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB transfer skipped with -short")
	}
	const size = 1 << 30
	s := startTarget(t, Options{})
	sess := s.session(t)
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start(fmt.Sprintf("head -c %d /dev/zero", size)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, stdout)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := sess.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n != size {
		t.Fatalf("bytes: got %d, want %d", n, size)
	}
	want := sha256.New()
	io.CopyN(want, zeroReader{}, size)
	if got, want := h.Sum(nil), want.Sum(nil); !bytes.Equal(got, want) {
		t.Errorf("sha256: got %x, want %x", got, want)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
