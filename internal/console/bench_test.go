package console

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
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

// flushDiscard is an http.Flusher that drops what it is given.
type flushDiscard struct{}

func (flushDiscard) Flush() {}

// BenchmarkLiveView is what one live viewer costs the console for each
// byte a session prints: following the recording file (gunzip), reading
// its lines and writing them out as server-sent events, in the steady
// state after the first reset. The session's own data path does nothing
// for a viewer (the recorder writes the file whether or not anyone
// watches), so this is all a viewer adds: at 10 MB/s it takes
// 10 MB/s ÷ this throughput of one core.
func BenchmarkLiveView(b *testing.B) {
	f, err := record.Create(b.TempDir(), record.FileHeader{SessionID: "gw1/s:1"}, record.Params{})
	if err != nil {
		b.Fatal(err)
	}
	c := f.Channel(record.Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true, Width: 80, Height: 24})
	// Log-like lines in 32 KiB writes, as record's BenchmarkChannelOutput.
	p := make([]byte, 32<<10)
	rand.Read(p)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789    :.-"
	for i := range p {
		p[i] = alphabet[int(p[i])%len(alphabet)]
		if i%80 == 79 {
			p[i] = '\n'
		}
	}
	const total = 16 << 20
	for range total / len(p) {
		c.Output(p)
	}
	c.Close()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(f.Path())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		// The file grows by a poll's worth at a time (250 ms of 10 MB/s
		// of output, compressed).
		in := &growing{data: data, step: len(data) * (10 << 20) / 4 / total}
		var sent countWriter
		lw := &liveWriter{w: bufio.NewWriter(&sent), flusher: flushDiscard{}, channel: -1, cols: 80, rows: 24}
		tl := &tail{ctx: context.Background(), f: in, live: in.grow, caughtUp: lw.idle}
		if err := follow(tl, func(l []byte) bool { lw.line(l, ""); return true }); err != nil {
			b.Fatal(err)
		}
		lw.idle()
		if sent < total {
			b.Fatalf("sent %d bytes of events, want at least the %d of output", sent, total)
		}
	}
	// The process's CPU time (GC included), not the wall clock, which a
	// loaded machine stretches: what share of one core a viewer of a
	// session printing 10 MB/s takes.
	cpu := processCPU(b) - cpu0
	b.ReportMetric(100*cpu.Seconds()/(float64(b.N)*total/10e6), "%core@10MB/s")
}

// processCPU is the user and system time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// growing is a file being written: Read reports its end at limit, which
// grow moves on by step.
type growing struct {
	data       []byte
	off, limit int
	step       int
}

func (g *growing) Read(p []byte) (int, error) {
	if g.off >= g.limit {
		return 0, io.EOF
	}
	n := copy(p, g.data[g.off:g.limit])
	g.off += n
	return n, nil
}

// grow lets the file have step more bytes; false once it has all.
func (g *growing) grow() bool {
	g.limit = min(g.limit+g.step, len(g.data))
	return g.limit < len(g.data)
}

// countWriter counts what it is written.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
