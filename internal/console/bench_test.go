package console

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
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

// logLines is 32 KiB of log-like lines, as record's
// BenchmarkChannelOutput writes.
func logLines() []byte {
	p := make([]byte, 32<<10)
	rand.Read(p)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789    :.-"
	for i := range p {
		p[i] = alphabet[int(p[i])%len(alphabet)]
		if i%80 == 79 {
			p[i] = '\n'
		}
	}
	return p
}

// liveTotal is the output each benchmark iteration records.
const liveTotal = 16 << 20

// BenchmarkLiveView is what one live viewer costs for each byte a
// session prints, in the steady state after the first reset: the lines
// the recorder hands its Follower, read and written out as server-sent
// events in batches of liveBatch (50 ms of 10 MB/s). At 10 MB/s it takes
// 10 MB/s ÷ this throughput of one core; %core@10MB/s says so directly.
func BenchmarkLiveView(b *testing.B) {
	f, err := record.Create(b.TempDir(), record.FileHeader{SessionID: "gw1/s:1"}, record.Params{})
	if err != nil {
		b.Fatal(err)
	}
	fl, _ := f.Follow(1 << 30)
	c := f.Channel(record.Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true, Width: 80, Height: 24})
	p := logLines()
	for range liveTotal / len(p) {
		c.Output(p)
	}
	c.Close()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	lines, _ := fl.Take()
	batch := int(10e6 * liveBatch.Seconds()) // bytes of output a batch holds
	b.SetBytes(liveTotal)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		var sent countWriter
		lw := &liveWriter{w: bufio.NewWriter(&sent), flusher: flushDiscard{}, channel: -1, cols: 80, rows: 24}
		n := 0
		for _, l := range lines {
			lw.line(l[:len(l)-1], "")
			if n += len(l); n >= batch {
				lw.idle()
				n = 0
			}
		}
		lw.idle()
		if sent < liveTotal {
			b.Fatalf("sent %d bytes of events, want at least the %d of output", sent, liveTotal)
		}
	}
	// The process's CPU time (GC included), not the wall clock, which a
	// loaded machine stretches: what share of one core a viewer of a
	// session printing 10 MB/s takes.
	cpu := processCPU(b) - cpu0
	b.ReportMetric(100*cpu.Seconds()/(float64(b.N)*liveTotal/10e6), "%core@10MB/s")
}

// BenchmarkLiveViewSession is a whole recorded session printing 16 MiB
// (the recorder compressing it to its file), with no viewer and with one
// viewer following it: the difference of their %core@10MB/s is what the
// viewer adds, the recorder's fan-out to it included.
func BenchmarkLiveViewSession(b *testing.B) {
	p := logLines()
	for _, viewers := range []int{0, 1} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(liveTotal)
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				f, err := record.Create(dir, record.FileHeader{SessionID: "gw1/s:1"}, record.Params{})
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan countWriter, 1)
				if viewers > 0 {
					fl, _ := f.Follow(followerBench)
					go func() {
						var sent countWriter
						lw := &liveWriter{w: bufio.NewWriter(&sent), flusher: flushDiscard{}, channel: -1, cols: 80, rows: 24}
						for more := true; more; {
							<-fl.Ready()
							var lines [][]byte
							lines, more = fl.Take()
							for _, l := range lines {
								lw.line(l[:len(l)-1], "")
							}
							lw.idle()
							time.Sleep(liveBatch)
						}
						done <- sent
					}()
				}
				c := f.Channel(record.Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true, Width: 80, Height: 24})
				start := time.Now()
				for i := range liveTotal / len(p) {
					c.Output(p)
					// At 10 MB/s, as a session would print.
					if ahead := time.Duration(i+1) * time.Duration(len(p)) * time.Second / 10e6; time.Since(start) < ahead {
						time.Sleep(ahead - time.Since(start))
					}
				}
				c.Close()
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				os.Remove(f.Path())
				if viewers > 0 {
					if sent := <-done; sent < liveTotal {
						b.Fatalf("sent %d bytes of events, want at least the %d of output", sent, liveTotal)
					}
				}
			}
			cpu := processCPU(b) - cpu0
			b.ReportMetric(100*cpu.Seconds()/(float64(b.N)*liveTotal/10e6), "%core@10MB/s")
		})
	}
}

// followerBench is the gateway's follower queue (16 MiB).
const followerBench = 16 << 20

// processCPU is the user and system time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countWriter counts what it is written.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
