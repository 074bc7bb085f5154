package gateway

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
)

// startLive starts an OpenSSH session through the gateway that stays
// until it is ended, and returns once it runs.
func (w *world) startLive(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ssh", append(w.args("ssh"), w.target()+"@127.0.0.1", "echo started; sleep 60")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("live session: got %q, %v, want started", line, err)
	}
	return cmd
}

// waitExit waits for cmd to end and returns its error.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("the session did not end within %v", within)
		return nil
	}
}

// breakAuditStore closes the gateway's audit store and writes an event, so
// that the queue's writer meets the failure.
func (w *world) breakAuditStore(t *testing.T) {
	t.Helper()
	if err := w.gw.store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.gw.queue.Write(context.Background(), audit.Event{Time: time.Now(), Type: "probe"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.gw.queue.Dropped() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the audit queue lost no event within 5s")
		}
		sleepBriefly()
	}
}

func TestAuditUnavailableFailClosed(t *testing.T) {
	w := newWorld(t, worldOptions{})
	live := w.startLive(t)
	w.breakAuditStore(t)
	if err := w.gw.queue.Healthy(); err == nil {
		t.Fatal("queue Healthy: got nil, want the store failure")
	}
	// The live session is ended...
	var ee *exec.ExitError
	if err := waitExit(t, live, 15*time.Second); !errors.As(err, &ee) {
		t.Fatalf("live session: got %v, want it ended with an error", err)
	}
	if got := w.liveAfter(0); len(got) != 0 {
		t.Fatalf("live sessions: got %+v, want none", got)
	}
	// ...and a new one refused.
	r := w.ssh(nil, "echo new-MARK")
	if r.code != 255 || strings.Contains(r.stdout, "new-MARK") {
		t.Fatalf("new login: got %d %q %q, want 255 and nothing run", r.code, r.stdout, r.stderr)
	}
	rule, err := w.gw.admit(nil)
	if rule != "audit.on_failure" || !errors.Is(err, ErrAuditUnavailable) || !errors.Is(err, session.ErrDenied) || !strings.Contains(err.Error(), "audit store unavailable") {
		t.Fatalf("admit: got %q, %v, want audit.on_failure and ErrAuditUnavailable", rule, err)
	}
}

func TestAuditUnavailableBestEffort(t *testing.T) {
	w := newWorld(t, worldOptions{tail: "  on_failure: best_effort\n"})
	live := w.startLive(t)
	w.breakAuditStore(t)
	if err := w.gw.queue.Healthy(); err != nil {
		t.Fatalf("queue Healthy: got %v, want nil under best_effort", err)
	}
	r := w.ssh(nil, "echo new-MARK")
	if r.code != 0 || r.stdout != "new-MARK\n" {
		t.Fatalf("new login: got %d %q %q, want 0 and new-MARK", r.code, r.stdout, r.stderr)
	}
	// The second session's end is accounted just after its client exits.
	if got := w.liveAfter(1); len(got) != 1 {
		t.Fatalf("live sessions: got %+v, want the first one still live", got)
	}
	if live.ProcessState != nil {
		t.Fatal("the live session ended, want it to go on")
	}
	if got := w.gw.queue.Dropped(); got < 2 {
		t.Errorf("Dropped: got %d, want the probe and the new session's events", got)
	}
}

// liveAfter returns the live sessions once there are n of them, or after 5s.
func (w *world) liveAfter(n int) []admin.Session {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := w.gw.LiveSessions()
		if len(got) == n || time.Now().After(deadline) {
			return got
		}
		sleepBriefly()
	}
}
