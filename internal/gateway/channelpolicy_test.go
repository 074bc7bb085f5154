package gateway

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// TestNoMoreSessions: after no-more-sessions@openssh.com a session open is
// refused and the connection ended, as sshd does; the session opened
// before it keeps working until then.
func TestNoMoreSessions(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	signer := readSigner(t, w.aliceKey)
	c := w.dial(t, &ssh.ClientConfig{User: w.target(), Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(w.hostKey), Timeout: 10 * time.Second})
	defer c.Close()
	first, err := c.NewSession()
	if err != nil {
		t.Fatalf("first session: %v", err)
	}
	// sshd answers it true when a reply is wanted (OpenSSH sends none).
	ok, _, err := c.SendRequest("no-more-sessions@openssh.com", true, nil)
	if err != nil || !ok {
		t.Fatalf("no-more-sessions: got %v, %v, want accepted", ok, err)
	}
	if out, err := first.Output("echo first"); err != nil || string(out) != "first\n" {
		t.Fatalf("session opened before the request: got %q, %v, want %q", out, err, "first\n")
	}
	if s, err := c.NewSession(); err == nil {
		s.Close()
		t.Fatal("second session: got opened, want refused")
	}
	evs := w.events("channel", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(evs) != 1 || evs[0].Rule != "no-more-sessions@openssh.com" {
		t.Fatalf("got %+v, want one channel refusal by no-more-sessions@openssh.com", evs)
	}
	if ends := w.events("session.end", nil); len(ends) != 1 || !strings.Contains(ends[0].Reason, "no-more-sessions") {
		t.Fatalf("got session.end %+v, want the connection ended for no-more-sessions", ends)
	}
}

func readSigner(t *testing.T, path string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordingListener counts the connections made to it.
type recordingListener struct {
	ln      net.Listener
	accepts atomic.Int64
}

func listenRecording(t *testing.T, addr string) *recordingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &recordingListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepts.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

func (l *recordingListener) port() string {
	return strconv.Itoa(l.ln.Addr().(*net.TCPAddr).Port)
}

// TestUnspecifiedTargetsNeverDialled: 0.0.0.0, :: and ::ffff:0.0.0.0 reach
// the machine itself. As a route's target they are refused before the
// gateway dials, even in a server zone that covers them; as a forward's
// destination before the target is asked, even under forward_local "*:*".
func TestUnspecifiedTargetsNeverDialled(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{
		zones:       "  - {name: anywhere, networks: [\"0.0.0.0/0\", \"::/0\"]}\n",
		serverZones: "[servers, anywhere]",
		policy:      "      exec: {allow: [\".*\"]}\n      forward_local: [\"*:*\"]\n",
	})
	l := listenRecording(t, "127.0.0.1:0")
	args := w.args("ssh")
	args[slices.Index(args, "LogLevel=ERROR")] = "LogLevel=INFO"
	for _, host := range []string{"0.0.0.0", "[::]", "[::ffff:0.0.0.0]"} {
		r := w.run(nil, "ssh", append(args, "alice+"+host+":"+l.port()+"@127.0.0.1", "true")...)
		if r.code == 0 || !strings.Contains(r.stderr, "sluice: not permitted") {
			t.Errorf("route to %s: got %d %q, want refused with the fixed text", host, r.code, r.stderr)
		}
	}
	var evs []audit.Event
	for deadline := time.Now().Add(5 * time.Second); len(evs) < 3 && time.Now().Before(deadline); sleepBriefly() {
		evs = w.events("connect", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	}
	if len(evs) != 3 {
		t.Errorf("got %d connect refusals, want 3", len(evs))
	}
	for _, e := range evs {
		if !strings.Contains(e.Reason, "unspecified address") {
			t.Errorf("got connect refusal %q, want the unspecified address named", e.Reason)
		}
	}
	for _, dest := range []string{"0.0.0.0", "0", "[::]", "[::ffff:0.0.0.0]"} {
		r := w.run(strings.NewReader("ping\n"), "ssh", append(args, "-W", dest+":"+l.port(), w.target()+"@127.0.0.1")...)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "sluice: administratively prohibited") {
			t.Errorf("ssh -W %s: got %d %q %q, want refused with the fixed text", dest, r.code, r.stdout, r.stderr)
		}
	}
	if n := l.accepts.Load(); n != 0 {
		t.Fatalf("got %d connections at the listener, want 0", n)
	}
}

// TestForwardRefusalTextFixed: when the target refuses a forward, the
// client gets the fixed text for the reason code, not the target's own
// text (which names its hosts and errors).
func TestForwardRefusalTextFixed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	args := w.args("ssh")
	args[slices.Index(args, "LogLevel=ERROR")] = "LogLevel=INFO"
	r := w.run(strings.NewReader("ping\n"), "ssh", append(args, "-W", closed, w.target()+"@127.0.0.1")...)
	if r.code == 0 || !strings.Contains(r.stderr, "connect failed: sluice: connect failed") || strings.Contains(r.stderr, "refused") {
		t.Fatalf("got %d %q, want the fixed text %q and nothing of the target's", r.code, r.stderr, "sluice: connect failed")
	}
	evs := w.events("forward.local.end", nil)
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "Connection refused") {
		t.Fatalf("got %+v, want the target's text in the audit", evs)
	}
}

// TestGitProtocolV2: GIT_PROTOCOL passes by default, so git over ssh
// through the gateway negotiates protocol v2 (with a target that accepts
// it, as git's documentation asks of sshd).
func TestGitProtocolV2(t *testing.T) {
	t.Parallel()
	git := sshtest.RequireTool(t, "git")
	w := newWorld(t, worldOptions{sshdConfig: []string{"AcceptEnv GIT_PROTOCOL"}})
	repo := filepath.Join(w.dir, "repo.git")
	if out, err := exec.Command(git, "init", "-q", "--bare", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	sshCmd := "ssh " + strings.Join(append(w.args("ssh"), "-o", "User="+w.target()), " ")
	r := w.run(nil, "env", "GIT_SSH_COMMAND="+sshCmd, "GIT_TRACE_PACKET=1",
		git, "-c", "protocol.version=2", "ls-remote", "ssh://127.0.0.1:"+strconv.Itoa(w.port)+repo)
	if r.code != 0 || !strings.Contains(r.stderr, "< version 2") {
		t.Fatalf("git ls-remote: got %d, want protocol v2 in the packet trace:\n%s", r.code, r.stderr)
	}
	evs := w.events("env", func(e audit.Event) bool { return e.Detail["name"] == "GIT_PROTOCOL" })
	if len(evs) != 1 || evs[0].Verdict != audit.Accept {
		t.Fatalf("got %+v, want GIT_PROTOCOL accepted", evs)
	}
}
