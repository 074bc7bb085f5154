package fleet

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func join(t *testing.T, dsn, name string, lease time.Duration) *Member {
	t.Helper()
	m, err := Join(context.Background(), dsn, Node{Name: name, Version: "test", ConfigHash: "abc"}, lease)
	if err != nil {
		t.Fatalf("Join %s: got %v, want nil", name, err)
	}
	return m
}

// TestNameTaken: a second node cannot take a live node's name, with an
// error that says who holds it; once the holder leaves, the name is free.
func TestNameTaken(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	a := join(t, dsn, "gw1", time.Minute)
	_, err := Join(ctx, dsn, Node{Name: "gw1", Version: "test"}, time.Minute)
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), `"gw1" is held by a running node`) {
		t.Fatalf("second Join: got %v, want ErrNameTaken naming gw1", err)
	}
	t.Log(err)
	other := join(t, dsn, "gw2", time.Minute) // another name is fine
	if err := a.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	again := join(t, dsn, "gw1", time.Minute)
	for _, m := range []*Member{other, again} {
		if err := m.Leave(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListWithoutRegistry: listing a store no node has joined says so.
func TestListWithoutRegistry(t *testing.T) {
	_, err := List(context.Background(), pgtest.Schema(t))
	if err == nil || !strings.Contains(err.Error(), "no fleet registry") {
		t.Fatalf("List: got %v, want no fleet registry", err)
	}
}

// TestExpiredNameReused: the name of a node that stopped heartbeating is
// free once its lease has expired, and not before.
func TestExpiredNameReused(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	const lease = 2 * time.Second
	dead := join(t, dsn, "gw1", lease)
	defer dead.pool.Close()
	if _, err := Join(ctx, dsn, Node{Name: "gw1"}, lease); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("Join within the lease: got %v, want ErrNameTaken", err)
	}
	time.Sleep(lease + 500*time.Millisecond)
	m := join(t, dsn, "gw1", lease)
	if err := m.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	// The dead process's claim is gone: its Leave does not free the new
	// holder's name (the token differs), which a third Join would show.
}

// liveSet is a node's live sessions as a test fakes them.
type liveSet struct {
	mu     sync.Mutex
	s      map[string]Session
	killed chan string
}

func (l *liveSet) live() []Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Session
	for _, s := range l.s {
		out = append(out, s)
	}
	return out
}

func (l *liveSet) kill(_ context.Context, id, operator string) error {
	l.mu.Lock()
	_, ok := l.s[id]
	delete(l.s, id)
	l.mu.Unlock()
	if !ok {
		return errors.New("not here")
	}
	l.killed <- id + " by " + operator
	return nil
}

