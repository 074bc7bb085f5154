package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsCarrySessionID: every log line the gateway writes about a
// connection — login, exec, a refusal, the end, and a source penalised for
// a failed login — carries the session_id of that connection.
// Gateway-wide lines (start, reload, shutdown) are exempt; none is
// written while the sessions run.
func TestLogsCarrySessionID(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	w := newWorld(t, worldOptions{logs: logs, gateway: "  max_auth_tries: 1\n  auth_penalty: 1m\n"})
	if r := w.ssh(nil, "echo ok"); r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("exec: got %d %q (stderr %q), want 0 %q", r.code, r.stdout, r.stderr, "ok\n")
	}
	if r := w.ssh(nil, "rm -rf /nonexistent"); r.code != 255 || !strings.Contains(r.stderr, "denied by policy") {
		t.Fatalf("denied exec: got %d (stderr %q), want 255 and the denial", r.code, r.stderr)
	}
	// One failed login penalises the source (max_auth_tries 1): last, as
	// it refuses every later connection from it.
	bad := w.args("ssh")
	_, otherKey := sshtest.NewKey(t, t.TempDir(), "stranger")
	bad[slices.Index(bad, w.aliceKey)] = otherKey
	if r := w.run(nil, "ssh", append(bad, w.target()+"@127.0.0.1", "true")...); r.code == 0 {
		t.Fatal("a login with an unknown key succeeded")
	}
	w.waitEvents(t, "session.end", 2, nil)
	w.waitEvents(t, "auth", 3, nil)

	seen := map[string]int{}
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := rec["msg"].(string)
		id, _ := rec["session_id"].(string)
		if !strings.HasPrefix(id, "gw1/ssh-in:") {
			t.Errorf("got a line without a session_id: %s", strings.TrimSpace(line))
		}
		seen[msg]++
	}
	t.Logf("lines by message: %v", seen)
	for _, msg := range []string{"client authenticated", "session started", "refused", "session ended", "source penalised for failed authentication"} {
		if seen[msg] == 0 {
			t.Errorf("no %q line in the log, want at least one", msg)
		}
	}
}

// logLines parses the JSON log lines of logs.
func logLines(t *testing.T, logs *lockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// withMsg returns the lines whose message is msg.
func withMsg(lines []map[string]any, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestOperatorLogLines: what an operator greps for. A failed login is one
// WARN line naming user, source, methods and rule (not one per key the
// client tried); a login that succeeds after a refused key writes none; a
// target whose host key changed is a WARN line naming both keys, and its
// client reads "target unavailable"; a stop writes the drain and the
// stop at INFO.
func TestOperatorLogLines(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	w := newWorld(t, worldOptions{logs: logs})

	// Two unknown keys offered, then the connection gives up.
	dir := t.TempDir()
	_, k1 := sshtest.NewKey(t, dir, "stranger1")
	_, k2 := sshtest.NewKey(t, dir, "stranger2")
	bad := w.args("ssh")
	bad[slices.Index(bad, w.aliceKey)] = k1
	bad = append(bad, "-i", k2)
	if r := w.run(nil, "ssh", append(bad, w.target()+"@127.0.0.1", "true")...); r.code == 0 {
		t.Fatal("a login with unknown keys succeeded")
	}
	// A refused key, then alice's: a login that succeeds.
	good := w.args("ssh")
	i := slices.Index(good, w.aliceKey)
	good = slices.Insert(good, i-1, "-i", k1)
	if r := w.run(nil, "ssh", append(good, w.target()+"@127.0.0.1", "echo ok")...); r.code != 0 {
		t.Fatalf("login with a refused key then the right one: %d %q", r.code, r.stderr)
	}
	w.waitEvents(t, "session.end", 1, nil)

	// The target's host key changes.
	other, _ := sshtest.NewKey(t, dir, "other_host")
	line := sshtest.KnownHostsLine(w.sshd.Addr, other.PublicKey()) + "\n"
	if err := os.WriteFile(filepath.Join(w.dir, "known_hosts"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	// OpenSSH logs a refused channel at INFO.
	args := w.args("ssh")
	args[slices.Index(args, "LogLevel=ERROR")] = "LogLevel=INFO"
	r := w.run(nil, "ssh", append(args, w.target()+"@127.0.0.1", "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "sluice: target unavailable") {
		t.Fatalf("changed host key: got %d %q, want the session refused as unavailable", r.code, r.stderr)
	}
	w.waitEvents(t, "upstream", 2, nil)
	w.stop()

	lines := logLines(t, logs)
	failed := withMsg(lines, "login failed")
	if len(failed) != 1 {
		t.Fatalf("got %d \"login failed\" lines, want 1 (for the failed login only): %v", len(failed), failed)
	}
	f := failed[0]
	if f["level"] != "WARN" || f["user"] != "alice" || f["methods"] != "publickey" || f["rule"] != "users[alice].authorized_keys" ||
		!strings.HasPrefix(f["source"].(string), clientAddr+":") || f["attempts"].(float64) < 2 {
		t.Errorf("login failed line: %v", f)
	}
	mismatch := withMsg(lines, "upstream host key mismatch: the target offered a key other than the one on record")
	if len(mismatch) != 1 || mismatch[0]["level"] != "WARN" || mismatch[0]["target"] != w.sshd.Addr ||
		!strings.Contains(fmt.Sprint(mismatch[0]["known"]), ssh.FingerprintSHA256(other.PublicKey())) {
		t.Errorf("host key mismatch lines: %v", mismatch)
	}
	for _, msg := range []string{"draining: listeners closed, waiting for live sessions", "stopped"} {
		if l := withMsg(lines, msg); len(l) != 1 || l[0]["level"] != "INFO" {
			t.Errorf("%q lines: %v, want one at INFO", msg, l)
		}
	}
}

// TestFailedLoginLogThinned: a flood of failed logins writes at most
// loginLogBurst lines one by one per window; the rest are counted in a
// summary line written when the window ends (here: at stop). Every failed
// login is either a line or counted. (The windowing itself is checked
// with exact times by internal/thin's TestBurstWindow.)
func TestFailedLoginLogThinned(t *testing.T) {
	logs := &lockedBuffer{}
	w := newWorld(t, worldOptions{logs: logs})
	cfg := w.aliceConfig(t)
	_, stranger := sshtest.NewKey(t, t.TempDir(), "stranger")
	pem, err := os.ReadFile(stranger)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	const n = loginLogBurst + 15
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}, Timeout: 10 * time.Second}
	start := time.Now()
	for range n {
		nc, err := d.Dial("tcp", w.gw.Addr("ssh-in").String())
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := ssh.NewClientConn(nc, "gw", cfg); err == nil {
			t.Fatal("a login with an unknown key succeeded")
		}
		nc.Close()
	}
	took := time.Since(start)
	w.stop() // waits for every connection, so each has logged
	lines := logLines(t, logs)
	one := len(withMsg(lines, "login failed"))
	counted := 0
	for _, l := range withMsg(lines, "failed logins not logged one by one") {
		counted += int(l["count"].(float64))
	}
	if one+counted != n {
		t.Errorf("%d lines and %d counted in summaries, want %d failed logins in all", one, counted, n)
	}
	windows := int(took/loginLogWindow) + 1
	if one > windows*loginLogBurst {
		t.Errorf("%d login failed lines in %v, want at most %d per %v", one, took, loginLogBurst, loginLogWindow)
	}
	if took < loginLogWindow && (one != loginLogBurst || counted != n-loginLogBurst) {
		t.Errorf("within one window: %d lines and %d counted, want %d and %d", one, counted, loginLogBurst, n-loginLogBurst)
	}
}
