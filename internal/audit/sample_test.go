package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// memSink keeps the events written to it.
type memSink struct {
	mu     sync.Mutex
	events []Event
}

func (m *memSink) Write(_ context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	return nil
}

func (m *memSink) all() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

func rejected(e Event) bool { return e.Verdict == Reject }

// TestSamplerSummarises: past the burst, selected events are counted by
// key and summarised; the counts add up; other events all pass.
func TestSamplerSummarises(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	next := &memSink{}
	s := NewSampler(next, SamplerParams{Sampled: rejected, Interval: time.Hour, Burst: 5, Keys: 2})
	addrs := []string{"10.0.0.%d:4000", "10.0.1.%d:4000", "[2001:db8::%d]:4000", "[2001:db8:0:1::%d]:22"}
	for i := range 1000 {
		e := Event{Time: time.Now(), Type: "connection", Service: "ssh-in", Verdict: Reject, Rule: "services[ssh-in].client_zones",
			ClientZone: "outside", ClientAddr: fmt.Sprintf(addrs[i%len(addrs)], i%250)}
		if err := s.Write(ctx, e); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
		if i%100 == 0 {
			if err := s.Write(ctx, Event{Type: "connection", Verdict: Accept}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := len(next.all()); got != 5+10 {
		t.Fatalf("passed before the interval ends: got %d, want 5 refusals and 10 accepts", got)
	}
	s.Close()
	var one, summaries int
	var counted int64
	prefixes := map[string]bool{}
	for _, e := range next.all() {
		switch {
		case e.Type == TypeSampled:
			summaries++
			n, _ := e.Detail["count"].(int64)
			counted += n
			prefixes[e.ClientAddr] = true
			if e.Detail["type"] != "connection" && e.Detail["type"] != "*" {
				t.Errorf("summary type: got %v", e.Detail["type"])
			}
		case e.Verdict == Reject:
			one++
		}
	}
	if got := s.Summarised(); got != 995 {
		t.Errorf("Summarised: got %d, want 995", got)
	}
	if one != 5 || summaries != 3 || counted != 995 {
		t.Errorf("got %d refusals one by one, %d summaries counting %d, want 5, 3 (2 keys and the rest), 995", one, summaries, counted)
	}
	for _, p := range []string{"10.0.1.0/24", "2001:db8::/64", ""} {
		if !prefixes[p] {
			t.Errorf("summaries: got prefixes %v, want %q among them", prefixes, p)
		}
	}
	// After Close every event passes.
	if err := s.Write(ctx, Event{Verdict: Reject}); err != nil || len(next.all()) != 5+10+3+1 {
		t.Errorf("Write after Close: got %v and %d events, want it passed", err, len(next.all()))
	}
}

// TestSamplerBound: a flood at full speed over several intervals costs at
// most Burst + Keys + 1 writes per interval.
func TestSamplerBound(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx := context.Background()
	next := &memSink{}
	const interval, burst, keys = 100 * time.Millisecond, 10, 4
	s := NewSampler(next, SamplerParams{Sampled: rejected, Interval: interval, Burst: burst, Keys: keys})
	start := time.Now()
	var sent int
	for time.Since(start) < 5*interval {
		_ = s.Write(ctx, Event{Type: "auth", Verdict: Reject, ClientAddr: fmt.Sprintf("192.0.%d.1:1", sent%50)})
		sent++
	}
	s.Close()
	elapsed := time.Since(start)
	intervals := int(elapsed/interval) + 2
	got := next.all()
	if max := intervals * (burst + keys + 1); len(got) > max {
		t.Errorf("writes: got %d for %d events in %v, want at most %d", len(got), sent, elapsed, max)
	}
	var total int64
	for _, e := range got {
		if e.Type == TypeSampled {
			total += e.Detail["count"].(int64)
		} else {
			total++
		}
	}
	if total != int64(sent) {
		t.Errorf("events accounted: got %d, want %d", total, sent)
	}
	t.Logf("%d events in %v cost %d writes", sent, elapsed.Round(time.Millisecond), len(got))
}

func TestAddrPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.77:22":         "192.0.2.0/24",
		"192.0.2.77":            "192.0.2.0/24",
		"[::ffff:192.0.2.9]:1":  "192.0.2.0/24",
		"[2001:db8:1:2:3::]:22": "2001:db8:1:2::/64",
		"":                      "",
		"unix:/run/x":           "",
	} {
		if got := addrPrefix(in); got != want {
			t.Errorf("addrPrefix(%q): got %q, want %q", in, got, want)
		}
	}
}
