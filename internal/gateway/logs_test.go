package gateway

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"

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
