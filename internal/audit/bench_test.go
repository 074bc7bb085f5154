package audit

import (
	"context"
	"testing"
)

// benchEvent is a typical exec event.
func benchEvent() Event {
	e := ev(0, "exec", "gw1/ssh-in:1042/ssh/session:0", "alice", Accept)
	e.Service, e.Target, e.Reason = "ssh-in", "10.0.0.5:22", "command matches an allow pattern"
	e.Detail = map[string]any{"command": "rsync --server -vlogDtpre.iLsfxCIvu . /srv/data", "bytes": int64(123456)}
	return e
}

// BenchmarkLink is the cost the hash chain adds to each event.
func BenchmarkLink(b *testing.B) {
	e := benchEvent()
	var h chainHead
	b.ReportAllocs()
	for b.Loop() {
		x := e
		var err error
		if _, h, err = link(h, "gw1", &x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteBatch writes batches of 512 events (the queue's largest)
// to real stores: the time per op is per batch.
func BenchmarkWriteBatch(b *testing.B) {
	batch := make([]Event, queueMaxBatch)
	for i := range batch {
		batch[i] = benchEvent()
	}
	for _, sink := range []string{"sqlite", "jsonl:events.jsonl"} {
		b.Run(sink, func(b *testing.B) {
			s, err := Open(context.Background(), sink, b.TempDir(), "gw1")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.(BatchWriter).WriteBatch(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkMarshal is one encoding of the event, which every store does
// anyway: the yardstick for BenchmarkLink.
func BenchmarkMarshal(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := toRow(e); err != nil {
			b.Fatal(err)
		}
	}
}
