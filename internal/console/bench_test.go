package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// BenchmarkSessionsList answers GET /api/v1/sessions (the first page of
// 50, and a page filtered by user) from an SQLite store holding 100,000
// ended sessions: the target is well under 200 ms a request.
func BenchmarkSessionsList(b *testing.B) {
	const sessions = 100_000
	state := b.TempDir()
	ctx := context.Background()
	st, err := audit.OpenSQLite(ctx, filepath.Join(state, "audit.db"), "gw1")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	batch := make([]audit.Event, 0, 2000)
	for i := range sessions {
		id := fmt.Sprintf("gw1/ssh-in:%d", i+1)
		start := t0.Add(time.Duration(i) * time.Second)
		user := fmt.Sprintf("user%d", i%100)
		batch = append(batch,
			audit.Event{Time: start, Type: audit.TypeSessionStart, SessionID: id, User: user, Verdict: audit.Accept, Target: "db:22"},
			audit.Event{Time: start.Add(time.Minute), Type: audit.TypeSessionEnd, SessionID: id, User: user, Detail: map[string]any{"exit_status": 0}})
		if len(batch) == cap(batch) || i == sessions-1 {
			if err := st.(audit.BatchWriter).WriteBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	srv, err := New(Params{Gateway: &fakeGateway{}, Store: st, Audit: st, StateDir: state, RecordDir: filepath.Join(state, "recordings"),
		Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := srv.Credentials().NewToken("bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"", "?user=user7", "?host=db&since=" + t0.Add(50_000*time.Second).Format(time.RFC3339)} {
		b.Run("query="+q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/api/v1/sessions"+q, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				srv.Handler().ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("got %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
