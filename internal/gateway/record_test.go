package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/record"
)

// recording returns the path of the recording of the session channel whose
// id ends with suffix, once the channel has ended (and the file is closed).
func (w *world) recording(suffix string) string {
	w.t.Helper()
	ofChannel := func(e audit.Event) bool { return strings.HasSuffix(e.SessionID, suffix) }
	if len(w.events("channel.end", ofChannel)) == 0 {
		w.t.Fatalf("no channel.end event for %s", suffix)
	}
	evs := w.events("record", func(e audit.Event) bool { return ofChannel(e) && e.Verdict == audit.Accept })
	if len(evs) != 1 {
		w.t.Fatalf("got record events %+v, want one accepted for %s", evs, suffix)
	}
	p, _ := evs[0].Detail["recording"].(string)
	if !strings.HasPrefix(p, filepath.Join(w.dir, "state", "recordings")+string(filepath.Separator)) {
		w.t.Fatalf("recording path: got %q, want one under state/recordings", p)
	}
	return p
}

// castFile is a recording read back: its header and events.
type castFile struct {
	header map[string]any
	events [][3]any
	played string // the "o" events, as record.Play writes them
}

func readCast(t *testing.T, path string) castFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := record.Validate(bytes.NewReader(data)); err != nil {
		t.Fatalf("record.Validate: %v\n%s", err, data)
	}
	var c castFile
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		if i == 0 {
			if err := json.Unmarshal(sc.Bytes(), &c.header); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var e [3]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		c.events = append(c.events, e)
	}
	var out bytes.Buffer
	noSleep := func(context.Context, time.Duration) error { return nil }
	if err := record.Play(context.Background(), bytes.NewReader(data), &out, 1, noSleep); err != nil {
		t.Fatalf("record.Play: %v", err)
	}
	c.played = out.String()
	return c
}

// data returns the concatenated data of the events with code.
func (c castFile) data(code string) string {
	var b strings.Builder
	for _, e := range c.events {
		if e[1] == code {
			b.WriteString(e[2].(string))
		}
	}
	return b.String()
}

func TestRecordPtySession(t *testing.T) {
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	r := w.run(strings.NewReader("echo SLUICE-$((6*7))-MARK; exit 0\n"), "ssh",
		append(w.args("ssh"), "-tt", w.target()+"@127.0.0.1")...)
	if r.code != 0 || !strings.Contains(r.stdout, "SLUICE-42-MARK") {
		t.Fatalf("got exit %d stdout %q, want 0 and the marker", r.code, r.stdout)
	}
	c := readCast(t, w.recording("/ssh/session:0"))
	// The replay is exactly what the client's terminal was sent.
	if c.played != r.stdout {
		t.Errorf("replay: got %q, want what the client saw, %q", c.played, r.stdout)
	}
	if in := c.data("i"); in != "" {
		t.Errorf("input events: got %q, want none without record_input", in)
	}
	pty := w.events("pty", nil)
	if len(pty) != 1 {
		t.Fatalf("got pty events %+v, want one", pty)
	}
	wantW, wantH := pty[0].Detail["columns"].(float64), pty[0].Detail["rows"].(float64)
	if wantW == 0 || wantH == 0 {
		wantW, wantH = 80, 24 // a client without a terminal size: asciicast needs one
	}
	h := c.header
	if h["width"] != wantW || h["height"] != wantH {
		t.Errorf("size: got %vx%v, want %vx%v", h["width"], h["height"], wantW, wantH)
	}
	env, _ := h["env"].(map[string]any)
	if term := pty[0].Detail["term"]; term != "" && (env == nil || env["TERM"] != term) {
		t.Errorf("env: got %v, want TERM %v", h["env"], term)
	}
	if id, _ := h["sluice_session_id"].(string); !strings.HasPrefix(id, "gw1/ssh-in:") || !strings.HasSuffix(id, "/ssh/session:0") {
		t.Errorf("sluice_session_id: got %q, want gw1/ssh-in:N/ssh/session:0", id)
	}
	if h["sluice_user"] != "alice" {
		t.Errorf("sluice_user: got %v, want alice", h["sluice_user"])
	}
	if _, ok := h["command"]; ok {
		t.Errorf("command: got %v, want none for a shell", h["command"])
	}
	ends := w.events(audit.TypeSessionEnd, nil)
	if len(ends) != 1 || ends[0].Detail["recording"] == nil {
		t.Errorf("got session.end %+v, want one naming the recording", ends)
	}
}

