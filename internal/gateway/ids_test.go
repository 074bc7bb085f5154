package gateway

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// connect opens and closes n connections (each an authenticated session of
// alice) and returns the session ids the gateway gave them.
func (w *world) connect(t *testing.T, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range w.events("connection", nil) {
		seen[e.SessionID] = true
	}
	for range n {
		c := w.dial(t, w.aliceConfig(t))
		c.Close()
	}
	var ids []string
	for range 100 {
		ids = ids[:0]
		for _, e := range w.events("connection", nil) {
			if !seen[e.SessionID] {
				ids = append(ids, e.SessionID)
			}
		}
		if len(ids) >= n {
			break
		}
		sleepBriefly()
	}
	if len(ids) != n {
		t.Fatalf("got %d new connection events, want %d", len(ids), n)
	}
	return ids
}

// restart stops the gateway and starts a new one from the same config and
// state, as a restart of the process would.
func (w *world) restart(t *testing.T) {
	t.Helper()
	w.stop()
	w.stopOnce = sync.Once{} // the new gateway is stopped in its turn
	cfg, err := config.Load(filepath.Join(w.dir, "sluice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := New(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		cancel()
		t.Fatalf("gateway: %v", err)
	}
	w.gw, w.cancel, w.done = gw, cancel, make(chan error, 1)
	go func() { w.done <- gw.Run(ctx) }()
}

// TestSessionIDsUnique checks that session ids are never handed out twice:
// not after a reload that moves the service's listener (a new listener and
// service), nor after a restart, and that numbering goes on from where it
// was rather than from 1.
func TestSessionIDsUnique(t *testing.T) {
	w := newWorld(t, worldOptions{})
	all := map[string]string{}
	high := 0
	check := func(when string, ids []string) {
		t.Helper()
		for _, id := range ids {
			if prev, dup := all[id]; dup {
				t.Fatalf("%s: session id %s again (first %s)", when, id, prev)
			}
			all[id] = when
			n, err := strconv.Atoi(id[strings.LastIndexByte(id, ':')+1:])
			if err != nil || !strings.HasPrefix(id, "gw1/ssh-in:") {
				t.Fatalf("%s: session id %q, want gw1/ssh-in:N", when, id)
			}
			if n <= high && when != "first run" {
				t.Errorf("%s: session id %s, want an instance above %d", when, id, high)
			}
			high = max(high, n)
		}
	}
	check("first run", w.connect(t, 3))

	port := sshtest.FreePort(t)
	if err := w.reloadWith(t, "listen: 127.0.0.1:"+strconv.Itoa(w.port), "listen: 127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Fatalf("reload: %v", err)
	}
	w.port = port
	check("after a reload that moved the listener", w.connect(t, 2))

	w.restart(t)
	check("after a restart", w.connect(t, 2))
	w.restart(t)
	check("after a second restart", w.connect(t, 1))

	// The reservations are in the audit trail, and the chain verifies.
	res := w.events(audit.TypeInstances, nil)
	if len(res) != 3 {
		t.Errorf("got %d %s events, want 3 (one per run)", len(res), audit.TypeInstances)
	}
	v, err := audit.Verify(context.Background(), w.gw.Store(), nil)
	if err != nil || v.Break != nil {
		t.Fatalf("Verify: got %+v, %v, want no break", v, err)
	}
}