// TestKillAndLost: a node lists the other's session and kills it through
// the store; a node that stops heartbeating is reaped by the survivor
// within the lease, its sessions handed to Lost.
func TestKillAndLost(t *testing.T) {
	dsn := pgtest.Schema(t)
	// A fleet in another schema of the same database with the same names
	// must not act on this fleet's kill requests.
	otherDSN := pgtest.Schema(t)
	const lease = 3 * time.Second
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	start := time.Now().Truncate(time.Microsecond)
	run := func(m *Member, l *liveSet, lost chan string) context.CancelFunc {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.Run(ctx, Params{Lease: lease, Live: l.live, Kill: l.kill, Logger: logger, Lost: func(_ context.Context, gw string) error {
				lost <- gw
				return nil
			}})
		}()
		return func() { cancel(); <-done }
	}
	aLive := &liveSet{s: map[string]Session{"gw-a/ssh:1": {ID: "gw-a/ssh:1", User: "alice", Client: "127.0.0.1:5000", Start: start}}, killed: make(chan string, 1)}
	twin := &liveSet{s: map[string]Session{"gw-a/ssh:1": {ID: "gw-a/ssh:1", User: "alice", Start: start}}, killed: make(chan string, 1)}
	bLive := &liveSet{s: map[string]Session{}, killed: make(chan string, 1)}
	lost := make(chan string, 4)
	a, b, c := join(t, dsn, "gw-a", lease), join(t, dsn, "gw-b", lease), join(t, otherDSN, "gw-a", lease)
	stopA, stopB, stopC := run(a, aLive, lost), run(b, bLive, lost), run(c, twin, make(chan string, 4))
	for _, m := range []struct {
		stop func()
		m    *Member
	}{{stopB, b}, {stopC, c}} {
		defer func() {
			m.stop()
			if err := m.m.Leave(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}

	ctx := context.Background()
	var list []Session
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if list, err = b.Sessions(ctx); err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 {
			break
		}
	}
	if len(list) != 1 || list[0].ID != "gw-a/ssh:1" || list[0].Gateway != "gw-a" || list[0].User != "alice" || !list[0].Start.Equal(start) {
		t.Fatalf("sessions seen from gw-b: got %+v, want gw-a/ssh:1 of alice on gw-a", list)
	}
	if err := b.Kill(ctx, "gw-a/ssh:9", "op"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("kill of an unknown id: got %v, want ErrNotFound", err)
	}
	// As `sluice kill` does, from a process that is not a node.
	if err := Kill(ctx, dsn, "gw-a/ssh:1", "op"); err != nil {
		t.Fatalf("kill through the store: got %v, want nil", err)
	}
	if got := <-aLive.killed; got != "gw-a/ssh:1 by op" {
		t.Fatalf("gw-a killed %q, want gw-a/ssh:1 by op", got)
	}
	select {
	case got := <-twin.killed:
		t.Fatalf("the other schema's gw-a killed %q, want nothing", got)
	default:
	}

	// gw-a dies with a session open: no Leave, no heartbeat.
	aLive.mu.Lock()
	aLive.s["gw-a/ssh:2"] = Session{ID: "gw-a/ssh:2", User: "bob", Start: start}
	aLive.mu.Unlock()
	a.Changed()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if list, _ = b.Sessions(ctx); len(list) == 1 || time.Now().After(deadline) {
			break
		}
	}
	died := time.Now()
	stopA()
	a.pool.Close()
	select {
	case gw := <-lost:
		if gw != "gw-a" {
			t.Fatalf("lost %q, want gw-a", gw)
		}
		if d := time.Since(died); d > lease+lease/3+2*time.Second {
			t.Errorf("reaped after %v, want within the lease %v and a heartbeat", d, lease)
		}
	case <-time.After(3 * lease):
		t.Fatal("gw-a not reaped within 3 leases")
	}
	if list, err := b.Sessions(ctx); err != nil || len(list) != 0 {
		t.Fatalf("sessions after the reap: got %+v, %v; want none", list, err)
	}
	// Its name is free again.
	again := join(t, dsn, "gw-a", lease)
	if err := again.Leave(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSyncOddText: text a client chose (a target with invalid UTF-8 or a
// NUL, which PostgreSQL text refuses) cannot stop a node from publishing
// its sessions, nor hide the session from the list.
func TestSyncOddText(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	m := join(t, dsn, "gw1", time.Minute)
	defer m.Leave(ctx)
	odd := Session{ID: "gw1/ssh:1", User: "alice", Client: "127.0.0.1:1", Target: "web\x00\xff:22", Start: time.Now()}
	plain := Session{ID: "gw1/ssh:2", User: "bob", Start: time.Now()}
	p := Params{Lease: time.Minute, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), Live: func() []Session { return []Session{odd, plain} }}
	m.sync(ctx, p)
	list, err := m.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Target != "web\uFFFD\uFFFD:22" || list[1].ID != plain.ID {
		t.Fatalf("got %+v, want both sessions, the odd target with U+FFFD", list)
	}
	// Ending it deletes the row written under the cleaned id.
	p.Live = func() []Session { return nil }
	m.sync(ctx, p)
	if list, err := m.Sessions(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after the end: got %+v, %v; want none", list, err)
	}
}
