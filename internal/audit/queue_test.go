package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// gateStore is a Store whose writes fail with the error set by fail (when
// set) or wait for release; everything else is the real store.
type gateStore struct {
	Store
	err     atomic.Pointer[error]
	release chan struct{} // nil: writes do not wait
	entered chan struct{} // receives once per batch that started
}

// fail makes the writes fail with err, or succeed again when err is nil.
func (g *gateStore) fail(err error) {
	if err == nil {
		g.err.Store(nil)
		return
	}
	g.err.Store(&err)
}

func (g *gateStore) WriteBatch(ctx context.Context, events []Event) error {
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	if g.release != nil {
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if p := g.err.Load(); p != nil {
		return *p
	}
	return g.Store.(BatchWriter).WriteBatch(ctx, events)
}

func (g *gateStore) Write(ctx context.Context, e Event) error {
	return g.WriteBatch(ctx, []Event{e})
}

func openSQLite(t *testing.T) Store {
	t.Helper()
	s, err := Open(context.Background(), "sqlite", t.TempDir(), "gw1")
	if err != nil {
		t.Fatalf("Open: got %v, want nil", err)
	}
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncBuffer is a log destination safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var errDiskGone = errors.New("disk gone")

// countCalls returns an OnUnhealthy that counts its calls and keeps the
// last cause.
func countCalls() (func(error), *atomic.Int32, *atomic.Pointer[error]) {
	var calls atomic.Int32
	var cause atomic.Pointer[error]
	return func(err error) {
		calls.Add(1)
		cause.Store(&err)
	}, &calls, &cause
}

// stored returns the events of the types given (all when none) that real holds.
func stored(t *testing.T, s Store, types ...string) []Event {
	t.Helper()
	all, err := s.Query(context.Background(), Filter{})
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(types) == 0 {
		return all
	}
	var out []Event
	for _, e := range all {
		if slices.Contains(types, e.Type) {
			out = append(out, e)
		}
	}
	return out
}

// waitStored waits until s holds n events of type typ and returns them.
func waitStored(t *testing.T, s Store, typ string, n int) []Event {
	t.Helper()
	var got []Event
	eventually(t, fmt.Sprintf("%d %s events in the store", n, typ), func() bool {
		got = stored(t, s, typ)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("%s events: got %d, want %d", typ, len(got), n)
	}
	return got
}

// TestQueueStoreFailsAndRecovers: a store that fails makes an outage that
// Healthy reports in both modes and OnUnhealthy once per outage under
// FailClosed; events written meanwhile are kept while there is room, and
// stored with the outage's events when the store takes writes again.
func TestQueueStoreFailsAndRecovers(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	for _, mode := range []Mode{FailClosed, BestEffort} {
		t.Run(mode.String(), func(t *testing.T) {
			real := openSQLite(t)
			defer real.Close()
			g := &gateStore{Store: real}
			onUnhealthy, calls, cause := countCalls()
			var logs syncBuffer
			q := NewQueue(keepOpen{g}, QueueParams{Mode: mode, OnUnhealthy: onUnhealthy, ProbeInterval: 100 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer q.Close(ctx)
			write := func(i int) {
				t.Helper()
				if err := q.Write(ctx, ev(i, "exec", "gw1/s:1", "u", Accept)); err != nil {
					t.Fatalf("Write %d: got %v, want nil", i, err)
				}
			}
			for outage := 1; outage <= 2; outage++ {
				write(10 * outage)
				waitStored(t, real, "exec", 3*outage-2)
				g.fail(errDiskGone)
				write(10*outage + 1)
				eventually(t, "the outage", func() bool { return q.Healthy() != nil })
				var se *StoreError
				if err := q.Healthy(); !errors.As(err, &se) || !errors.Is(err, errDiskGone) || time.Since(se.Since) > time.Minute {
					t.Fatalf("Healthy: got %v, want a *StoreError for %v", err, errDiskGone)
				}
				write(10*outage + 2) // queued while the store fails
				wantCalls := int32(0)
				if mode == FailClosed {
					wantCalls = int32(outage)
					if p := cause.Load(); p == nil || !errors.Is(*p, errDiskGone) {
						t.Errorf("OnUnhealthy cause: got %v, want %v", p, errDiskGone)
					}
				}
				if got := calls.Load(); got != wantCalls {
					t.Errorf("OnUnhealthy calls: got %d, want %d (one per outage)", got, wantCalls)
				}
				g.fail(nil)
				eventually(t, "the recovery", func() bool { return q.Healthy() == nil })
				waitStored(t, real, "exec", 3*outage)
				failed := waitStored(t, real, TypeStoreFailed, outage)
				rec := waitStored(t, real, TypeStoreRecovered, outage)
				if f := failed[outage-1]; f.Reason != errDiskGone.Error() || f.Detail["mode"] != mode.String() {
					t.Errorf("store_failed: got %+v, want reason %q and mode %s", f, errDiskGone, mode)
				}
				if r := rec[outage-1]; r.Detail["lost"] != float64(0) || r.Detail["outage_ms"] == nil || !r.Time.After(failed[outage-1].Time) {
					t.Errorf("store_recovered: got %+v, want lost 0, an outage_ms and a time after the failure", r)
				}
			}
			if got := q.Dropped(); got != 0 {
				t.Errorf("Dropped: got %d, want 0", got)
			}
			for _, want := range []string{"audit store failing", "audit store recovered"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log: got %q, want %q", logs.String(), want)
				}
			}
		})
	}
}

// TestQueueOutageDrops: while the store fails a full queue drops at once
// (no session waits on a dead store), and the recovery event counts them.
func TestQueueOutageDrops(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	for _, mode := range []Mode{FailClosed, BestEffort} {
		t.Run(mode.String(), func(t *testing.T) {
			real := openSQLite(t)
			defer real.Close()
			g := &gateStore{Store: real}
			g.fail(errDiskGone)
			q := NewQueue(keepOpen{g}, QueueParams{Size: 2, Mode: mode, ProbeInterval: 100 * time.Millisecond})
			defer q.Close(ctx)
			if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatalf("Write 0: got %v, want nil", err)
			}
			eventually(t, "the outage", func() bool { return q.Healthy() != nil })
			start := time.Now()
			var errs []error
			for i := 1; i <= 5; i++ {
				errs = append(errs, q.Write(ctx, ev(i, "a", "gw1/s:1", "u", "")))
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Writes during an outage took %v, want no waiting", d)
			}
			for i, err := range errs {
				switch {
				case i < 2 && err != nil:
					t.Errorf("Write %d (room left): got %v, want nil", i+1, err)
				case i >= 2 && mode == FailClosed && !errors.Is(err, errDiskGone):
					t.Errorf("Write %d (full): got %v, want the store failure", i+1, err)
				case i >= 2 && mode == BestEffort && err != nil:
					t.Errorf("Write %d (full): got %v, want nil under best_effort", i+1, err)
				}
			}
			if got := q.Dropped(); got != 3 {
				t.Errorf("Dropped: got %d, want 3", got)
			}
			g.fail(nil)
			rec := waitStored(t, real, TypeStoreRecovered, 1)
			if got := rec[0].Detail["lost"]; got != float64(3) {
				t.Errorf("store_recovered lost: got %v, want 3", got)
			}
			waitStored(t, real, "a", 3)
		})
	}
}

// TestQueueFullWaits: a writer facing a full queue while the store works
// waits for room (backpressure) instead of losing the event.
func TestQueueFullWaits(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	real := openSQLite(t)
	defer real.Close()
	g := &gateStore{Store: real, release: make(chan struct{}), entered: make(chan struct{}, 16)}
	onUnhealthy, calls, _ := countCalls()
	q := NewQueue(keepOpen{g}, QueueParams{Size: 2, OnUnhealthy: onUnhealthy})
	if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
		t.Fatalf("Write 0: got %v, want nil", err)
	}
	<-g.entered // the writer holds event 0 in the store
	for i := 1; i <= 2; i++ {
		if err := q.Write(ctx, ev(i, "a", "gw1/s:1", "u", "")); err != nil {
			t.Fatalf("Write %d: got %v, want nil", i, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- q.Write(ctx, ev(3, "a", "gw1/s:1", "u", "")) }()
	select {
	case err := <-done:
		t.Fatalf("Write on a full queue returned %v at once, want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("Write after room was made: got %v, want nil", err)
	}
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if got := len(stored(t, real, "a")); got != 4 {
		t.Errorf("stored: got %d events, want 4", got)
	}
	if q.Dropped() != 0 || calls.Load() != 0 {
		t.Errorf("Dropped %d, OnUnhealthy calls %d: want 0 and 0", q.Dropped(), calls.Load())
	}
}

// TestQueueFullGivesUp: the wait is bounded by MaxWait and by the writer's
// context; the event lost is counted and reported, and a full queue is no
// store failure.
func TestQueueFullGivesUp(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, mode := range []Mode{FailClosed, BestEffort} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			real := openSQLite(t)
			defer real.Close()
			g := &gateStore{Store: real, release: make(chan struct{}), entered: make(chan struct{}, 16)}
			onUnhealthy, calls, _ := countCalls()
			q := NewQueue(keepOpen{g}, QueueParams{Size: 2, Mode: mode, OnUnhealthy: onUnhealthy, MaxWait: 200 * time.Millisecond})
			for i := range 3 {
				if err := q.Write(ctx, ev(i, "a", "gw1/s:1", "u", "")); err != nil {
					t.Fatalf("Write %d: got %v, want nil", i, err)
				}
				if i == 0 {
					<-g.entered
				}
			}
			start := time.Now()
			err := q.Write(ctx, ev(3, "a", "gw1/s:1", "u", ""))
			if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
				t.Errorf("Write on a full queue took %v, want about MaxWait (200ms)", d)
			}
			cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			err2 := q.Write(cctx, ev(4, "a", "gw1/s:1", "u", ""))
			cancel()
			for _, err := range []error{err, err2} {
				if mode == FailClosed && !errors.Is(err, ErrQueueFull) || mode == BestEffort && err != nil {
					t.Errorf("Write on a full queue: got %v, want ErrQueueFull under fail_closed, nil under best_effort", err)
				}
			}
			if err := q.Healthy(); err != nil {
				t.Errorf("Healthy: got %v, want nil (a full queue is no store failure)", err)
			}
			if got := calls.Load(); got != 0 {
				t.Errorf("OnUnhealthy calls: got %d, want 0", got)
			}
			if got := q.Dropped(); got != 2 {
				t.Errorf("Dropped: got %d, want 2", got)
			}
			close(g.release)
			if err := q.Write(ctx, ev(5, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatalf("Write 5: got %v, want nil", err)
			}
			if err := q.Close(ctx); err != nil {
				t.Fatalf("Close: got %v, want nil", err)
			}
			if got := len(stored(t, real, "a")); got != 4 {
				t.Errorf("stored: got %d events, want 4", got)
			}
			d := stored(t, real, TypeDropped)
			if len(d) != 1 || d[0].Detail["lost"] != float64(2) {
				t.Errorf("dropped events: got %+v, want one with lost 2", d)
			}
		})
	}
}

// TestQueueClosedStore: a store that can never take writes again keeps the
// queue unhealthy, and Close gives up at its deadline.
func TestQueueClosedStore(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	s := openSQLite(t)
	s.Close()
	q := NewQueue(s, QueueParams{ProbeInterval: 50 * time.Millisecond})
	if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
		t.Fatalf("Write: got %v, want nil (the failure is found later)", err)
	}
	eventually(t, "the outage", func() bool { return q.Healthy() != nil })
	time.Sleep(300 * time.Millisecond) // several retries
	if err := q.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy: got %v, want ErrClosed", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := q.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: got %v, want DeadlineExceeded", err)
	}
	if got := q.Dropped(); got != 1 {
		t.Errorf("Dropped: got %d, want 1", got)
	}
}

