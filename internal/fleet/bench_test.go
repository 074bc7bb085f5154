package fleet

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"
)

// BenchmarkSync is the registry's cost of one session starting and one
// ending on a node with 1,000 live sessions: the diff of the live list and
// the store round trip that publishes it (docs/fleet.md, sizing).
func BenchmarkSync(b *testing.B) {
	dsn := pgtest.Schema(b)
	m, err := Join(context.Background(), dsn, Node{Name: "gw-bench"}, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Leave(context.Background())
	const live = 1000
	sessions := make([]Session, 0, live+b.N+1)
	for i := range live {
		sessions = append(sessions, Session{ID: "gw-bench/ssh:" + strconv.Itoa(i), User: "u", Start: time.Now()})
	}
	next := live
	p := Params{Lease: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Live: func() []Session {
		return sessions[next-live : next]
	}}
	ctx := context.Background()
	m.sync(ctx, p)
	b.ReportAllocs()
	for b.Loop() {
		sessions = append(sessions, Session{ID: "gw-bench/ssh:" + strconv.Itoa(next), User: "u", Start: time.Now()})
		next++
		m.sync(ctx, p)
	}
	if len(m.synced) != live {
		b.Fatalf("got %d sessions published, want %d", len(m.synced), live)
	}
}

// BenchmarkStepsAccept is the store's cost of accepting one TOTP code in a
// fleet: one upsert of the user's row, among 1,000 users (docs/fleet.md).
func BenchmarkStepsAccept(b *testing.B) {
	dsn := pgtest.Schema(b)
	ctx := context.Background()
	m, err := Join(ctx, dsn, Node{Name: "gw-bench"}, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Leave(ctx)
	s := m.Steps()
	expires := time.Now().Add(time.Minute)
	step := uint64(1)
	for i := range 1000 {
		if _, err := s.Accept(ctx, "user"+strconv.Itoa(i), step, expires); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		step++
		if ok, err := s.Accept(ctx, "user"+strconv.Itoa(int(step%1000)), step, expires); !ok || err != nil {
			b.Fatalf("Accept: got %v, %v, want true, nil", ok, err)
		}
	}
}
