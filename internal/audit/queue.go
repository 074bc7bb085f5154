package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ssh/sluice/internal/thin"
)

// Mode says what the gateway does while a Queue's store fails.
type Mode int

const (
	// FailClosed: while the store fails, the queue calls OnUnhealthy once
	// per outage; the gateway then refuses new sessions and ends live ones
	// until the store takes writes again. The zero Mode, because losing
	// audit silently is the worse default.
	FailClosed Mode = iota
	// BestEffort: sessions carry on while the store fails; events that
	// cannot be kept are counted, logged and reported in the store once it
	// is back.
	BestEffort
)

func (m Mode) String() string {
	switch m {
	case FailClosed:
		return "fail_closed"
	case BestEffort:
		return "best_effort"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ErrQueueFull is the cause recorded when an event could not be queued
// within QueueParams.MaxWait (or its Write's context) while the store was
// working. A full queue is never a store failure: it makes no outage.
var ErrQueueFull = errors.New("audit: queue full")

// Event types a Queue writes about its own store (no session id; Reason
// and Detail say what happened).
const (
	// TypeStoreFailed is written, once the store is back, with the time
	// the outage began and its cause.
	TypeStoreFailed = "audit.store_failed"
	// TypeStoreRecovered ends an outage: Detail "down_since", "outage_ms"
	// and "lost" (events dropped meanwhile).
	TypeStoreRecovered = "audit.store_recovered"
	// TypeDropped reports, with the next batch stored, events dropped
	// outside an outage (queue full): Detail "lost".
	TypeDropped = "audit.dropped"
)

// Queue defaults.
const (
	defaultQueueSize = 4096
	// queueMaxBatch bounds one store transaction.
	queueMaxBatch = 512
	// DefaultProbeInterval is QueueParams.ProbeInterval's default.
	DefaultProbeInterval = 5 * time.Second
	// defaultMaxWait: a session waits this long for room in a full queue
	// before its event is dropped (counted, reported; no outage).
	defaultMaxWait = 15 * time.Second
	// defaultStoreTimeout bounds one store call; a store that takes longer
	// (a PostgreSQL server gone silent) is failing. It is long on purpose:
	// a store that is only slow (a loaded machine, a busy disk) must be met
	// by backpressure, not by an outage that fail_closed turns into a
	// lockout, or a client flood that loads the machine could cause one.
	defaultStoreTimeout = 60 * time.Second
	// firstRetry is the wait before the first retry of a failing store;
	// it doubles up to ProbeInterval.
	firstRetry = 250 * time.Millisecond
)

// QueueParams configures NewQueue.
type QueueParams struct {
	// Size is the number of events the queue holds (default 4096).
	Size int
	Mode Mode
	// Logger receives drop, failure and recovery reports (default: discarded).
	Logger *slog.Logger
	// OnUnhealthy, when set, is called under FailClosed each time the store
	// starts failing (once per outage), with the *StoreError that Healthy
	// returns until it recovers. It runs on the queue's writer goroutine;
	// it must not block and must not call Write or Close.
	OnUnhealthy func(error)
	// ProbeInterval is how often the writer probes a working store that
	// implements Prober, and the longest wait between retries of a failing
	// one (default DefaultProbeInterval).
	ProbeInterval time.Duration
	// MaxWait bounds how long Write waits for room in a full queue while
	// the store works (default 15 s). Zero means the default.
	MaxWait time.Duration
	// StoreTimeout bounds each store call (default 60 s).
	StoreTimeout time.Duration
}

// StoreError is what Healthy returns while the store fails.
type StoreError struct {
	Cause error     // the first failure of the outage
	Since time.Time // when the outage began
}

func (e *StoreError) Error() string {
	return fmt.Sprintf("audit store failing since %s: %v", e.Since.UTC().Format(time.RFC3339), e.Cause)
}

func (e *StoreError) Unwrap() error { return e.Cause }

// Queue is a Sink between sessions and a Store. Write puts the event in a
// bounded buffer, waiting (at most MaxWait, or until its context ends) when
// the buffer is full: a session that produces events faster than the store
// takes them is slowed down, not cut off. One writer goroutine, started by
// NewQueue and ended by Close, drains the buffer into the store in batches.
//
// When the store fails (a write error, a call longer than StoreTimeout, or
// a Prober's error) the queue keeps the batch it could not write, reports
// the outage (Healthy, OnUnhealthy, the log) and retries with back-off,
// probing first. Meanwhile Write does not wait: it queues while there is
// room and drops, counted, when there is none. When a retry succeeds the
// batch is stored together with a TypeStoreFailed and a TypeStoreRecovered
// event, and the queue is healthy again. A Queue owns its store and closes
// it.
type Queue struct {
	store  Store
	prober Prober // nil when the store is not one
	p      QueueParams
	log    *slog.Logger

	// mu guards closed and sends on ch against its close.
	mu     sync.RWMutex
	closed bool
	ch     chan Event

	dropped    atomic.Uint64
	unreported atomic.Uint64 // dropped events no audit event reports yet

	// hmu guards failure and down.
	hmu     sync.Mutex
	failure *StoreError   // nil while the store takes writes
	down    chan struct{} // closed when the current outage began

	cancel context.CancelFunc // aborts store calls when Close gives up
	done   chan struct{}      // closed when the writer goroutine returns
}

var _ Sink = (*Queue)(nil)

// NewQueue starts the writer goroutine; call Close to stop it.
func NewQueue(store Store, p QueueParams) *Queue {
	if p.Size <= 0 {
		p.Size = defaultQueueSize
	}
	if p.ProbeInterval <= 0 {
		p.ProbeInterval = DefaultProbeInterval
	}
	if p.MaxWait <= 0 {
		p.MaxWait = defaultMaxWait
	}
	if p.StoreTimeout <= 0 {
		p.StoreTimeout = defaultStoreTimeout
	}
	q := &Queue{
		store: store,
		p:     p,
		log:   p.Logger,
		ch:    make(chan Event, p.Size),
		down:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	q.prober, _ = store.(Prober)
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	go q.run(ctx)
	return q
}

// Write queues e. When the queue is full and the store works, it waits for
// room until ctx ends or MaxWait has passed; while the store fails it does
// not wait. An event that could not be queued is counted in Dropped and
// reported in the store later (TypeDropped, TypeStoreRecovered); Write then
// returns an error wrapping ErrQueueFull or the *StoreError under
// FailClosed, and nil under BestEffort. After Close it returns ErrClosed.
func (q *Queue) Write(ctx context.Context, e Event) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	select {
	case q.ch <- e:
		return nil
	default:
	}
	failure, down := q.state()
	if failure == nil {
		t := time.NewTimer(q.p.MaxWait)
		defer t.Stop()
		select {
		case q.ch <- e:
			return nil
		case <-down:
			failure, _ = q.state()
		case <-ctx.Done():
		case <-t.C:
		}
	}
	var cause error = ErrQueueFull
	if failure != nil {
		cause = failure
	}
	q.lost(ctx, 1, cause)
	if q.p.Mode == FailClosed {
		return fmt.Errorf("audit: event dropped: %w", cause)
	}
	return nil
}

// Healthy returns nil while the store takes writes, and a *StoreError
// during an outage, in both modes.
func (q *Queue) Healthy() error {
	if f, _ := q.state(); f != nil {
		return f
	}
	return nil
}

func (q *Queue) state() (*StoreError, <-chan struct{}) {
	q.hmu.Lock()
	defer q.hmu.Unlock()
	return q.failure, q.down
}

// Dropped is the number of events lost so far (queue full, store failure,
// or left queued when Close's context expired).
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// lost accounts for n events that will not reach the store.
func (q *Queue) lost(ctx context.Context, n int, cause error) {
	total := q.dropped.Add(uint64(n))
	q.unreported.Add(uint64(n))
	// Log the first drops, then each time the total lands on a power of
	// two (thin.Kept), so a flood stays readable.
	if thin.Kept(total, 1) || uint64(n) >= total {
		q.log.LogAttrs(ctx, slog.LevelWarn, "audit events dropped", slog.Any("err", cause), slog.Uint64("dropped", total), slog.String("mode", q.p.Mode.String()))
	}
}

// run is the writer goroutine. It returns when ch is closed and drained.
func (q *Queue) run(ctx context.Context) {
	defer close(q.done)
	probe := time.NewTicker(q.p.ProbeInterval)
	defer probe.Stop()
	batch := make([]Event, 0, queueMaxBatch+1)
	for {
		select {
		case e, ok := <-q.ch:
			if !ok {
				return
			}
			batch = append(batch[:0], e)
		fill:
			for len(batch) < queueMaxBatch {
				select {
				case e, ok := <-q.ch:
					if !ok {
						break fill
					}
					batch = append(batch, e)
				default:
					break fill
				}
			}
			q.deliver(ctx, batch)
		case <-probe.C:
			if q.prober == nil || ctx.Err() != nil {
				continue
			}
			if err := q.probe(ctx); err != nil {
				q.outage(ctx, err, nil)
			}
		}
	}
}

// deliver stores batch, riding out a store outage.
func (q *Queue) deliver(ctx context.Context, batch []Event) {
	if ctx.Err() != nil {
		q.lost(ctx, len(batch), fmt.Errorf("audit: queue closed before the store took the event: %w", context.Cause(ctx)))
		return
	}
	n := q.unreported.Swap(0)
	if n > 0 {
		batch = append(batch, Event{Time: time.Now(), Type: TypeDropped, Reason: "audit events dropped: queue full", Detail: map[string]any{"lost": n}})
	}
	// On failure the TypeDropped event is among the events held back, so
	// the n events stay reported.
	if rest, err := q.write(ctx, batch); err != nil {
		q.outage(ctx, err, rest)
	}
}

// write stores events in one batch when the store can, returning the
// events not stored on failure.
func (q *Queue) write(ctx context.Context, events []Event) ([]Event, error) {
	ctx, cancel := context.WithTimeout(ctx, q.p.StoreTimeout)
	defer cancel()
	if bw, ok := q.store.(BatchWriter); ok {
		if err := bw.WriteBatch(ctx, events); err != nil {
			return events, err
		}
		return nil, nil
	}
	for i, e := range events {
		if err := q.store.Write(ctx, e); err != nil {
			return events[i:], err
		}
	}
	return nil, nil
}

func (q *Queue) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, q.p.StoreTimeout)
	defer cancel()
	return q.prober.Probe(ctx)
}

