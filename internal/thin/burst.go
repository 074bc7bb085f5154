package thin

import (
	"sync"
	"time"
)

// Burst lets the first Burst occurrences of each window pass and counts
// the rest by key. A window ends in one of two ways:
//
//   - with Window positive, at the first Allow once Window has passed
//     since the window began; with Report set, what was held back is then
//     reported by a timer at the window's end, or by Flush;
//   - with Window zero, when the owner calls Next (on a ticker, say),
//     which returns what was held back.
//
// Set the fields before the first Allow and do not change them after.
type Burst[K comparable] struct {
	// Burst is how many occurrences of a window pass.
	Burst int
	// Keys bounds the keys counted (0: no bound); occurrences of further
	// keys are counted together, as the rest.
	Keys int
	// Window is the length of a window, or 0 when Next ends them.
	Window time.Duration
	// Report, when set, receives what was held back (the counts by key
	// and the rest) when a Window ends after an occurrence was held back,
	// from a timer's goroutine, or at Flush (which needs it). It is not
	// called with the Burst's lock held. The timer runs on real time, for
	// what remains of the window by Now.
	Report func(held map[K]int64, rest int64)
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	start  time.Time // of the current window
	passed int       // occurrences passed in the window
	held   map[K]int64
	rest   int64 // held back, of keys past Keys
	timer  *time.Timer
}

// Allow says whether an occurrence of k may pass; when not, it is counted.
func (b *Burst[K]) Allow(k K) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if b.Window > 0 && now.Sub(b.start) >= b.Window {
		b.start, b.passed = now, 0
	}
	if b.passed < b.Burst {
		b.passed++
		return true
	}
	if b.held == nil {
		b.held = make(map[K]int64)
	}
	if _, ok := b.held[k]; ok || b.Keys <= 0 || len(b.held) < b.Keys {
		b.held[k]++
	} else {
		b.rest++
	}
	if b.Report != nil && b.Window > 0 && b.timer == nil {
		b.timer = time.AfterFunc(b.Window-now.Sub(b.start), b.Flush)
	}
	return false
}

// Flush reports what was held back so far, if anything, and forgets it;
// the window goes on.
func (b *Burst[K]) Flush() {
	b.mu.Lock()
	held, rest := b.take()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
	if len(held) > 0 || rest > 0 {
		b.Report(held, rest)
	}
}

// Next ends the window, starting the next now, and returns what was held
// back in it: the counts by key (nil when none) and the rest.
func (b *Burst[K]) Next() (held map[K]int64, rest int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.start, b.passed = b.now(), 0
	return b.take()
}

// take returns what was held back and forgets it; b.mu is held.
func (b *Burst[K]) take() (map[K]int64, int64) {
	held, rest := b.held, b.rest
	b.held, b.rest = nil, 0
	return held, rest
}

func (b *Burst[K]) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}
