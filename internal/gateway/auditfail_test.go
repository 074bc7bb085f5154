package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshtest"
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

// auditWorldOptions is a world whose audit store is probed every 200ms,
// with the admin listener, under on_failure mode.
func auditWorldOptions(mode string) worldOptions {
	return worldOptions{
		gateway: "  admin:\n    listen: 127.0.0.1:0\n",
		tail:    "  on_failure: " + mode + "\n  probe_interval: 200ms\n",
	}
}

// healthz returns /healthz's status and body.
func (w *world) healthz(t *testing.T) (int, string) {
	t.Helper()
	return get(t, "http://"+w.gw.AdminAddr().String()+"/healthz")
}

// storeUp returns the sluice_audit_store_up line of /metrics.
func (w *world) storeUp(t *testing.T) string {
	t.Helper()
	_, body := get(t, "http://"+w.gw.AdminAddr().String()+"/metrics")
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "sluice_audit_store_up ") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("/metrics: no sluice_audit_store_up in %q", body)
	return ""
}

// waitHealthz polls /healthz until its status is code and its body starts
// with prefix, for up to 20s.
func (w *world) waitHealthz(t *testing.T, code int, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, body := w.healthz(t)
		if c == code && strings.HasPrefix(body, prefix) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: got %d %q, want %d %q...", c, body, code, prefix)
		}
		sleepBriefly()
	}
}

// immutable sets the immutable attribute (chattr +i) on paths, which even
// root cannot write, and returns the function that clears it (also run at
// cleanup). Without chattr or the attribute the test fails under
// SLUICE_INTEROP=require and is skipped otherwise.
func immutable(t *testing.T, paths ...string) (mend func()) {
	t.Helper()
	sshtest.RequireTool(t, "chattr")
	mend = func() {
		for _, p := range paths {
			_ = exec.Command("chattr", "-i", p).Run()
		}
	}
	t.Cleanup(mend)
	for _, p := range paths {
		if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
			msg := fmt.Sprintf("chattr +i %s: %v %s (needs ext4 or xfs, as root)", p, err, out)
			if os.Getenv("SLUICE_INTEROP") == "require" {
				t.Fatalf("SLUICE_INTEROP=require: %s", msg)
			}
			t.Skip(msg)
		}
	}
	return mend
}

