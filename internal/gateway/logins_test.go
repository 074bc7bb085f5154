package gateway

import (
	"sync"
	"testing"
	"time"
)

// TestThinner: burst lines pass in each window, the rest are counted and
// reported once by flush; a new window passes burst lines again.
func TestThinner(t *testing.T) {
	var mu sync.Mutex
	var reports []int
	th := &thinner{burst: 3, window: time.Hour, summary: func(held int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, held)
	}}
	t0 := time.Now()
	passed := 0
	for i := range 10 {
		if th.allow(t0.Add(time.Duration(i) * time.Second)) {
			passed++
		}
	}
	if passed != 3 {
		t.Errorf("first window: %d lines passed, want 3", passed)
	}
	th.flush()
	th.flush() // nothing more held: no second report
	if th.allow(t0.Add(2*time.Hour)) != true {
		t.Error("a new window refused its first line")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || reports[0] != 7 {
		t.Errorf("reports %v, want one counting 7", reports)
	}
}

// TestThinnerReportsWhenTheWindowEnds: the summary comes by itself when
// the window ends, without a flush.
func TestThinnerReportsWhenTheWindowEnds(t *testing.T) {
	got := make(chan int, 1)
	th := &thinner{burst: 1, window: 200 * time.Millisecond, summary: func(held int, _ time.Duration) { got <- held }}
	now := time.Now()
	for range 5 {
		th.allow(now)
	}
	select {
	case n := <-got:
		if n != 4 {
			t.Errorf("summary counted %d, want 4", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no summary within 10s of a 200ms window's end")
	}
}
