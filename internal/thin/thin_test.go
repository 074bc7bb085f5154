package thin

import (
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock for Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestKept: the first burst, then each power of two; with burst 0 or 1
// the 1st, 2nd, 4th, 8th...
func TestKept(t *testing.T) {
	for _, tc := range []struct {
		burst int64
		want  []int64
	}{
		{0, []int64{1, 2, 4, 8, 16, 32, 64}},
		{1, []int64{1, 2, 4, 8, 16, 32, 64}},
		{3, []int64{1, 2, 3, 4, 8, 16, 32, 64}},
		{16, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32, 64}},
	} {
		var got []int64
		for n := int64(1); n <= 100; n++ {
			if Kept(n, tc.burst) {
				got = append(got, n)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("burst %d: got %v kept, want %v", tc.burst, got, tc.want)
		}
	}
	if !Kept(uint64(1)<<63, 1) || Kept(uint64(1)<<63+1, 1) {
		t.Error("Kept on uint64: got the wrong verdict at 2^63")
	}
}

// TestCounterSequence: one key's occurrences are kept at 1..Burst and the
// powers of two, with the running count; another key counts apart; Held
// gives the key whose last occurrence was held back, once, with its total
// and last value.
func TestCounterSequence(t *testing.T) {
	var c Counter[string, int]
	c.Burst = 4
	var kept []int64
	for i := 1; i <= 20; i++ {
		n, ok := c.Add("a", i)
		if n != int64(i) {
			t.Fatalf("Add %d: got count %d, want %d", i, n, i)
		}
		if ok {
			kept = append(kept, n)
		}
	}
	if want := []int64{1, 2, 3, 4, 8, 16}; !slices.Equal(kept, want) {
		t.Errorf("kept: got %v, want %v", kept, want)
	}
	if n, ok := c.Add("b", 100); n != 1 || !ok {
		t.Errorf("another key's first: got %d, %v; want 1, true", n, ok)
	}
	if n, ok := c.Add("b", 101); n != 2 || !ok {
		t.Errorf("another key's second: got %d, %v; want 2, true", n, ok)
	}
	if got := c.Count("a"); got != 20 {
		t.Errorf("Count(a): got %d, want 20", got)
	}
	if got := c.Count("c"); got != 0 {
		t.Errorf("Count(c): got %d, want 0", got)
	}
	hs := c.Held()
	if want := []Held[string, int]{{Key: "a", Count: 20, Value: 20}}; !slices.Equal(hs, want) {
		t.Errorf("Held: got %+v, want %+v", hs, want)
	}
	if hs := c.Held(); len(hs) != 0 {
		t.Errorf("Held again: got %+v, want none", hs)
	}
	// Held forgets the held keys, not the counts: the 32nd is kept, and a
	// key whose last occurrence was kept is not held.
	for i := 21; i <= 32; i++ {
		c.Add("a", i)
	}
	if n, ok := c.Add("a", 33); n != 33 || ok {
		t.Errorf("33rd: got %d, %v; want 33, false", n, ok)
	}
	var bKept []int64
	for i := 3; i <= 8; i++ {
		if n, ok := c.Add("b", 100+i); ok {
			bKept = append(bKept, n)
		}
	}
	if want := []int64{3, 4, 8}; !slices.Equal(bKept, want) {
		t.Errorf("b kept: got %v, want %v (its 5th to 7th held, then the 8th kept)", bKept, want)
	}
	hs = c.Held()
	if want := []Held[string, int]{{Key: "a", Count: 33, Value: 33}}; !slices.Equal(hs, want) {
		t.Errorf("Held after more: got %+v, want %+v", hs, want)
	}
}

// TestCounterKeys: past Keys keys, new keys share the zero key's count,
// which is thinned like any other; keys already counted go on apart.
func TestCounterKeys(t *testing.T) {
	c := Counter[string, struct{}]{Burst: 1, Keys: 2}
	add := func(k string) int64 { n, _ := c.Add(k, struct{}{}); return n }
	add("a")
	add("b")
	var kept []int64
	for _, k := range []string{"c", "d", "e", "f", "g", "h", "i", "j"} {
		n, ok := c.Add(k, struct{}{})
		if ok {
			kept = append(kept, n)
		}
	}
	if want := []int64{1, 2, 4, 8}; !slices.Equal(kept, want) {
		t.Errorf("keys past the bound: got %v kept, want %v", kept, want)
	}
	if got := c.Count(""); got != 8 {
		t.Errorf("Count of the zero key: got %d, want 8", got)
	}
	if got := add("a"); got != 2 {
		t.Errorf("a key counted before the bound: got %d, want 2", got)
	}
	for _, k := range []string{"c", "d"} {
		if got := c.Count(k); got != 0 {
			t.Errorf("Count(%s): got %d, want 0 (it shares the zero key's)", k, got)
		}
	}
	if got := add(""); got != 9 {
		t.Errorf("the zero key itself: got %d, want 9", got)
	}
}

// TestCounterWindow: the counts, the key bound and the held keys start
// again at the first Add once Window has passed, not before.
func TestCounterWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := &clock{t: t0}
	c := Counter[string, int]{Burst: 1, Keys: 1, Window: time.Minute, Now: clk.now}
	for i := 1; i <= 3; i++ {
		c.Add("a", i)
	}
	if n, _ := c.Add("b", 0); n != 1 {
		t.Errorf("b past the bound: got %d, want 1 (the zero key's)", n)
	}
	clk.set(t0.Add(time.Minute - time.Nanosecond))
	if n, ok := c.Add("a", 4); n != 4 || !ok {
		t.Errorf("last of the window: got %d, %v; want 4, true", n, ok)
	}
	c.Add("a", 5)
	clk.set(t0.Add(time.Minute))
	if n, ok := c.Add("b", 6); n != 1 || !ok {
		t.Errorf("first of the next window: got %d, %v; want 1, true", n, ok)
	}
	if got := c.Count("a"); got != 0 {
		t.Errorf("Count(a) in the next window: got %d, want 0", got)
	}
	if hs := c.Held(); len(hs) != 0 {
		t.Errorf("Held in the next window: got %+v, want none", hs)
	}
	// The next window began at its first Add, t0+1m: it lasts until
	// t0+2m.
	clk.set(t0.Add(2*time.Minute - time.Nanosecond))
	if n, _ := c.Add("b", 7); n != 2 {
		t.Errorf("end of the next window: got %d, want 2", n)
	}
}