// TestAuditOutageRecovers makes the SQLite audit store unwritable under a
// running gateway (immutable files: even root cannot write them), then
// writable again. Under fail_closed the live session is ended and logins
// refused, /healthz says unhealthy; under best_effort sessions go on and
// /healthz says degraded. Either way the gateway recovers by itself, and
// the outage is in the store with what was written meanwhile.
func TestAuditOutageRecovers(t *testing.T) {
	for _, mode := range []string{"fail_closed", "best_effort"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t, auditWorldOptions(mode))
			if code, body := w.healthz(t); code != http.StatusOK || body != "ok\n" {
				t.Fatalf("/healthz before: got %d %q, want 200 ok", code, body)
			}
			live := w.startLive(t)
			db := filepath.Join(w.dir, "state", "audit.db")
			mend := immutable(t, db, db+"-wal")
			// Any event now meets the failure: a connection from the
			// office zone that says nothing.
			w.rawDial(t).Close()
			var during result
			switch mode {
			case "fail_closed":
				body := w.waitHealthz(t, http.StatusServiceUnavailable, "unhealthy: audit store failing since ")
				t.Logf("/healthz: %s", body)
				var ee *exec.ExitError
				if err := waitExit(t, live, 15*time.Second); !errors.As(err, &ee) {
					t.Fatalf("live session: got %v, want it ended with an error", err)
				}
				during = w.ssh(nil, "echo during-MARK")
				if during.code != 255 || strings.Contains(during.stdout, "during-MARK") {
					t.Fatalf("login during the outage: got %d %q %q, want 255 and nothing run", during.code, during.stdout, during.stderr)
				}
				rule, err := w.gw.admit(nil)
				if rule != ruleAuditFailure || !errors.Is(err, ErrAuditUnavailable) || !errors.Is(err, session.ErrDenied) {
					t.Fatalf("admit: got %q, %v, want audit.on_failure and ErrAuditUnavailable", rule, err)
				}
			case "best_effort":
				body := w.waitHealthz(t, http.StatusOK, "degraded: audit store failing since ")
				t.Logf("/healthz: %s", body)
				during = w.ssh(nil, "echo during-MARK")
				if during.code != 0 || during.stdout != "during-MARK\n" {
					t.Fatalf("login during the outage: got %d %q %q, want 0 during-MARK", during.code, during.stdout, during.stderr)
				}
				if live.ProcessState != nil {
					t.Fatal("the live session ended, want it to go on under best_effort")
				}
			}
			if got := w.storeUp(t); got != "sluice_audit_store_up 0" {
				t.Errorf("metric during the outage: got %q, want sluice_audit_store_up 0", got)
			}
			time.Sleep(time.Second) // several failed retries
			mend()
			w.waitHealthz(t, http.StatusOK, "ok\n")
			if got := w.storeUp(t); got != "sluice_audit_store_up 1" {
				t.Errorf("metric after the outage: got %q, want sluice_audit_store_up 1", got)
			}
			w.stillServes(t)
			failed := w.events(audit.TypeStoreFailed, nil)
			rec := w.events(audit.TypeStoreRecovered, nil)
			if len(failed) != 1 || len(rec) != 1 {
				t.Fatalf("outage events: got %d failed and %d recovered, want 1 and 1", len(failed), len(rec))
			}
			t.Logf("store_failed: %s; store_recovered: %v", failed[0].Reason, rec[0].Detail)
			if ms, _ := rec[0].Detail["outage_ms"].(float64); ms < 1000 || rec[0].Detail["lost"] != float64(0) {
				t.Errorf("store_recovered detail: got %v, want outage_ms ≥ 1000 and lost 0", rec[0].Detail)
			}
			// What happened during the outage was kept and stored after it.
			switch mode {
			case "fail_closed":
				if evs := w.events("connection", func(e audit.Event) bool { return e.Rule == ruleAuditFailure }); len(evs) == 0 {
					t.Error("no connection refused by audit.on_failure in the store")
				}
				if evs := w.events("connection.end", func(e audit.Event) bool { return strings.Contains(e.Reason, "audit store unavailable") }); len(evs) == 0 {
					t.Error("no connection.end for the session the outage ended")
				}
			case "best_effort":
				if evs := w.events("exec", func(e audit.Event) bool { return e.Detail["command"] == "echo during-MARK" }); len(evs) != 1 {
					t.Errorf("exec events of the login during the outage: got %d, want 1", len(evs))
				}
			}
			if got := w.gw.queue.Dropped(); got != 0 {
				t.Errorf("Dropped: got %d, want 0", got)
			}
		})
	}
}

// TestAuditStoreDeleted deletes audit.db under the running gateway: the
// next probe notices, a new database is opened, the outage (fail_closed:
// the live session ended) is recorded in it, and logins work again.
func TestAuditStoreDeleted(t *testing.T) {
	w := newWorld(t, auditWorldOptions("fail_closed"))
	live := w.startLive(t)
	if err := os.Remove(filepath.Join(w.dir, "state", "audit.db")); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := waitExit(t, live, 15*time.Second); !errors.As(err, &ee) {
		t.Fatalf("live session: got %v, want it ended with an error", err)
	}
	w.waitHealthz(t, http.StatusOK, "ok\n")
	w.stillServes(t)
	failed := w.events(audit.TypeStoreFailed, nil)
	if len(failed) != 1 || !strings.Contains(failed[0].Reason, "deleted or replaced") {
		t.Fatalf("store_failed events in the new database: got %+v, want one saying the file was deleted", failed)
	}
	if rec := w.events(audit.TypeStoreRecovered, nil); len(rec) != 1 {
		t.Fatalf("store_recovered events: got %d, want 1", len(rec))
	}
	if evs := w.events("exec", func(e audit.Event) bool { return e.Detail["command"] == "echo ok" }); len(evs) != 1 {
		t.Fatalf("exec events after the deletion: got %d, want 1", len(evs))
	}
}
