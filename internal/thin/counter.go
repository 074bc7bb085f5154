package thin

import (
	"sync"
	"time"
)

// Integer is a running count Kept can judge.
type Integer interface{ ~int | ~int64 | ~uint64 }

// Kept reports whether the occurrence that brings a running count to n is
// kept (recorded one by one): the first burst are, then each power of
// two. With burst 1 these are the 1st, 2nd, 4th, 8th...
func Kept[N Integer](n, burst N) bool {
	return n <= burst || n&(n-1) == 0
}

// Counter counts occurrences by key and says which to keep (see Kept),
// remembering for each key whose last occurrence was held back a value of
// the caller's (the event it would have written) for Held. The zero value
// keeps only the powers of two, of any number of keys, for ever. Set the
// fields before the first Add and do not change them after.
type Counter[K comparable, V any] struct {
	// Burst is how many occurrences of a key are kept one by one before
	// only the powers of two are.
	Burst int64
	// Keys bounds the keys counted (0: no bound). Past it, occurrences of
	// a key not yet counted count as the zero K's, which may itself be a
	// key: callers pick a K whose zero value names no real key, or accept
	// the sharing.
	Keys int
	// Window, when positive, restarts the counts (and forgets what Held
	// would return) at the first Add once Window has passed since they
	// last started.
	Window time.Duration
	// Now is the clock for Window (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	start  time.Time // of the current window
	counts map[K]int64
	held   map[K]V // the last value of each key whose last occurrence was held back
}

// Add counts one occurrence of k and returns the key's running count
// (in the window) and whether to keep the occurrence. When it is not
// kept, v is remembered for Held.
func (c *Counter[K, V]) Add(k K, v V) (n int64, kept bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Window > 0 {
		now := c.now()
		if now.Sub(c.start) >= c.Window {
			c.start, c.counts, c.held = now, nil, nil
		}
	}
	if c.counts == nil {
		c.counts = make(map[K]int64)
	}
	if _, ok := c.counts[k]; !ok && c.Keys > 0 && len(c.counts) >= c.Keys {
		var zero K
		k = zero
	}
	c.counts[k]++
	n = c.counts[k]
	if Kept(n, c.Burst) {
		delete(c.held, k)
		return n, true
	}
	if c.held == nil {
		c.held = make(map[K]V)
	}
	c.held[k] = v
	return n, false
}

// Count returns k's running count (in the window).
func (c *Counter[K, V]) Count(k K) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}

// Held is one key whose last occurrence was held back: its count and the
// value Add was given with that occurrence.
type Held[K comparable, V any] struct {
	Key   K
	Count int64
	Value V
}

// Held returns, in no particular order, the keys whose last occurrence was
// held back, with their counts, and forgets them (the counts go on): a
// summary at the end of what was counted gives each total once.
func (c *Counter[K, V]) Held() []Held[K, V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	hs := make([]Held[K, V], 0, len(c.held))
	for k, v := range c.held {
		hs = append(hs, Held[K, V]{Key: k, Count: c.counts[k], Value: v})
	}
	c.held = nil
	return hs
}

func (c *Counter[K, V]) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