// TestCounterConcurrent: 8 goroutines adding to one key keep exactly the
// first Burst and the powers of two, whatever the interleaving.
func TestCounterConcurrent(t *testing.T) {
	const workers, each = 8, 1000
	c := Counter[string, int]{Burst: 16}
	var mu sync.Mutex
	var kept []int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if n, ok := c.Add("k", w*each+i); ok {
					mu.Lock()
					kept = append(kept, n)
					mu.Unlock()
				}
				c.Count("k")
			}
		})
	}
	wg.Wait()
	slices.Sort(kept)
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
	if !slices.Equal(kept, want) {
		t.Errorf("kept: got %v, want %v", kept, want)
	}
	hs := c.Held()
	if len(hs) != 1 || hs[0].Count != workers*each {
		t.Errorf("Held: got %+v, want k with %d", hs, workers*each)
	}
}

// TestBurstWindow: Burst occurrences pass in each window, the rest are
// counted and reported once by Flush; Flush does not start a window, the
// first Allow once Window has passed does.
func TestBurstWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := &clock{t: t0}
	var mu sync.Mutex
	var reports []int64
	b := Burst[struct{}]{Burst: 3, Window: time.Hour, Now: clk.now, Report: func(held map[struct{}]int64, rest int64) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, held[struct{}{}], rest)
	}}
	reported := func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reports)
	}
	var passed []int
	for i := range 10 {
		clk.set(t0.Add(time.Duration(i) * time.Second))
		if b.Allow(struct{}{}) {
			passed = append(passed, i)
		}
	}
	if want := []int{0, 1, 2}; !slices.Equal(passed, want) {
		t.Errorf("first window: got %v passed, want %v", passed, want)
	}
	b.Flush()
	b.Flush() // nothing more held: no second report
	if want := []int64{7, 0}; !slices.Equal(reported(), want) {
		t.Errorf("reports: got %v, want %v (7 held, no rest)", reports, want)
	}
	// Held, it arms the timer for the rest of the window (half an hour of
	// real time): Flush reports it before.
	clk.set(t0.Add(30 * time.Minute))
	if b.Allow(struct{}{}) {
		t.Error("mid-window after a Flush: passed, want held")
	}
	clk.set(t0.Add(time.Hour))
	for i := range 4 {
		if got := b.Allow(struct{}{}); got != (i < 3) {
			t.Errorf("next window, occurrence %d: got %v, want %v", i, got, i < 3)
		}
	}
	b.Flush()
	if want := []int64{7, 0, 2, 0}; !slices.Equal(reported(), want) {
		t.Errorf("reports: got %v, want %v", reported(), want)
	}
}