// keepOpenProber is keepOpen for a store that is a Prober.
type keepOpenProber struct{ keepOpen }

func (k keepOpenProber) Probe(ctx context.Context) error { return k.Store.(Prober).Probe(ctx) }

// immutable sets the immutable attribute (chattr +i) on paths, which even
// root cannot write, and clears it at cleanup. Without chattr, or on a file
// system without the attribute, the test fails under SLUICE_INTEROP=require
// and is skipped otherwise.
func immutable(t *testing.T, paths ...string) (clear func()) {
	t.Helper()
	clear = func() {
		for _, p := range paths {
			_ = exec.Command("chattr", "-i", p).Run()
		}
	}
	t.Cleanup(clear)
	for _, p := range paths {
		if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
			msg := fmt.Sprintf("chattr +i %s: %v %s (e2fsprogs, on ext4 or xfs, as root)", p, err, out)
			if os.Getenv("SLUICE_INTEROP") == "require" {
				t.Fatalf("SLUICE_INTEROP=require: %s", msg)
			}
			t.Skip(msg)
		}
	}
	return clear
}

// outageCase is a real store and a way to make it unwritable.
type outageCase struct {
	name       string
	open       func(t *testing.T) Store
	breakStore func(t *testing.T) (mend func())
}

// TestQueueRealStoreOutage makes real stores unwritable (an immutable
// SQLite database or JSON lines file, a PostgreSQL table renamed away) and
// writable again: the queue reports the outage and recovers by itself,
// with every event and the outage's own in the store.
func TestQueueRealStoreOutage(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	var cases []outageCase
	var dir string
	cases = append(cases, outageCase{"sqlite", func(t *testing.T) Store {
		dir = t.TempDir()
		s, err := Open(ctx, "sqlite", dir, "gw")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T) func() {
		p := filepath.Join(dir, "audit.db")
		return immutable(t, p, p+"-wal")
	}})
	cases = append(cases, outageCase{"jsonl", func(t *testing.T) Store {
		dir = t.TempDir()
		s, err := Open(ctx, "jsonl:audit.jsonl", dir, "gw")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T) func() { return immutable(t, filepath.Join(dir, "audit.jsonl")) }})
	var pgURL string
	cases = append(cases, outageCase{"postgres", func(t *testing.T) Store {
		pgURL = pgtest.Schema(t)
		s, err := Open(ctx, pgURL, t.TempDir(), "gw")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T) func() {
		exec := func(sql string) {
			t.Helper()
			conn, err := pgx.Connect(ctx, pgURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		exec("ALTER TABLE events RENAME TO events_away")
		return func() { exec("ALTER TABLE events_away RENAME TO events") }
	}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.open(t)
			defer s.Close()
			var st Store = keepOpenProber{keepOpen{s}}
			onUnhealthy, calls, _ := countCalls()
			q := NewQueue(st, QueueParams{OnUnhealthy: onUnhealthy, ProbeInterval: 200 * time.Millisecond})
			defer q.Close(ctx)
			if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatal(err)
			}
			waitStored(t, s, "a", 1)
			mend := c.breakStore(t)
			if err := q.Write(ctx, ev(1, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the outage", func() bool { return q.Healthy() != nil })
			t.Logf("outage: %v", q.Healthy())
			if got := calls.Load(); got != 1 {
				t.Errorf("OnUnhealthy calls: got %d, want 1", got)
			}
			time.Sleep(500 * time.Millisecond) // a few failed retries
			if q.Healthy() == nil {
				t.Fatal("Healthy: got nil while the store is unwritable")
			}
			mend()
			eventually(t, "the recovery", func() bool { return q.Healthy() == nil })
			waitStored(t, s, "a", 2)
			waitStored(t, s, TypeStoreFailed, 1)
			rec := waitStored(t, s, TypeStoreRecovered, 1)
			if ms, _ := rec[0].Detail["outage_ms"].(float64); ms < 400 {
				t.Errorf("outage_ms: got %v, want at least the 500ms the store was unwritable", rec[0].Detail["outage_ms"])
			}
			if q.Dropped() != 0 {
				t.Errorf("Dropped: got %d, want 0", q.Dropped())
			}
		})
	}
}

// TestQueueStoreFileDeleted: an audit file deleted under the queue is
// noticed by the next probe, a new file is opened at the path, and the
// outage is recorded in it.
func TestQueueStoreFileDeleted(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	for _, c := range []struct{ sink, file string }{{"sqlite", "audit.db"}, {"jsonl:audit.jsonl", "audit.jsonl"}} {
		t.Run(c.file, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(ctx, c.sink, dir, "gw")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			onUnhealthy, calls, cause := countCalls()
			q := NewQueue(keepOpenProber{keepOpen{s}}, QueueParams{OnUnhealthy: onUnhealthy, ProbeInterval: 100 * time.Millisecond})
			defer q.Close(ctx)
			if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatal(err)
			}
			waitStored(t, s, "a", 1)
			if err := os.Remove(filepath.Join(dir, c.file)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the deletion noticed", func() bool { return calls.Load() == 1 })
			if p := cause.Load(); p == nil || !errors.Is(*p, ErrStoreReplaced) {
				t.Errorf("OnUnhealthy cause: got %v, want ErrStoreReplaced", p)
			}
			eventually(t, "the recovery", func() bool { return q.Healthy() == nil })
			if err := q.Write(ctx, ev(1, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatal(err)
			}
			got := waitStored(t, s, "a", 1) // the new file: event 0 went with the old one
			if !got[0].Time.Equal(ev(1, "a", "", "", "").Time) {
				t.Errorf("event in the new file: got %+v, want event 1", got[0])
			}
			f := waitStored(t, s, TypeStoreFailed, 1)
			if !strings.Contains(f[0].Reason, "deleted or replaced") {
				t.Errorf("store_failed reason: got %q, want it to say the file was deleted", f[0].Reason)
			}
			waitStored(t, s, TypeStoreRecovered, 1)
			if _, err := os.Stat(filepath.Join(dir, c.file)); err != nil {
				t.Errorf("new file: %v", err)
			}
		})
	}
}
func TestQueueCloseDeadline(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := &gateStore{Store: openSQLite(t), release: make(chan struct{}), entered: make(chan struct{}, 16)}
	q := NewQueue(g, QueueParams{Size: 8, Mode: BestEffort})
	ctx := context.Background()
	for i := range 3 {
		if err := q.Write(ctx, ev(i, "a", "gw1/s:1", "u", "")); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
	}
	<-g.entered
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: got %v, want DeadlineExceeded", err)
	}
	if got := q.Dropped(); got != 3 {
		t.Errorf("Dropped: got %d, want 3", got)
	}
	if err := q.Write(ctx, ev(9, "a", "gw1/s:1", "u", "")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: got %v, want ErrClosed", err)
	}
	if _, err := g.Store.Query(ctx, Filter{}); !errors.Is(err, ErrClosed) {
		t.Errorf("store after queue Close: got %v, want ErrClosed (the queue owns it)", err)
	}
}

// TestQueueConcurrentWriters checks, under -race, that concurrent writers
// lose nothing the queue accepted.
func TestQueueConcurrentWriters(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	real := openSQLite(t)
	defer real.Close()
	q := NewQueue(keepOpen{real}, QueueParams{Size: 10000, Mode: BestEffort})
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := range 200 {
				if q.Write(ctx, ev(i, "a", "gw1/s:1", "u", "")) == nil {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	got, err := real.Query(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int(accepted.Load()) - int(q.Dropped()); len(got) != want {
		t.Errorf("stored: got %d, want %d (accepted %d, dropped %d)", len(got), want, accepted.Load(), q.Dropped())
	}
}

// writeOnly hides the store's BatchWriter, so the queue writes one by one.
type writeOnly struct{ Store }

func (writeOnly) Close() error { return nil }

func TestQueueWithoutBatchWriter(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	real := openSQLite(t)
	defer real.Close()
	q := NewQueue(writeOnly{real}, QueueParams{Size: 16})
	var want []Event
	for i := range 10 {
		e := ev(i, "a", "gw1/s:1", "u", "")
		want = append(want, e)
		if err := q.Write(ctx, e); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
	}
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	got, err := real.Query(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, got, want)
}

// TestQueueStoreHangs: a store call past StoreTimeout is a failure (a
// server gone silent), and the queue recovers when the store answers.
func TestQueueStoreHangs(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	real := openSQLite(t)
	defer real.Close()
	g := &gateStore{Store: real, release: make(chan struct{})}
	q := NewQueue(keepOpen{g}, QueueParams{StoreTimeout: 200 * time.Millisecond, ProbeInterval: 100 * time.Millisecond})
	defer q.Close(ctx)
	if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the outage", func() bool { return q.Healthy() != nil })
	if err := q.Healthy(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Healthy: got %v, want DeadlineExceeded", err)
	}
	close(g.release)
	eventually(t, "the recovery", func() bool { return q.Healthy() == nil })
	waitStored(t, real, "a", 1)
	waitStored(t, real, TypeStoreRecovered, 1)
}

// TestReserveAfterStoreReplaced: a SQLite file deleted under the gateway
// is reopened empty, and the instance counter goes on from memory, so no
// session id repeats.
func TestReserveAfterStoreReplaced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, "sqlite", dir, "gw")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.(InstanceReserver)
	if first, err := r.ReserveInstances(ctx, "ssh-in", 100); err != nil || first != 1 {
		t.Fatalf("first reservation: got %d, %v; want 1", first, err)
	}
	if err := os.Remove(filepath.Join(dir, "audit.db")); err != nil {
		t.Fatal(err)
	}
	if err := s.(Prober).Probe(ctx); !errors.Is(err, ErrStoreReplaced) {
		t.Fatalf("probe: got %v, want ErrStoreReplaced", err)
	}
	if first, err := r.ReserveInstances(ctx, "ssh-in", 100); err != nil || first != 101 {
		t.Fatalf("reservation after the file was replaced: got %d, %v; want 101", first, err)
	}
}
