package gateway

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// startSSH runs ssh through the gateway in the background and returns a
// channel that yields its result.
func (w *world) startSSH(remote string) <-chan result {
	w.t.Helper()
	args := append(w.args("ssh"), w.target()+"@127.0.0.1", remote)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		cancel()
		w.t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() {
		defer cancel()
		err := cmd.Wait()
		r := result{stdout: out.String(), stderr: errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		}
		done <- r
	}()
	return done
}

// waitLive waits until the gateway has n live sessions.
func (w *world) waitLive(n int) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(w.gw.LiveSessions()) < n {
		if time.Now().After(deadline) {
			w.t.Fatalf("got %d live sessions, want %d", len(w.gw.LiveSessions()), n)
		}
		sleepBriefly()
	}
}

// TestDrainLetsSessionsFinish: on shutdown (SIGTERM in `sluice serve`) the
// gateway stops accepting at once, and a live session that ends within
// drain_timeout finishes normally.
func TestDrainLetsSessionsFinish(t *testing.T) {
	w := newWorld(t, worldOptions{gateway: "  drain_timeout: 20s\n"})
	live := w.startSSH("sleep 2; echo finished")
	w.waitLive(1)
	w.cancel()
	// New connections are refused while the live one drains.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := w.ssh(nil, "true")
		if r.code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway still accepted new sessions after shutdown began")
		}
		sleepBriefly()
	}
	r := <-live
	if r.code != 0 || r.stdout != "finished\n" {
		t.Fatalf("draining session: got %d %q (stderr %q), want 0 %q", r.code, r.stdout, r.stderr, "finished\n")
	}
}

// TestDrainTimeoutEndsSessions: a session still running when drain_timeout
// expires is ended, its client reads why on stderr first, and the audit
// says why.
func TestDrainTimeoutEndsSessions(t *testing.T) {
	w := newWorld(t, worldOptions{gateway: "  drain_timeout: 1s\n"})
	live := w.startSSH("sleep 30")
	w.waitLive(1)
	start := time.Now()
	w.cancel()
	select {
	case r := <-live:
		if r.code == 0 {
			t.Fatalf("got exit 0 for a session cut by shutdown, want a failure")
		}
		if took := time.Since(start); took > 15*time.Second {
			t.Fatalf("session ended %v after shutdown, want about drain_timeout (1s)", took)
		}
		if !strings.Contains(r.stderr, strings.TrimSpace(msgShutdown)) {
			t.Fatalf("client stderr: got %q, want it to contain %q", r.stderr, strings.TrimSpace(msgShutdown))
		}
		t.Logf("client stderr: %q, exit %d", r.stderr, r.code)
	case <-time.After(30 * time.Second):
		t.Fatal("the session outlived drain_timeout by far")
	}
	<-w.done
	w.done <- nil // for the cleanup's stop
	// The gateway has closed its store; read the file as `sluice audit` does.
	store, err := audit.Open(context.Background(), "sqlite", filepath.Join(w.dir, "state"), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ends, err := store.Query(context.Background(), audit.Filter{Type: "connection.end"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) != 1 || !strings.Contains(ends[0].Reason, "shutdown") {
		t.Fatalf("got %+v, want one connection.end whose reason says shutdown", ends)
	}
}
