package admin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeGateway is a Gateway with a fixed set of live sessions.
type fakeGateway struct {
	mu     sync.Mutex
	live   []Session
	killed []string
}

func (f *fakeGateway) LiveSessions() []Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.live)
}

func (f *fakeGateway) Kill(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.live, func(s Session) bool { return s.ID == id })
	if i < 0 {
		return ErrNotFound
	}
	f.live = slices.Delete(f.live, i, i+1)
	f.killed = append(f.killed, id)
	return nil
}

// socketPath is a short socket path (sun_path holds 108 bytes).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "run", "admin.sock")
}

// serve runs a Server for gw on path until the test ends.
func serve(t *testing.T, path string, gw Gateway) {
	t.Helper()
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	srv := NewServer(gw, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func TestAdminSessionsAndKill(t *testing.T) {
	path := socketPath(t)
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	gw := &fakeGateway{live: []Session{
		{ID: "gw1/ssh-in:1", User: "alice", Client: "127.0.0.2:5000", Target: "db:22", Start: start},
		{ID: "gw1/ssh-in:2", User: "bob", Client: "127.0.0.3:5001", Start: start},
	}}
	serve(t, path, gw)
	c := NewClient(path)
	ctx := context.Background()

	got, err := c.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	if !slices.EqualFunc(got, gw.live, func(a, b Session) bool {
		return a.ID == b.ID && a.User == b.User && a.Client == b.Client && a.Target == b.Target && a.Start.Equal(b.Start)
	}) {
		t.Fatalf("Sessions: got %+v, want %+v", got, gw.live)
	}
	if err := c.Kill(ctx, "gw1/ssh-in:1"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if want := []string{"gw1/ssh-in:1"}; !slices.Equal(gw.killed, want) {
		t.Fatalf("killed: got %q, want %q", gw.killed, want)
	}
	if err := c.Kill(ctx, "gw1/ssh-in:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Kill of a gone session: got %v, want ErrNotFound", err)
	}
	if got, err := c.Sessions(ctx); err != nil || len(got) != 1 || got[0].ID != "gw1/ssh-in:2" {
		t.Fatalf("Sessions after kill: got %+v, %v, want only gw1/ssh-in:2", got, err)
	}
}

func TestAdminEmptyListIsArray(t *testing.T) {
	path := socketPath(t)
	serve(t, path, &fakeGateway{})
	got, err := NewClient(path).Sessions(context.Background())
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("got %#v, %v, want an empty list", got, err)
	}
}

func TestAdminSocketModes(t *testing.T) {
	path := socketPath(t)
	serve(t, path, &fakeGateway{})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{path, 0o600}, {filepath.Dir(path), 0o700}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: got mode %v, want %v", c.path, got, c.want)
		}
	}
}

func TestAdminListenRefusesLiveSocket(t *testing.T) {
	path := socketPath(t)
	serve(t, path, &fakeGateway{})
	if l, err := Listen(path); !errors.Is(err, ErrInUse) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("second Listen: got %v, want ErrInUse", err)
	}
	// The first server still answers.
	if _, err := NewClient(path).Sessions(context.Background()); err != nil {
		t.Fatalf("Sessions after a refused Listen: %v", err)
	}
}

func TestAdminListenRemovesStaleSocket(t *testing.T) {
	path := socketPath(t)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// A socket file nobody listens on, as a crashed gateway leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	serve(t, path, &fakeGateway{})
	if _, err := NewClient(path).Sessions(context.Background()); err != nil {
		t.Fatalf("Sessions: %v", err)
	}
}

func TestAdminListenRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"regular file in the way", func(t *testing.T, path string) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"folder writable by others", func(t *testing.T, path string) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := socketPath(t)
			tt.setup(t, path)
			l, err := Listen(path)
			if err == nil {
				l.Close()
				t.Fatal("Listen: got nil error, want a refusal")
			}
		})
	}
}

func TestAdminClientWithoutGateway(t *testing.T) {
	_, err := NewClient(socketPath(t)).Sessions(context.Background())
	if err == nil {
		t.Fatal("got nil error, want one when nothing listens")
	}
}