// outage runs from the store's failure with cause until it takes pending
// (plus the outage's own events) again, or until Close gives up.
func (q *Queue) outage(ctx context.Context, cause error, pending []Event) {
	pending = append([]Event(nil), pending...)
	failure := &StoreError{Cause: cause, Since: time.Now()}
	q.hmu.Lock()
	q.failure = failure
	close(q.down)
	q.hmu.Unlock()
	q.log.LogAttrs(ctx, slog.LevelError, "audit store failing", slog.Any("err", cause), slog.String("mode", q.p.Mode.String()), slog.Int("pending", len(pending)))
	if q.p.Mode == FailClosed && q.p.OnUnhealthy != nil {
		q.p.OnUnhealthy(failure)
	}
	wait := firstRetry
	last := cause
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			q.lost(ctx, len(pending), fmt.Errorf("audit: queue closed during a store outage: %w", failure))
			return
		case <-t.C:
		}
		wait = min(2*wait, q.p.ProbeInterval)
		if q.prober != nil {
			if err := q.probe(ctx); err != nil {
				last = err
				continue
			}
		}
		lost := q.unreported.Swap(0)
		now := time.Now()
		out := make([]Event, 0, len(pending)+2)
		out = append(out, Event{Time: failure.Since, Type: TypeStoreFailed, Reason: cause.Error(), Detail: map[string]any{"mode": q.p.Mode.String()}})
		out = append(out, pending...)
		out = append(out, Event{Time: now, Type: TypeStoreRecovered, Reason: "audit store takes writes again", Detail: map[string]any{
			"down_since": failure.Since.UTC().Format(time.RFC3339Nano),
			"outage_ms":  now.Sub(failure.Since).Milliseconds(),
			"lost":       lost,
			"last_error": last.Error(),
		}})
		if _, err := q.write(ctx, out); err != nil {
			q.unreported.Add(lost)
			last = err
			continue
		}
		q.hmu.Lock()
		q.failure = nil
		q.down = make(chan struct{})
		q.hmu.Unlock()
		q.log.LogAttrs(ctx, slog.LevelWarn, "audit store recovered", slog.Duration("outage", now.Sub(failure.Since)), slog.Uint64("lost", lost), slog.Any("cause", cause))
		return
	}
}

// Close stops accepting events, waits for the writer goroutine to store what
// is queued, and closes the store. If ctx ends first (the store is slow or
// failing), the events still queued are dropped (counted in Dropped) and
// Close returns ctx's error after the writer goroutine has returned.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	close(q.ch)
	q.mu.Unlock()

	var ctxErr error
	select {
	case <-q.done:
	case <-ctx.Done():
		ctxErr = fmt.Errorf("audit: queue close: %w", context.Cause(ctx))
		q.cancel()
		<-q.done
	}
	q.cancel()
	return errors.Join(ctxErr, q.store.Close())
}
