package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"
)

func TestSQLiteStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := Open(context.Background(), "sqlite", t.TempDir(), "gw1")
		if err != nil {
			t.Fatalf("Open: got %v, want nil", err)
		}
		return s
	})
}

func TestJSONLStore(t *testing.T) {
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := Open(context.Background(), "jsonl:audit/events.jsonl", t.TempDir(), "gw1")
		if err != nil {
			t.Fatalf("Open: got %v, want nil", err)
		}
		return s
	})
}

func TestPostgresStore(t *testing.T) {
	pgtest.DSN(t) // skipped, or failed, before the suite's subtests
	runStoreSuite(t, func(t *testing.T) Store {
		s, err := Open(context.Background(), pgtest.Schema(t), t.TempDir(), "gw1")
		if err != nil {
			t.Fatalf("Open: got %v, want nil", err)
		}
		return s
	})
}

// TestReopen checks that data and schema survive a restart and that the
// migrations are not applied twice.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	sinks := []struct {
		name string
		sink func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "sqlite" }},
		{"jsonl", func(*testing.T) string { return "jsonl:events.jsonl" }},
		{"postgres", func(t *testing.T) string { return pgtest.Schema(t) }},
	}
	for _, tt := range sinks {
		t.Run(tt.name, func(t *testing.T) {
			dir, sink := t.TempDir(), tt.sink(t)
			e1, e2 := ev(0, "auth", "gw1/ssh-in:1", "alice", Accept), ev(1, "auth", "gw1/ssh-in:2", "bob", Reject)
			for i, e := range []Event{e1, e2} {
				s, err := Open(ctx, sink, dir, "gw1")
				if err != nil {
					t.Fatalf("Open: got %v, want nil", err)
				}
				if err := s.Write(ctx, e); err != nil {
					t.Fatalf("Write: got %v, want nil", err)
				}
				// Session ids go on where the last run left them.
				if got, err := NewInstances(s, "fresh").Next(ctx); err != nil || got != uint64(1+i*InstanceBlock) {
					t.Fatalf("run %d: Next: got %d, %v, want %d", i, got, err, 1+i*InstanceBlock)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("Close: got %v, want nil", err)
				}
			}
			s, err := Open(ctx, sink, dir, "gw1")
			if err != nil {
				t.Fatalf("Open: got %v, want nil", err)
			}
			defer s.Close()
			got, err := s.Query(ctx, Filter{Type: "auth"})
			if err != nil {
				t.Fatalf("Query: got %v, want nil", err)
			}
			sameEvents(t, got, []Event{e1, e2})
			// One chain across the runs: 2 events and 2 reservations.
			v, err := Verify(ctx, s, nil)
			if err != nil || v.Break != nil || v.Events != 4 || len(v.Heads) != 1 || v.Heads[0].Seq != 4 {
				t.Fatalf("Verify: got %+v, %v, want 4 events in one chain", v, err)
			}
		})
	}
}

func TestSQLiteNewerSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, "sqlite", dir, "gw1")
	if err != nil {
		t.Fatalf("Open: got %v, want nil", err)
	}
	s.Close()
	db, err := OpenSQLite(ctx, filepath.Join(dir, "audit.db"), "gw1")
	if err != nil {
		t.Fatalf("OpenSQLite: got %v, want nil", err)
	}
	if _, err := db.(*sqliteStore).w.ExecContext(ctx, "UPDATE schema_version SET version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, "sqlite", dir, "gw1")
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Errorf("Open on a newer schema: got %v, want an error naming version 99", err)
	}
}

