package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Mode says what a Queue does when it cannot keep an event.
type Mode int

const (
	// FailClosed marks the queue unhealthy on the first lost event (queue
	// full or store failure); the gateway then refuses new sessions and ends
	// live ones. The zero Mode, because losing audit silently is the worse
	// default.
	FailClosed Mode = iota
	// BestEffort counts and logs lost events and carries on.
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

// ErrQueueFull is the cause recorded when an event arrives at a full queue.
var ErrQueueFull = errors.New("audit: queue full")

// Queue defaults.
const (
	defaultQueueSize = 4096
	// queueMaxBatch bounds one store transaction.
	queueMaxBatch = 512
)

// QueueParams configures NewQueue.
type QueueParams struct {
	// Size is the number of events the queue holds (default 4096).
	Size int
	Mode Mode
	// Logger receives drop and failure reports (default: discarded).
	Logger *slog.Logger
	// OnUnhealthy, when set, is called once, under FailClosed, with the
	// reason the queue became unhealthy. It runs on the goroutine of the
	// Write that overflowed or on the queue's writer goroutine; it must not
	// block and must not call Close.
	OnUnhealthy func(error)
}

// Queue is a Sink that never blocks the data path: Write puts the event in a
// bounded buffer and returns; one writer goroutine, started by NewQueue and
// ended by Close, drains the buffer into the store in batches. A Queue owns
// its store and closes it.
type Queue struct {
	store Store
	p     QueueParams
	log   *slog.Logger

	// mu guards closed and sends on ch against its close.
	mu     sync.RWMutex
	closed bool
	ch     chan Event

	dropped   atomic.Uint64
	unhealthy atomic.Pointer[error]
	once      sync.Once

	cancel context.CancelFunc // aborts store calls when Close gives up
	done   chan struct{}      // closed when the writer goroutine returns
}

var _ Sink = (*Queue)(nil)

// NewQueue starts the writer goroutine; call Close to stop it.
func NewQueue(store Store, p QueueParams) *Queue {
	if p.Size <= 0 {
		p.Size = defaultQueueSize
	}
	q := &Queue{
		store: store,
		p:     p,
		log:   p.Logger,
		ch:    make(chan Event, p.Size),
		done:  make(chan struct{}),
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	go q.run(ctx)
	return q
}

// Write queues e without blocking. Under FailClosed it returns an error when
// the queue is (or thereby becomes) unhealthy or is closed; under BestEffort
// a lost event is counted in Dropped and Write returns nil, except after
// Close (ErrClosed).
func (q *Queue) Write(ctx context.Context, e Event) error {
	if q.p.Mode == FailClosed {
		if err := q.Healthy(); err != nil {
			return fmt.Errorf("audit: queue unhealthy: %w", err)
		}
	}
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return ErrClosed
	}
	select {
	case q.ch <- e:
		q.mu.RUnlock()
		return nil
	default:
	}
	q.mu.RUnlock()
	q.lost(ctx, 1, ErrQueueFull)
	if q.p.Mode == FailClosed {
		return fmt.Errorf("audit: queue unhealthy: %w", ErrQueueFull)
	}
	return nil
}

// Healthy returns nil, or why the queue lost an event under FailClosed.
// Once unhealthy a queue stays so; replace it (and its store) to recover.
func (q *Queue) Healthy() error {
	if p := q.unhealthy.Load(); p != nil {
		return *p
	}
	return nil
}

// Dropped is the number of events lost so far (queue full, store failure,
// or left queued when Close's context expired).
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// lost accounts for n events that will not reach the store.
func (q *Queue) lost(ctx context.Context, n int, cause error) {
	total := q.dropped.Add(uint64(n))
	if q.p.Mode == FailClosed {
		if q.unhealthy.CompareAndSwap(nil, &cause) {
			q.log.LogAttrs(ctx, slog.LevelError, "audit queue unhealthy", slog.Any("err", cause), slog.Uint64("dropped", total))
		}
		q.once.Do(func() {
			if q.p.OnUnhealthy != nil {
				q.p.OnUnhealthy(cause)
			}
		})
		return
	}
	// Log the first drop of each power of two so a flood stays readable.
	if bits.OnesCount64(total) == 1 || uint64(n) >= total {
		q.log.LogAttrs(ctx, slog.LevelWarn, "audit events dropped", slog.Any("err", cause), slog.Uint64("dropped", total))
	}
}

// run is the writer goroutine. It returns when ch is closed and drained.
func (q *Queue) run(ctx context.Context) {
	defer close(q.done)
	bw, batched := q.store.(BatchWriter)
	batch := make([]Event, 0, queueMaxBatch)
	for e := range q.ch {
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
		if ctx.Err() != nil {
			q.lost(ctx, len(batch), fmt.Errorf("audit: queue closed before the store took the event: %w", context.Cause(ctx)))
			continue
		}
		if batched {
			if err := bw.WriteBatch(ctx, batch); err != nil {
				q.lost(ctx, len(batch), err)
			}
			continue
		}
		for i, e := range batch {
			if err := q.store.Write(ctx, e); err != nil {
				q.lost(ctx, len(batch)-i, err)
				break
			}
		}
	}
}

// Close stops accepting events, waits for the writer goroutine to store what
// is queued, and closes the store. If ctx ends first, the events still queued
// are dropped (counted in Dropped) and Close returns ctx's error after the
// writer goroutine has returned.
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
