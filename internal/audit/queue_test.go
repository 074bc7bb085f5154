package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// gateStore is a Store whose writes fail with err (when set) or wait for
// release; everything else is the real SQLite store.
type gateStore struct {
	Store
	err     error
	release chan struct{} // nil: writes do not wait
	entered chan struct{} // receives once per batch that started
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
	if g.err != nil {
		return g.err
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

func TestQueueStoreUnavailable(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	stores := []struct {
		name  string
		store func(t *testing.T) Store
		cause error
	}{
		{"closed", func(t *testing.T) Store {
			s := openSQLite(t)
			s.Close()
			return s
		}, ErrClosed},
		{"failing", func(t *testing.T) Store { return &gateStore{Store: openSQLite(t), err: errDiskGone} }, errDiskGone},
	}
	for _, st := range stores {
		for _, mode := range []Mode{FailClosed, BestEffort} {
			t.Run(st.name+"/"+mode.String(), func(t *testing.T) {
				var calls atomic.Int32
				var gotCause atomic.Pointer[error]
				var logs syncBuffer
				q := NewQueue(st.store(t), QueueParams{
					Mode:   mode,
					Logger: slog.New(slog.NewTextHandler(&logs, nil)),
					OnUnhealthy: func(err error) {
						calls.Add(1)
						gotCause.Store(&err)
					},
				})
				defer q.Close(ctx)
				if err := q.Write(ctx, ev(0, "auth", "gw1/ssh-in:1", "a", Accept)); err != nil {
					t.Fatalf("first Write: got %v, want nil (the failure is found later)", err)
				}
				eventually(t, "the event to be dropped", func() bool { return q.Dropped() == 1 })
				switch mode {
				case FailClosed:
					if err := q.Healthy(); !errors.Is(err, st.cause) {
						t.Errorf("Healthy: got %v, want %v", err, st.cause)
					}
					if err := q.Write(ctx, ev(1, "auth", "gw1/ssh-in:1", "a", Accept)); !errors.Is(err, st.cause) {
						t.Errorf("Write when unhealthy: got %v, want an error wrapping %v", err, st.cause)
					}
					if got := calls.Load(); got != 1 {
						t.Errorf("OnUnhealthy calls: got %d, want 1", got)
					}
					if p := gotCause.Load(); p == nil || !errors.Is(*p, st.cause) {
						t.Errorf("OnUnhealthy cause: got %v, want %v", p, st.cause)
					}
					if !strings.Contains(logs.String(), "audit queue unhealthy") {
						t.Errorf("log: got %q, want an unhealthy report", logs.String())
					}
				case BestEffort:
					for i := range 3 {
						if err := q.Write(ctx, ev(i+1, "auth", "gw1/ssh-in:1", "a", Accept)); err != nil {
							t.Errorf("Write: got %v, want nil", err)
						}
					}
					eventually(t, "four drops", func() bool { return q.Dropped() == 4 })
					if err := q.Healthy(); err != nil {
						t.Errorf("Healthy: got %v, want nil", err)
					}
					if got := calls.Load(); got != 0 {
						t.Errorf("OnUnhealthy calls: got %d, want 0", got)
					}
					if !strings.Contains(logs.String(), "audit events dropped") {
						t.Errorf("log: got %q, want a drop report", logs.String())
					}
				}
			})
		}
	}
}

func TestQueueFull(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	for _, mode := range []Mode{FailClosed, BestEffort} {
		t.Run(mode.String(), func(t *testing.T) {
			real := openSQLite(t)
			defer real.Close()
			g := &gateStore{Store: real, release: make(chan struct{}), entered: make(chan struct{}, 16)}
			var calls atomic.Int32
			q := NewQueue(keepOpen{g}, QueueParams{Size: 2, Mode: mode, OnUnhealthy: func(error) { calls.Add(1) }})
			// The writer takes the first event and blocks in the store.
			if err := q.Write(ctx, ev(0, "a", "gw1/s:1", "u", "")); err != nil {
				t.Fatalf("Write 0: got %v, want nil", err)
			}
			<-g.entered
			for i := 1; i <= 2; i++ {
				if err := q.Write(ctx, ev(i, "a", "gw1/s:1", "u", "")); err != nil {
					t.Fatalf("Write %d: got %v, want nil", i, err)
				}
			}
			start := time.Now()
			err := q.Write(ctx, ev(3, "a", "gw1/s:1", "u", ""))
			if d := time.Since(start); d > time.Second {
				t.Errorf("Write on a full queue took %v, want no blocking", d)
			}
			switch mode {
			case FailClosed:
				if !errors.Is(err, ErrQueueFull) {
					t.Errorf("Write on full queue: got %v, want ErrQueueFull", err)
				}
				if err := q.Healthy(); !errors.Is(err, ErrQueueFull) {
					t.Errorf("Healthy: got %v, want ErrQueueFull", err)
				}
				if got := calls.Load(); got != 1 {
					t.Errorf("OnUnhealthy calls: got %d, want 1", got)
				}
			case BestEffort:
				if err != nil {
					t.Errorf("Write on full queue: got %v, want nil", err)
				}
				if err := q.Healthy(); err != nil {
					t.Errorf("Healthy: got %v, want nil", err)
				}
			}
			if got := q.Dropped(); got != 1 {
				t.Errorf("Dropped: got %d, want 1", got)
			}
			close(g.release)
			if err := q.Close(ctx); err != nil {
				t.Fatalf("Close: got %v, want nil", err)
			}
			got, err := real.Query(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Errorf("stored: got %d events, want the 3 queued", len(got))
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
