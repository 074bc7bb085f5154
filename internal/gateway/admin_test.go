package gateway

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
)

func TestAdminSessionsAndKill(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	live := w.startLive(t)
	sock := w.gw.cfg.Gateway.Admin.Socket
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: got %v, %v, want mode 0600", fi, err)
	}
	c := admin.NewClient(sock)
	ctx := context.Background()
	list, err := c.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("Sessions: got %+v, want one", list)
	}
	s := list[0]
	if !strings.HasPrefix(s.ID, "gw1/ssh-in:") || s.User != "alice" || !strings.HasPrefix(s.Client, clientAddr+":") ||
		s.Target == "" || time.Since(s.Start) > time.Minute {
		t.Fatalf("Sessions: got %+v, want alice's session from %s with a target and a recent start", s, clientAddr)
	}
	if err := c.Kill(ctx, s.ID); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := waitExit(t, live, 15*time.Second); err == nil {
		t.Fatal("killed session: exited 0, want an error")
	}
	kills := w.events("kill", nil)
	if len(kills) != 1 || kills[0].SessionID != s.ID || kills[0].Verdict != audit.Accept || kills[0].User != "alice" {
		t.Fatalf("got kill events %+v, want one for %s", kills, s.ID)
	}
	ends := w.events("connection.end", func(e audit.Event) bool { return e.SessionID == s.ID })
	if len(ends) != 1 || !strings.Contains(ends[0].Reason, "revoked: by operator") {
		t.Fatalf("got connection.end %+v, want the reason revoked by operator", ends)
	}
	if err := c.Kill(ctx, s.ID); !errors.Is(err, admin.ErrNotFound) {
		t.Fatalf("second Kill: got %v, want ErrNotFound", err)
	}
}
