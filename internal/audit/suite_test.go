package audit

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// t0 is the base time of the suite's events.
var t0 = time.Date(2025, 3, 4, 10, 0, 0, 123456789, time.UTC)

func ev(sec int, typ, sid, user string, v Verdict) Event {
	return Event{
		Time: t0.Add(time.Duration(sec) * time.Second), Type: typ, SessionID: sid, User: user,
		ClientAddr: "127.0.0.1:5000", ClientZone: "office", Verdict: v, Rule: "r" + typ,
	}
}

// normal is e as it reads back from any store: its JSON decoded again,
// without the chain link the store added (see the Chain test).
func normal(t *testing.T, e Event) string {
	t.Helper()
	e.Chain = nil
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func normals(t *testing.T, es []Event) []string {
	t.Helper()
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = normal(t, e)
	}
	return out
}

func sameEvents(t *testing.T, got, want []Event) {
	t.Helper()
	g, w := normals(t, got), normals(t, want)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Errorf("got %d events:\n%s\nwant %d events:\n%s", len(g), strings.Join(g, "\n"), len(w), strings.Join(w, "\n"))
	}
}

// runStoreSuite checks the Store contract; open returns a fresh, empty store
// that the suite closes.
func runStoreSuite(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	corpus := []Event{
		ev(0, TypeSessionStart, "gw1/ssh-in:1", "alice", Accept),
		ev(1, "channel.open", "gw1/ssh-in:1/ssh/session:0", "alice", Accept),
		ev(2, "exec", "gw1/ssh-in:1/ssh/session:0", "alice", Reject),
		ev(3, TypeSessionStart, "gw1/ssh-in:10", "bob", Accept),
		ev(4, "auth", "gw1/ssh-in:2", "mallory", Reject),
		ev(5, TypeSessionEnd, "gw1/ssh-in:1", "alice", ""),
	}
	corpus[2].Detail = map[string]any{"command": "rm -rf /", "n": 3}

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		for _, e := range corpus {
			if err := s.Write(ctx, e); err != nil {
				t.Fatalf("Write: got %v, want nil", err)
			}
		}
		got, err := s.Query(ctx, Filter{})
		if err != nil {
			t.Fatalf("Query: got %v, want nil", err)
		}
		sameEvents(t, got, corpus)
	})

	t.Run("Filter", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		// Written out of time order: queries still return time order.
		if err := s.(BatchWriter).WriteBatch(ctx, append([]Event{corpus[5]}, corpus[:5]...)); err != nil {
			t.Fatalf("WriteBatch: got %v, want nil", err)
		}
		pick := func(idx ...int) []Event {
			var out []Event
			for _, i := range idx {
				out = append(out, corpus[i])
			}
			return out
		}
		tests := []struct {
			name string
			f    Filter
			want []Event
		}{
			{"all", Filter{}, pick(0, 1, 2, 3, 4, 5)},
			{"since inclusive", Filter{Since: corpus[2].Time}, pick(2, 3, 4, 5)},
			{"until exclusive", Filter{Until: corpus[2].Time}, pick(0, 1)},
			{"window", Filter{Since: corpus[1].Time, Until: corpus[4].Time}, pick(1, 2, 3)},
			{"user", Filter{User: "alice"}, pick(0, 1, 2, 5)},
			{"user unknown", Filter{User: "eve"}, nil},
			{"master prefix includes stacked", Filter{SessionPrefix: "gw1/ssh-in:1"}, pick(0, 1, 2, 3, 5)},
			{"stacked only", Filter{SessionPrefix: "gw1/ssh-in:1/"}, pick(1, 2)},
			{"prefix is not a pattern", Filter{SessionPrefix: "gw1/ssh-in:_"}, nil},
			{"prefix is not a pattern 2", Filter{SessionPrefix: "gw1/ssh%"}, nil},
			{"type", Filter{Type: TypeSessionStart}, pick(0, 3)},
			{"type prefix", Filter{TypePrefix: "session."}, pick(0, 3, 5)},
			{"type prefix is not a pattern", Filter{TypePrefix: "session_"}, nil},
			{"verdict", Filter{Verdict: Reject}, pick(2, 4)},
			{"limit keeps newest", Filter{Limit: 2}, pick(4, 5)},
			{"limit with filter", Filter{User: "alice", Limit: 3}, pick(1, 2, 5)},
			{"limit above count", Filter{Type: "auth", Limit: 10}, pick(4)},
			{"combined", Filter{User: "alice", Verdict: Accept, Since: corpus[1].Time}, pick(1)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Query(ctx, tt.f)
				if err != nil {
					t.Fatalf("Query: got %v, want nil", err)
				}
				sameEvents(t, got, tt.want)
			})
		}
	})

	t.Run("AwkwardStrings", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		weird := "a\x00b\xff\xfec'\"\\%_\u2603"
		e := ev(0, "auth", "gw1/ssh-in:7", weird, Reject)
		e.Reason = weird
		e.Detail = map[string]any{"env": weird}
		if err := s.Write(ctx, e); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
		if err := s.Write(ctx, ev(1, "auth", "gw1/ssh-in:8", "a", Reject)); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
		got, err := s.Query(ctx, Filter{User: weird})
		if err != nil {
			t.Fatalf("Query: got %v, want nil", err)
		}
		sameEvents(t, got, []Event{e})
	})

	t.Run("Sessions", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		start1 := ev(0, TypeSessionStart, "gw1/ssh-in:1", "alice", Accept)
		start1.Detail = map[string]any{DetailTarget: "10.0.0.5:22"}
		stacked := ev(1, TypeSessionStart, "gw1/ssh-in:1/ssh/session:0", "alice", Accept)
		start2 := ev(2, TypeSessionStart, "gw1/ssh-in:2", "bob", Accept)
		start2.Target = "db:22"
		end1 := ev(10, TypeSessionEnd, "gw1/ssh-in:1", "alice", "")
		end1.Detail = map[string]any{DetailExitStatus: 3, DetailBytesIn: int64(100), DetailBytesOut: 2000, DetailRecording: "/state/rec/x.cast"}
		start3 := ev(20, TypeSessionStart, "gw1/ssh-in:3", "alice", Accept)
		for _, e := range []Event{start1, stacked, start2, end1, start3} {
			if err := s.Write(ctx, e); err != nil {
				t.Fatalf("Write: got %v, want nil", err)
			}
		}
		three := 3
		s1 := SessionSummary{ID: "gw1/ssh-in:1", User: "alice", Client: "127.0.0.1:5000", Target: "10.0.0.5:22",
			Start: start1.Time, End: end1.Time, ExitStatus: &three, BytesIn: 100, BytesOut: 2000, Recording: "/state/rec/x.cast"}
		s2 := SessionSummary{ID: "gw1/ssh-in:2", User: "bob", Client: "127.0.0.1:5000", Target: "db:22", Start: start2.Time}
		s3 := SessionSummary{ID: "gw1/ssh-in:3", User: "alice", Client: "127.0.0.1:5000", Start: start3.Time}
		tests := []struct {
			name string
			f    SessionFilter
			want []SessionSummary
		}{
			{"all", SessionFilter{}, []SessionSummary{s1, s2, s3}},
			{"user", SessionFilter{User: "alice"}, []SessionSummary{s1, s3}},
			{"prefix", SessionFilter{SessionPrefix: "gw1/ssh-in:2"}, []SessionSummary{s2}},
			{"since", SessionFilter{Since: start2.Time}, []SessionSummary{s2, s3}},
			{"until", SessionFilter{Until: start2.Time}, []SessionSummary{s1}},
			{"limit newest", SessionFilter{Limit: 1}, []SessionSummary{s3}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Sessions(ctx, tt.f)
				if err != nil {
					t.Fatalf("Sessions: got %v, want nil", err)
				}
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tt.want)
				if len(tt.want) == 0 {
					w = []byte("null")
				}
				if string(g) != string(w) {
					t.Errorf("got %s, want %s", g, w)
				}
			})
		}
	})

	t.Run("Chain", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		// Singles and a batch, with Detail values whose JSON changes on a
		// round trip (int64 beyond 2^53, a struct) and awkward strings.
		big := ev(0, "exec", "gw1/ssh-in:1/ssh/session:0", "a\x00\xff\u2028<&>", Accept)
		big.Detail = map[string]any{"bytes": int64(1<<60 + 1), "f": 0.1, "s": struct {
			Z string `json:"z"`
			A int    `json:"a"`
		}{"z", 1}, "l": []any{1, "x", nil}}
		if err := s.Write(ctx, big); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
		if err := s.(BatchWriter).WriteBatch(ctx, corpus); err != nil {
			t.Fatalf("WriteBatch: got %v, want nil", err)
		}
		if err := s.Write(ctx, corpus[0]); err != nil {
			t.Fatalf("Write: got %v, want nil", err)
		}
		n := len(corpus) + 2
		got, err := s.Query(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		seqs := map[uint64]bool{}
		for _, e := range got {
			if e.Chain == nil || e.Chain.Gateway != "gw1" || len(e.Chain.Hash) != 64 {
				t.Fatalf("event %s: got chain %+v, want a gw1 link", e.Type, e.Chain)
			}
			seqs[e.Chain.Seq] = true
		}
		for i := 1; i <= n; i++ {
			if !seqs[uint64(i)] {
				t.Errorf("seq %d: missing; got %v", i, seqs)
			}
		}
		v, err := Verify(ctx, s, nil)
		if err != nil || v.Break != nil {
			t.Fatalf("Verify: got %+v, %v, want no break", v, err)
		}
		if v.Events != n || len(v.Heads) != 1 || v.Heads[0].Seq != uint64(n) {
			t.Errorf("Verify: got %d events, heads %+v, want %d events and gw1's head at seq %d", v.Events, v.Heads, n, n)
		}
		// The kept head verifies; a forged one does not.
		if v2, err := Verify(ctx, s, &v.Heads[0]); err != nil || v2.Break != nil {
			t.Errorf("Verify with the kept head: got %+v, %v, want no break", v2, err)
		}
		forged := v.Heads[0]
		forged.Hash = strings.Repeat("0", 64)
		if v2, err := Verify(ctx, s, &forged); err != nil || v2.Break == nil || !strings.Contains(v2.Break.Problem, "rewritten") {
			t.Errorf("Verify with a forged head: got %+v, %v, want a break saying rewritten", v2, err)
		}
		later := v.Heads[0]
		later.Seq += 5
		if v2, err := Verify(ctx, s, &later); err != nil || v2.Break == nil || !strings.Contains(v2.Break.Problem, "truncated") {
			t.Errorf("Verify with a head beyond the end: got %+v, %v, want a break saying truncated", v2, err)
		}
	})

	t.Run("Instances", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		// Events of a store that kept no counter yet: numbering goes on
		// above them, per gateway and service.
		for _, id := range []string{"gw1/ssh-in:41/ssh/session:0", "gw1/ssh-in:7", "gw1/other:3", "gw2/ssh-in:99", "gw1/ssh-in:x"} {
			if err := s.Write(ctx, ev(0, "auth", id, "alice", Accept)); err != nil {
				t.Fatal(err)
			}
		}
		steps := []struct {
			service string
			n, want uint64
		}{
			{"ssh-in", 3, 42}, {"ssh-in", 100, 45}, {"other", 1, 4}, {"new", 2, 1}, {"ssh-in", 1, 145},
		}
		for _, st := range steps {
			got, err := s.ReserveInstances(ctx, st.service, st.n)
			if err != nil || got != st.want {
				t.Fatalf("ReserveInstances(%s, %d): got %d, %v, want %d", st.service, st.n, got, err, st.want)
			}
		}
		if _, err := s.ReserveInstances(ctx, "ssh-in", 0); err == nil {
			t.Error("ReserveInstances(0): got nil error, want one")
		}
		res, err := s.Query(ctx, Filter{Type: TypeInstances})
		if err != nil || len(res) != len(steps) || res[0].Service != "ssh-in" {
			t.Fatalf("reservation events: got %+v, %v, want %d", res, err, len(steps))
		}
		a := NewInstances(s, "svc")
		for want := uint64(1); want <= InstanceBlock+1; want++ {
			if got, err := a.Next(ctx); err != nil || got != want {
				t.Fatalf("Next: got %d, %v, want %d", got, err, want)
			}
		}
		if v, err := Verify(ctx, s, nil); err != nil || v.Break != nil {
			t.Fatalf("Verify: got %+v, %v, want no break", v, err)
		}
	})

	t.Run("EndOrphans", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		ended := ev(0, TypeSessionStart, "gw1/ssh-in:1", "alice", Accept)
		orphan := ev(1, TypeSessionStart, "gw1/ssh-in:2", "bob", Accept)
		orphan.Service = "ssh-in"
		stacked := ev(30, "exec", "gw1/ssh-in:2/ssh/session:0", "bob", Accept)
		similar := ev(40, "auth", "gw1/ssh-in:20", "eve", Reject) // not part of :2
		other := ev(2, TypeSessionStart, "gw2/ssh-in:2", "carol", Accept)
		prefixed := ev(3, TypeSessionStart, "gw10/ssh-in:5", "dave", Accept)
		end := ev(5, TypeSessionEnd, "gw1/ssh-in:1", "alice", "")
		for _, e := range []Event{ended, orphan, stacked, similar, other, prefixed, end} {
			if err := s.Write(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		now := t0.Add(time.Hour)
		got, err := EndOrphans(ctx, s, "gw1", now)
		if err != nil || len(got) != 1 || got[0] != "gw1/ssh-in:2" {
			t.Fatalf("EndOrphans: got %v, %v, want [gw1/ssh-in:2]", got, err)
		}
		sums, err := s.Sessions(ctx, SessionFilter{SessionPrefix: "gw1/ssh-in:2"})
		if err != nil || len(sums) != 1 || !sums[0].End.Equal(stacked.Time) {
			t.Fatalf("Sessions: got %+v, %v, want gw1/ssh-in:2 ended at its last event %v", sums, err, stacked.Time)
		}
		ends, err := s.Query(ctx, Filter{SessionPrefix: "gw1/ssh-in:2", Type: TypeSessionEnd})
		if err != nil || len(ends) != 1 || ends[0].Reason != ReasonCrashed || ends[0].User != "bob" || ends[0].Service != "ssh-in" ||
			ends[0].Detail[DetailFoundOpen] != now.Format(time.RFC3339Nano) {
			t.Fatalf("session.end: got %+v, %v, want one with the crash reason", ends, err)
		}
		// Other gateways' sessions are theirs to end; a second run ends nothing.
		for _, gw := range []string{"gw1", "gw1"} {
			if got, err := EndOrphans(ctx, s, gw, now); err != nil || len(got) != 0 {
				t.Errorf("EndOrphans again: got %v, %v, want none", got, err)
			}
		}
		all, _ := s.Sessions(ctx, SessionFilter{})
		for _, x := range all {
			if strings.HasPrefix(x.ID, "gw2/") || strings.HasPrefix(x.ID, "gw10/") {
				if !x.End.IsZero() {
					t.Errorf("%s: got ended, want left open (another gateway's)", x.ID)
				}
			}
		}
	})

	t.Run("Closed", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: got %v, want nil", err)
		}
		if err := s.Write(ctx, corpus[0]); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close: got %v, want ErrClosed", err)
		}
		if _, err := s.Query(ctx, Filter{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Query after Close: got %v, want ErrClosed", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: got %v, want ErrClosed", err)
		}
	})

	t.Run("Queue", func(t *testing.T) {
		s := open(t)
		defer s.Close()
		const n = 1000
		q := NewQueue(keepOpen{s}, QueueParams{Size: n})
		var want []Event
		for i := range n {
			e := ev(i, "exec", "gw1/ssh-in:1/ssh/session:0", "alice", Accept)
			want = append(want, e)
			if err := q.Write(ctx, e); err != nil {
				t.Fatalf("Write %d: got %v, want nil", i, err)
			}
		}
		if err := q.Close(ctx); err != nil {
			t.Fatalf("Close: got %v, want nil", err)
		}
		if got := q.Dropped(); got != 0 {
			t.Errorf("Dropped: got %d, want 0", got)
		}
		got, err := s.Query(ctx, Filter{})
		if err != nil {
			t.Fatalf("Query: got %v, want nil", err)
		}
		sameEvents(t, got, want)
	})
}

// keepOpen lets a test query a store after the Queue that wrote to it closed.
type keepOpen struct{ Store }

func (keepOpen) Close() error { return nil }

func (k keepOpen) WriteBatch(ctx context.Context, events []Event) error {
	return k.Store.(BatchWriter).WriteBatch(ctx, events)
}