func TestRecordExecWithInput(t *testing.T) {
	w := newWorld(t, worldOptions{service: "    record: true\n    record_input: true\n"})
	const cmd = "cat; echo out-MARK; echo err-MARK >&2"
	r := w.run(strings.NewReader("typed-INPUT\n"), "ssh", append(w.args("ssh"), w.target()+"@127.0.0.1", cmd)...)
	if r.code != 0 || r.stdout != "typed-INPUT\nout-MARK\n" || r.stderr != "err-MARK\n" {
		t.Fatalf("got %d %q %q, want 0, the input and out-MARK, err-MARK", r.code, r.stdout, r.stderr)
	}
	c := readCast(t, w.recording("/ssh/session:0"))
	if c.header["command"] != cmd || c.header["sluice_command"] != cmd {
		t.Errorf("command: got %v / %v, want %q", c.header["command"], c.header["sluice_command"], cmd)
	}
	if c.header["width"] != 80.0 || c.header["height"] != 24.0 {
		t.Errorf("size: got %vx%v, want 80x24 without a pty", c.header["width"], c.header["height"])
	}
	if got := c.data("i"); got != "typed-INPUT\n" {
		t.Errorf("input: got %q, want %q", got, "typed-INPUT\n")
	}
	// stdout and stderr are separate streams: their order is not fixed.
	for _, want := range []string{"typed-INPUT\n", "out-MARK\n", "err-MARK\n"} {
		if !strings.Contains(c.played, want) {
			t.Errorf("replay: got %q, want it to hold %q", c.played, want)
		}
	}
	if len(c.played) != len(r.stdout)+len(r.stderr) {
		t.Errorf("replay: got %d bytes, want stdout and stderr, %d", len(c.played), len(r.stdout)+len(r.stderr))
	}
}

func TestRecordUnavailable(t *testing.T) {
	tests := []struct {
		name     string
		tail     string
		wantCode int
	}{
		{"fail_closed refuses the channel", "", 255},
		{"best_effort runs unrecorded", "record:\n  on_failure: best_effort\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{service: "    record: true\n", tail: tt.tail})
			// A file where the recordings folder belongs: no recording can
			// be created, whoever runs the test.
			if err := os.WriteFile(filepath.Join(w.dir, "state", "recordings"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := w.ssh(nil, "echo ran-MARK")
			if r.code != tt.wantCode {
				t.Fatalf("got exit %d (stdout %q stderr %q), want %d", r.code, r.stdout, r.stderr, tt.wantCode)
			}
			if ran := strings.Contains(r.stdout, "ran-MARK"); ran != (tt.wantCode == 0) {
				t.Fatalf("got stdout %q, want the command to run: %v", r.stdout, tt.wantCode == 0)
			}
			if got := w.gw.RecordingFailures(); got != 1 {
				t.Errorf("RecordingFailures: got %d, want 1", got)
			}
			if tt.wantCode != 0 {
				evs := w.events("record", func(e audit.Event) bool { return e.Verdict == audit.Reject })
				if len(evs) != 1 || evs[0].Rule != "record.on_failure" {
					t.Errorf("got %+v, want one record reject by record.on_failure", evs)
				}
			}
		})
	}
}

// TestRecordStopsMidSession makes a recording fail after it started (its
// queue overflows) and checks what each record.on_failure does with it.
func TestRecordStopsMidSession(t *testing.T) {
	for _, mode := range []config.FailureMode{config.FailClosed, config.BestEffort} {
		t.Run(string(mode), func(t *testing.T) {
			rs := &recorders{
				dir:      t.TempDir(),
				mode:     mode,
				params:   record.Params{QueueBytes: 4},
				logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
				failures: new(atomic.Uint64),
			}
			rec, failed, err := rs.create(record.Header{SessionID: "gw1/ssh-in:1/ssh/session:0", User: "alice"})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			rec.Output([]byte("more than four bytes"))
			if err := rec.Close(); !errors.Is(err, record.ErrStopped) {
				t.Errorf("Close: got %v, want ErrStopped", err)
			}
			if got := rs.failures.Load(); got != 1 {
				t.Errorf("failures: got %d, want 1", got)
			}
			switch mode {
			case config.FailClosed:
				select {
				case <-failed:
				default:
					t.Error("failed: still open, want closed so that the channel ends")
				}
			case config.BestEffort:
				if failed != nil {
					t.Error("failed: got a channel, want nil (best_effort never ends the channel)")
				}
			}
		})
	}
}