func TestJSONLTornLine(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.jsonl")
	e1, e2 := ev(0, "auth", "gw1/ssh-in:1", "alice", Accept), ev(1, "auth", "gw1/ssh-in:2", "bob", Reject)
	s, err := OpenJSONL(path, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, e1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash in the middle of the next write.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2025-03-04T10:00:00Z","type":"au`)
	f.Close()
	s, err = OpenJSONL(path, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Write(ctx, e2); err != nil {
		t.Fatal(err)
	}
	got, err := s.Query(ctx, Filter{})
	if err != nil {
		t.Fatalf("Query: got %v, want nil", err)
	}
	sameEvents(t, got, []Event{e1, e2})
}

func TestOpenUnknownSink(t *testing.T) {
	for _, sink := range []string{"", "mysql://x", "jsonl:", "SQLITE"} {
		if s, err := Open(context.Background(), sink, t.TempDir(), "gw1"); err == nil {
			s.Close()
			t.Errorf("Open(%q): got nil error, want one", sink)
		} else if !strings.HasPrefix(err.Error(), "audit: ") {
			t.Errorf("Open(%q): got %q, want an \"audit: \" prefix", sink, err)
		}
	}
}

func FuzzScanJSONL(f *testing.F) {
	f.Add([]byte(`{"time":"2025-03-04T10:00:00Z","type":"auth","session_id":"gw1/ssh-in:1","user":"a","client_addr":"","client_zone":""}` + "\n"))
	f.Add([]byte("null\n{}\n[1]\n{\"type\":\n"))
	f.Add([]byte("{\"detail\":{\"a\":[1,2,{}]}}\n\n\r\n{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := scanJSONL(context.Background(), strings.NewReader(string(data)), func(e Event) {
			if _, err := toRow(e); err != nil {
				t.Errorf("decoded event does not encode: %v", err)
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("scanJSONL on a reader without errors: got %v, want nil", err)
		}
	})
}

// TestPostgresShared opens one PostgreSQL store from two gateways, as two
// gateway processes sharing a database do, and checks that each keeps its
// own chain and counters and ends only its own crashed sessions.
func TestPostgresShared(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	open := func(gw string) Store {
		s, err := Open(ctx, dsn, "", gw)
		if err != nil {
			t.Fatalf("Open %s: %v", gw, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	gw1, gw2, gw1again := open("gw1"), open("gw2"), open("gw1")
	// Interleaved writes, concurrent for gw1 from two handles.
	done := make(chan error, 2)
	for _, s := range []Store{gw1, gw1again} {
		go func() {
			for i := range 20 {
				if err := s.Write(ctx, ev(i, "exec", "gw1/ssh-in:1/ssh/session:0", "alice", Accept)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := range 10 {
		if err := gw2.Write(ctx, ev(i, TypeSessionStart, "gw2/ssh-in:"+strconv.Itoa(i+1), "bob", Accept)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("concurrent Write: %v", err)
		}
	}
	if err := gw1.Write(ctx, ev(30, TypeSessionStart, "gw1/ssh-in:1", "alice", Accept)); err != nil {
		t.Fatal(err)
	}
	if a, b := mustReserve(t, gw1, "ssh-in"), mustReserve(t, gw2, "ssh-in"); a != 2 || b != 11 {
		t.Errorf("first instances: got gw1 %d, gw2 %d, want 2 and 11", a, b)
	}
	if a := mustReserve(t, gw1again, "ssh-in"); a != 2+InstanceBlock {
		t.Errorf("gw1 from its second handle: got %d, want %d", a, 2+InstanceBlock)
	}
	if ended, err := EndOrphans(ctx, gw1, "gw1", time.Now()); err != nil || len(ended) != 1 || ended[0] != "gw1/ssh-in:1" {
		t.Errorf("EndOrphans gw1: got %v, %v, want only gw1/ssh-in:1", ended, err)
	}
	v, err := Verify(ctx, gw2, nil)
	if err != nil || v.Break != nil || len(v.Heads) != 2 || v.Heads[0].Seq != 44 || v.Heads[1].Seq != 11 {
		t.Fatalf("Verify: got %+v, %v, want two chains, gw1 at seq 44, gw2 at 11", v, err)
	}
}

func mustReserve(t *testing.T, s Store, service string) uint64 {
	t.Helper()
	n, err := s.ReserveInstances(context.Background(), service, InstanceBlock)
	if err != nil {
		t.Fatalf("ReserveInstances: %v", err)
	}
	return n
}
