package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func TestExecExitCodeAndStderr(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	r := w.ssh(nil, "echo out; echo err >&2; exit 7")
	if r.code != 7 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("got code %d stdout %q stderr %q, want 7, %q, %q", r.code, r.stdout, r.stderr, "out\n", "err\n")
	}
	evs := w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Accept })
	if len(evs) != 1 || !strings.HasPrefix(evs[0].SessionID, "gw1/ssh-in:") || !strings.HasSuffix(evs[0].SessionID, "/ssh/session:0") {
		t.Fatalf("got exec events %+v, want one accepted with id gw1/ssh-in:N/ssh/session:0", evs)
	}
	if evs[0].User != "alice" || evs[0].ClientZone != "office" {
		t.Fatalf("got user %q zone %q, want alice, office", evs[0].User, evs[0].ClientZone)
	}
	ends := w.events("session.end", nil)
	if len(ends) != 1 || !strings.Contains(ends[0].Reason, "client closed") || ends[0].Detail["exit_status"] != float64(7) {
		t.Fatalf("got session.end %+v, want one ended by the client with exit_status 7", ends)
	}
}

func TestExecDeniedByPattern(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	marker := filepath.Join(w.dir, "must-survive")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.ssh(nil, "rm -rf "+marker)
	// The exec request is refused: ssh shows the reason, then its own
	// "exec request failed", and exits 255.
	if r.code != 255 || !strings.Contains(r.stderr, "sluice: denied by policy\r\nexec request failed") {
		t.Fatalf("got code %d stderr %q, want 255, the denial and ssh's exec request failed", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the denied command ran: %v", err)
	}
	evs := w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(evs) != 1 || evs[0].Rule != "services[ssh-in].policy.exec.deny[0]" {
		t.Fatalf("got %+v, want one reject by services[ssh-in].policy.exec.deny[0]", evs)
	}
	if ends := w.events("channel.end", nil); len(ends) != 1 || ends[0].Detail["exit_status"] != "missing" {
		t.Fatalf("got channel.end %+v, want exit_status missing: the refused command never ran", ends)
	}
}

// TestExecDeniedPerCommand drives real OpenSSH ssh with commands that hide
// rm from a whole-string match: each one is refused by deny[0] with its
// rule and the file survives, while ls still runs.
func TestExecDeniedPerCommand(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{policy: `      exec: {allow: [".*"], deny: ["rm( .*)?"]}
`})
	marker := filepath.Join(w.dir, "must-survive")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := w.ssh(nil, "ls "+marker); r.code != 0 || r.stdout != marker+"\n" {
		t.Fatalf("ls: got code %d stdout %q stderr %q, want 0 and the file", r.code, r.stdout, r.stderr)
	}
	attempts := []string{
		"true; rm " + marker,
		"true && rm " + marker,
		"/bin/rm " + marker,
		"r''m " + marker,
		"sh -c 'rm " + marker + "'",
		"echo $(rm " + marker + ")",
		"x=rm; $x " + marker,
	}
	for _, cmd := range attempts {
		if r := w.ssh(nil, cmd); r.code != 255 || !strings.Contains(r.stderr, "denied by policy") {
			t.Errorf("%q: got code %d stderr %q, want 255 and a denial message", cmd, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("a denied command ran: %v", err)
	}
	var evs []audit.Event
	// The last refusal may still be on its way to the store.
	for deadline := time.Now().Add(5 * time.Second); len(evs) < len(attempts) && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		evs = w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	}
	if len(evs) != len(attempts) {
		t.Fatalf("got %d rejected exec events, want %d: %+v", len(evs), len(attempts), evs)
	}
	for i, e := range evs {
		want := "services[ssh-in].policy.exec.deny[0]"
		if i == len(attempts)-1 {
			want = "services[ssh-in].policy.exec.match" // the program name is a variable
		}
		if e.Rule != want {
			t.Errorf("%q: got rule %q, want %q", e.Detail["command"], e.Rule, want)
		}
	}
}

func TestInteractiveShell(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	r := w.run(strings.NewReader("stty size; echo TERM=$TERM; exit 3\n"), "ssh",
		append(w.args("ssh"), "-tt", "-o", "SetEnv=TERM=xterm-sluice", w.target()+"@127.0.0.1")...)
	if r.code != 3 {
		t.Fatalf("got exit %d, want 3 (stdout %q stderr %q)", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "TERM=") {
		t.Fatalf("got %q, want the shell's output", r.stdout)
	}
}

func TestEnvAcceptedAndRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	r := w.ssh([]string{"-o", "SetEnv=LC_SLUICE=yes SECRET_THING=no"}, "echo lc=$LC_SLUICE secret=$SECRET_THING")
	if r.code != 0 || r.stdout != "lc=yes secret=\n" {
		t.Fatalf("got %d %q, want 0 %q", r.code, r.stdout, "lc=yes secret=\n")
	}
	if evs := w.events("env", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) != 1 || evs[0].Detail["name"] != "SECRET_THING" {
		t.Fatalf("got %+v, want one env reject for SECRET_THING", evs)
	}
}

func TestTargetOutsideServerZones(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{serverZones: "[elsewhere]"})
	// OpenSSH logs a refused channel at INFO.
	args := w.args("ssh")
	args[slices.Index(args, "LogLevel=ERROR")] = "LogLevel=INFO"
	before := len(w.sshd.Log(t))
	r := w.run(nil, "ssh", append(args, w.target()+"@127.0.0.1", "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "sluice: not permitted") {
		t.Fatalf("got %d %q, want a failure saying the target is not permitted", r.code, r.stderr)
	}
	if evs := w.events("connect", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) != 1 || evs[0].Rule != "services[ssh-in].server_zones" {
		t.Fatalf("got %+v, want one connect reject by services[ssh-in].server_zones", evs)
	}
	if log := w.sshd.Log(t)[before:]; strings.Contains(log, "Connection from") {
		t.Fatalf("the gateway connected to a target outside server_zones:\n%s", log)
	}
}

func TestUpstreamHostKeyUnknownOrChanged(t *testing.T) {
	t.Parallel()
	otherSigner, _ := sshtest.NewKey(t, t.TempDir(), "other")
	for name, kh := range map[string]func(*sshtest.Sshd) string{
		"unknown": func(*sshtest.Sshd) string { return "" },
		"changed": func(s *sshtest.Sshd) string { return sshtest.KnownHostsLine(s.Addr, otherSigner.PublicKey()) + "\n" },
	} {
		t.Run(name, func(t *testing.T) {
			// The known_hosts content depends on the sshd's address, known
			// only once it runs: write it after the world starts.
			w := newWorld(t, worldOptions{})
			if err := os.WriteFile(filepath.Join(w.dir, "known_hosts"), []byte(kh(w.sshd)), 0o600); err != nil {
				t.Fatal(err)
			}
			before := len(w.sshd.Log(t))
			r := w.ssh(nil, "true")
			if r.code == 0 {
				t.Fatalf("got exit 0, want the login refused (stderr %q)", r.stderr)
			}
			if evs := w.events("upstream", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) == 0 {
				t.Fatal("got no upstream reject in the audit, want one")
			}
			log := w.sshd.Log(t)[before:]
			if !strings.Contains(log, "Connection from") {
				t.Fatalf("the gateway never reached the target; the test proves nothing:\n%s", log)
			}
			for _, bad := range []string{"userauth-request", "Accepted publickey", "Failed publickey"} {
				if strings.Contains(log, bad) {
					t.Fatalf("sshd log has %q: a credential was sent to an unverified host:\n%s", bad, log)
				}
			}
		})
	}
}

func TestForwardLocal(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	echo := startEcho(t)
	// ssh -W: stdio forwarded to a permitted address.
	r := w.run(strings.NewReader("ping\n"), "ssh", append(w.args("ssh"), "-W", echo, w.target()+"@127.0.0.1")...)
	if r.stdout != "ping\n" {
		t.Fatalf("ssh -W permitted: got %q (stderr %q), want %q", r.stdout, r.stderr, "ping\n")
	}
	// Denied: a host not in forward_local.
	r = w.run(strings.NewReader("ping\n"), "ssh", append(w.args("ssh"), "-W", "localhost:22", w.target()+"@127.0.0.1")...)
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("ssh -W denied: got %d %q, want a failure and no data", r.code, r.stdout)
	}
	if evs := w.events("forward.local", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) != 1 || !strings.Contains(evs[0].SessionID, "/direct-tcpip:") || !strings.HasSuffix(evs[0].SessionID, "/plug") {
		t.Fatalf("got %+v, want one reject with a .../direct-tcpip:N/plug id", evs)
	}
	// ssh -L through the gateway.
	lport := sshtest.FreePort(t)
	args := append(w.args("ssh"), "-N", "-o", "ExitOnForwardFailure=yes", "-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, echo), w.target()+"@127.0.0.1")
	cmd := execCommand(t, "ssh", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var c net.Conn
	var err error
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lport)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ssh -L did not listen: %v", err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	buf := make([]byte, 6)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello\n" {
		t.Fatalf("ssh -L: got %q, %v; want %q", buf, err, "hello\n")
	}
}

func TestForwardRemoteDeniedByDefault(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	r := w.ssh([]string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9"}, "true")
	if r.code == 0 {
		t.Fatalf("got exit 0, want ssh -R refused (stderr %q)", r.stderr)
	}
	if evs := w.events("forward.remote", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) != 1 {
		t.Fatalf("got %+v, want one forward.remote reject", evs)
	}
}

func TestSFTPAndSCP(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "sftp")
	sshtest.RequireTool(t, "scp")
	w := newWorld(t, worldOptions{})
	size := 100 << 20
	if testing.Short() {
		size = 4 << 20
	}
	src := filepath.Join(w.dir, "src.bin")
	want := writeRandom(t, src, size)
	// scp, sftp and rsync read the ':' of USER+HOST:PORT@gw:path as the
	// start of a path: the inband name goes in -o User= instead.
	user := "User=" + w.target()
	dest := "127.0.0.1"

	sftpDst := filepath.Join(w.dir, "via-sftp.bin")
	batch := fmt.Sprintf("put %s %s\nget %s %s\n", src, sftpDst, sftpDst, sftpDst+".back")
	r := w.run(strings.NewReader(batch), "sftp", append(w.args("sftp"), "-o", user, "-b", "-", dest)...)
	if r.code != 0 {
		t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
	}
	for _, p := range []string{sftpDst, sftpDst + ".back"} {
		if got := fileSum(t, p); got != want {
			t.Fatalf("sftp %s: got sha256 %x, want %x", p, got, want)
		}
	}
	for _, mode := range [][]string{nil, {"-O"}} {
		dst := filepath.Join(w.dir, fmt.Sprintf("via-scp%d.bin", len(mode)))
		args := append(append(w.args("scp"), mode...), "-o", user, src, dest+":"+dst)
		if r := w.run(nil, "scp", args...); r.code != 0 {
			t.Fatalf("scp %v: exit %d: %s", mode, r.code, r.stderr)
		}
		if got := fileSum(t, dst); got != want {
			t.Fatalf("scp %v: got sha256 %x, want %x", mode, got, want)
		}
	}
}

func TestRsync(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "rsync")
	w := newWorld(t, worldOptions{})
	srcDir := filepath.Join(w.dir, "tree")
	if err := os.MkdirAll(filepath.Join(srcDir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	want := writeRandom(t, filepath.Join(srcDir, "sub", "f.bin"), 1<<20)
	sshCmd := "ssh " + strings.Join(w.args("ssh"), " ") + " -o User=" + w.target()
	dst := filepath.Join(w.dir, "copy")
	r := w.run(nil, "rsync", "-a", "-e", sshCmd, srcDir+"/", "127.0.0.1:"+dst+"/")
	if r.code != 0 {
		t.Fatalf("rsync: exit %d: %s", r.code, r.stderr)
	}
	if got := fileSum(t, filepath.Join(dst, "sub", "f.bin")); got != want {
		t.Fatalf("rsync: got sha256 %x, want %x", got, want)
	}
}

func execCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	return cmd
}

func startEcho(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

func writeRandom(t *testing.T, path string, n int) [32]byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return sha256.Sum256(b)
}

// TestRoutingRefusalTexts: a client whose session cannot be set up learns
// which of three things went wrong (no such host, not permitted, or
// unavailable) and nothing more: no address, no rule, no upstream error.
func TestRoutingRefusalTexts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	args := w.args("ssh")
	args[slices.Index(args, "LogLevel=ERROR")] = "LogLevel=INFO"
	for _, tc := range []struct{ user, want string }{
		{"alice+bad..name:22", "sluice: no such host"},
		{"alice+127.0.0.1:0x16", "sluice: no such host"},
		{"alice+10.1.2.3:22", "sluice: not permitted"}, // outside server_zones
		{"alice+127.0.0.1:" + closedPort, "sluice: target unavailable"},
	} {
		r := w.run(nil, "ssh", append(args, tc.user+"@127.0.0.1", "true")...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: got %d %q, want refused with %q", tc.user, r.code, r.stderr, tc.want)
		}
		for _, leak := range []string{"router", "chainer", "services[", "refused", "10.1.2.3"} {
			if strings.Contains(r.stderr, leak) {
				t.Errorf("%s: the client reads %q, which names internals (%q)", tc.user, r.stderr, leak)
			}
		}
	}
}