// TestBurstWindowEdge: a window lasts Window from its first Allow, to the
// nanosecond.
func TestBurstWindowEdge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := &clock{t: t0}
	b := Burst[string]{Burst: 1, Window: time.Minute, Now: clk.now}
	var got []bool
	for _, at := range []time.Duration{0, time.Second, time.Minute - time.Nanosecond, time.Minute, time.Minute + time.Second, 2*time.Minute - time.Nanosecond, 2 * time.Minute} {
		clk.set(t0.Add(at))
		got = append(got, b.Allow("k"))
	}
	if want := []bool{true, false, false, true, false, false, true}; !slices.Equal(got, want) {
		t.Errorf("passed: got %v, want %v", got, want)
	}
	if held, rest := b.Next(); !maps.Equal(held, map[string]int64{"k": 4}) || rest != 0 {
		t.Errorf("held: got %v and rest %d, want k: 4 and 0", held, rest)
	}
}

// TestBurstReportsWhenTheWindowEnds: with Report set, what was held back
// is reported by itself when the window ends, without a Flush.
func TestBurstReportsWhenTheWindowEnds(t *testing.T) {
	got := make(chan int64, 1)
	b := Burst[struct{}]{Burst: 1, Window: 200 * time.Millisecond, Report: func(held map[struct{}]int64, _ int64) { got <- held[struct{}{}] }}
	start := time.Now()
	for range 5 {
		b.Allow(struct{}{})
	}
	select {
	case n := <-got:
		if n != 4 {
			t.Errorf("report counted %d, want 4", n)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("report after %v, want it at the window's end (200ms)", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report within 10s of a 200ms window's end")
	}
}

// TestBurstKeysAndNext: the held back are counted by key up to Keys keys,
// the rest together; Next returns them and starts a window that passes
// Burst again.
func TestBurstKeysAndNext(t *testing.T) {
	b := Burst[string]{Burst: 2, Keys: 2}
	var passed []string
	for _, k := range []string{"a", "b", "a", "c", "b", "d", "a", "e", "c"} {
		if b.Allow(k) {
			passed = append(passed, k)
		}
	}
	if want := []string{"a", "b"}; !slices.Equal(passed, want) {
		t.Errorf("passed: got %v, want %v", passed, want)
	}
	held, rest := b.Next()
	if want := map[string]int64{"a": 2, "c": 2}; !maps.Equal(held, want) || rest != 3 {
		t.Errorf("Next: got %v and rest %d, want %v and 3 (b, d, e)", held, rest, want)
	}
	var after []bool
	for range 3 {
		after = append(after, b.Allow("z"))
	}
	if want := []bool{true, true, false}; !slices.Equal(after, want) {
		t.Errorf("after Next: got %v, want %v (2 passed, then held)", after, want)
	}
	held, rest = b.Next()
	if want := map[string]int64{"z": 1}; !maps.Equal(held, want) || rest != 0 {
		t.Errorf("second Next: got %v and rest %d, want %v and 0", held, rest, want)
	}
	if held, rest := b.Next(); held != nil || rest != 0 {
		t.Errorf("empty window: got %v and rest %d, want nil and 0", held, rest)
	}
}

// TestBurstConcurrent: whatever the interleaving, exactly Burst pass and
// every other occurrence is counted once, between Next calls racing with
// Allow.
func TestBurstConcurrent(t *testing.T) {
	const workers, each, burst = 8, 1000, 10
	b := Burst[int]{Burst: burst, Keys: 3}
	var mu sync.Mutex
	passed, counted := 0, int64(0)
	take := func() {
		held, rest := b.Next()
		mu.Lock()
		defer mu.Unlock()
		for _, n := range held {
			counted += n
		}
		counted += rest
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := 0
			for i := range each {
				if b.Allow((w + i) % 5) {
					p++
				}
				if w == 0 && i%100 == 0 {
					take()
				}
			}
			mu.Lock()
			passed += p
			mu.Unlock()
		})
	}
	wg.Wait()
	take()
	if int64(passed)+counted != workers*each {
		t.Errorf("got %d passed and %d counted, want them to add up to %d", passed, counted, workers*each)
	}
	if passed < burst || passed > 11*burst {
		t.Errorf("got %d passed over 11 windows of %d, want between %d and %d", passed, burst, burst, 11*burst)
	}
}
