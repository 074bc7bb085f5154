package record

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"
	"go.uber.org/goleak"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock moves only when told; its timers fire on Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clk     *fakeClock
	c       chan time.Time
	at      time.Time
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, c: make(chan time.Time, 1), at: c.now.Add(d)}
	c.timers = append(c.timers, t)
	return t
}

// armed is the number of timers made so far.
func (c *fakeClock) armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			t.c <- c.now
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// readCast parses a recording back into its events.
func readCast(t *testing.T, b []byte) []event {
	t.Helper()
	if err := Validate(bytes.NewReader(b)); err != nil {
		t.Fatalf("Validate: got %v, want nil\n%s", err, b)
	}
	c := newCastReader(bytes.NewReader(b))
	if err := c.header(); err != nil {
		t.Fatal(err)
	}
	var out []event
	for {
		e, err := c.event()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}

func TestRoundTrip(t *testing.T) {
	clk := newFakeClock()
	dir := filepath.Join(t.TempDir(), "rec")
	r, err := Create(dir, Header{Width: 100, Height: 30, Term: "xterm-256color", SessionID: "gw1/ssh-in:42/ssh/session:0", User: "alice", Command: "top", Title: "t"},
		Params{Input: true, Clock: clk})
	if err != nil {
		t.Fatalf("Create: got %v, want nil", err)
	}
	clk.Advance(500 * time.Millisecond)
	r.Output([]byte("hello \xe2\x98"))
	clk.Advance(250 * time.Millisecond)
	r.Output([]byte("\x83\r\n"))
	r.Resize(120, 40)
	clk.Advance(time.Second)
	r.Input([]byte("q"))
	r.Stderr([]byte("oops\xff\n"))
	r.Marker("end")
	if err := r.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if got, want := filepath.Base(r.Path()), "gw1_ssh-in-42_ssh_session-0.cast"; got != want {
		t.Errorf("file name: got %q, want %q", got, want)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, r.Path(): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("mode of %s: got %v, want %v", path, st.Mode(), want)
		}
	}
	b, err := os.ReadFile(r.Path())
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(b), "\n")
	for _, want := range []string{`"version":2`, `"width":100`, `"height":30`, `"timestamp":1700000000`, `"env":{"TERM":"xterm-256color"}`,
		`"sluice_session_id":"gw1/ssh-in:42/ssh/session:0"`, `"sluice_user":"alice"`, `"sluice_command":"top"`, `"title":"t"`} {
		if !strings.Contains(header, want) {
			t.Errorf("header %s: want it to contain %s", header, want)
		}
	}
	got := readCast(t, b)
	want := []event{
		{0.5, "o", "hello "},
		{0.75, "o", "\u2603\r\n"},
		{0.75, "r", "120x40"},
		{1.75, "i", "q"},
		{1.75, "o", "oops\uFFFD\n"},
		{1.75, "m", "end"},
	}
	if len(got) != len(want) {
		t.Fatalf("events: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestInputOffByDefault(t *testing.T) {
	var buf bytes.Buffer
	r, err := newRecorder(nopCloser{&buf}, "x.cast", Header{SessionID: "gw1/s:1"}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	r.Input([]byte("secret"))
	r.Output([]byte("shown"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := readCast(t, buf.Bytes())
	if len(got) != 1 || got[0].code != "o" || got[0].data != "shown" {
		t.Errorf("events: got %v, want only the output", got)
	}
	if !strings.Contains(buf.String(), `"width":80,"height":24`) {
		t.Errorf("header without pty: got %s, want 80x24", buf.String())
	}
}

func TestCreateNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for range 3 {
		r, err := Create(dir, Header{SessionID: "gw1/ssh-in:1"}, Params{})
		if err != nil {
			t.Fatalf("Create: got %v, want nil", err)
		}
		paths = append(paths, filepath.Base(r.Path()))
		r.Close()
	}
	want := []string{"gw1_ssh-in-1.cast", "gw1_ssh-in-1.1.cast", "gw1_ssh-in-1.2.cast"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths: got %v, want %v", paths, want)
	}
}

func TestFileName(t *testing.T) {
	tests := []struct{ id, want string }{
		{"gw1/ssh-in:42", "gw1_ssh-in-42.cast"},
		{"../../etc/passwd", "_._.._etc_passwd.cast"},
		{".hidden", "_hidden.cast"},
		{"a b\x00é", "a_b___.cast"},
	}
	for _, tt := range tests {
		if got := FileName(tt.id); got != tt.want {
			t.Errorf("FileName(%q): got %q, want %q", tt.id, got, tt.want)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// failAfter accepts n bytes, then fails every write like a full disk.
type failAfter struct {
	mu sync.Mutex
	n  int
	w  bytes.Buffer
}

var errDiskFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) > f.n {
		k := f.n
		f.w.Write(p[:k])
		f.n = 0
		return k, errDiskFull
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func (f *failAfter) Close() error { return nil }

func TestWriteErrorStopsOnce(t *testing.T) {
	fw := &failAfter{n: 100 << 10}
	var calls atomic.Int32
	var cause atomic.Pointer[error]
	r, err := newRecorder(fw, "x.cast", Header{SessionID: "gw1/s:1"}, Params{OnError: func(err error) {
		calls.Add(1)
		cause.Store(&err)
	}})
	if err != nil {
		t.Fatalf("newRecorder: got %v, want nil", err)
	}
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	for range 20 {
		r.Output(chunk)
	}
	eventually(t, "OnError", func() bool { return calls.Load() > 0 })
	for range 20 {
		r.Output(chunk) // ignored now
	}
	err = r.Close()
	if !errors.Is(err, ErrStopped) || !errors.Is(err, errDiskFull) {
		t.Errorf("Close: got %v, want ErrStopped wrapping the write error", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("OnError calls: got %d, want 1", got)
	}
	if p := cause.Load(); p == nil || !errors.Is(*p, errDiskFull) {
		t.Errorf("OnError cause: got %v, want %v", p, errDiskFull)
	}
	if got := fw.w.Len(); got != 100<<10 {
		t.Errorf("bytes written: got %d, want %d (no writes after the error)", got, 100<<10)
	}
}

func TestOverflow(t *testing.T) {
	var calls atomic.Int32
	var buf bytes.Buffer
	r, err := newRecorder(nopCloser{&buf}, "x.cast", Header{SessionID: "gw1/s:1"}, Params{QueueBytes: 10, OnError: func(err error) {
		if !errors.Is(err, ErrOverflow) {
			t.Errorf("OnError: got %v, want ErrOverflow", err)
		}
		calls.Add(1)
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.Output(bytes.Repeat([]byte("y"), 11))
	r.Output([]byte("z"))
	if err := r.Close(); !errors.Is(err, ErrOverflow) {
		t.Errorf("Close: got %v, want ErrOverflow", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("OnError calls: got %d, want 1", got)
	}
	if got := readCast(t, buf.Bytes()); len(got) != 0 {
		t.Errorf("events after overflow: got %v, want none", got)
	}
}

func TestFlushByTimer(t *testing.T) {
	clk := newFakeClock()
	r, err := Create(t.TempDir(), Header{SessionID: "gw1/s:1"}, Params{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Output([]byte("first"))
	eventually(t, "the flush timer", func() bool { return clk.armed() == 1 })
	read := func() string {
		b, err := os.ReadFile(r.Path())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if strings.Contains(read(), "first") {
		t.Fatalf("file: got the event before the flush interval, want it buffered")
	}
	clk.Advance(999 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if strings.Contains(read(), "first") {
		t.Fatalf("file: got the event before the flush interval, want it buffered")
	}
	clk.Advance(time.Millisecond)
	eventually(t, "the event on disk", func() bool { return strings.Contains(read(), "first") })
}

func TestFlushWhenIntervalPassed(t *testing.T) {
	clk := newFakeClock()
	r, err := Create(t.TempDir(), Header{SessionID: "gw1/s:1"}, Params{Clock: clk, FlushInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	clk.Advance(600 * time.Millisecond)
	r.Output([]byte("late"))
	eventually(t, "the event on disk", func() bool {
		b, _ := os.ReadFile(r.Path())
		return strings.Contains(string(b), "late")
	})
	if got := clk.armed(); got != 0 {
		t.Errorf("timers: got %d, want 0 (flushed at once)", got)
	}
}

func TestAsciinemaCat(t *testing.T) {
	bin := sshtest.RequireTool(t, "asciinema")
	r, err := Create(t.TempDir(), Header{Width: 80, Height: 24, Term: "xterm", SessionID: "gw1/ssh-in:1/ssh/session:0", User: "alice", Command: "echo"}, Params{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("hello \xe2\x98"))
	r.Output([]byte("\x83 world\r\n"))
	r.Input([]byte("ls\r"))
	r.Resize(100, 30)
	r.Marker("m1")
	r.Stderr([]byte("bad \xff byte\r\n"))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// asciinema 2.x cat opens /dev/tty, so it gets a terminal of its own.
	cmd := exec.Command(bin, "cat", r.Path())
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("start asciinema cat: %v", err)
	}
	out, _ := io.ReadAll(ptmx) // ends with EIO when the child exits
	ptmx.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, out)
	}
	for _, want := range []string{"hello \u2603 world", "bad \uFFFD byte"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("asciinema cat: got %q, want it to contain %q", out, want)
		}
	}
	// play works without a terminal.
	out, err = exec.Command(bin, "play", "-s", "1000", r.Path()).Output()
	if err != nil {
		t.Fatalf("asciinema play: %v", err)
	}
	if !strings.Contains(string(out), "hello \u2603 world") {
		t.Errorf("asciinema play: got %q, want the output", out)
	}
}

func TestPlay(t *testing.T) {
	cast := `{"version":2,"width":80,"height":24}
[0.5, "o", "a"]
[1.0, "i", "x"]
[1.5, "o", "b"]
[1.5, "o", "c"]
[2.0, "r", "10x10"]
`
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}
	var out bytes.Buffer
	if err := Play(context.Background(), strings.NewReader(cast), &out, 2, sleep); err != nil {
		t.Fatalf("Play: got %v, want nil", err)
	}
	if got := out.String(); got != "abc" {
		t.Errorf("output: got %q, want %q", got, "abc")
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}
	if len(slept) != len(want) || slept[0] != want[0] || slept[1] != want[1] {
		t.Errorf("sleeps: got %v, want %v", slept, want)
	}
	for _, speed := range []float64{0, -1} {
		if err := Play(context.Background(), strings.NewReader(cast), io.Discard, speed, sleep); err == nil {
			t.Errorf("Play at speed %v: got nil, want an error", speed)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Play(ctx, strings.NewReader(cast), io.Discard, 1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Play with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestValidate(t *testing.T) {
	const h = `{"version":2,"width":80,"height":24}` + "\n"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"header only", h, true},
		{"events", h + `[0, "o", "x"]` + "\n" + `[0.1, "r", "80x24"]` + "\n" + `[0.1, "m", ""]`, true},
		{"extra header keys", `{"version":2,"width":1,"height":1,"timestamp":1,"env":{"TERM":"x"},"sluice_user":"u","theme":{}}` + "\n", true},
		{"empty", "", false},
		{"version 1", `{"version":1,"width":80,"height":24}` + "\n", false},
		{"version string", `{"version":"2","width":80,"height":24}` + "\n", false},
		{"no width", `{"version":2,"height":24}` + "\n", false},
		{"zero height", `{"version":2,"width":80,"height":0}` + "\n", false},
		{"fractional width", `{"version":2,"width":80.5,"height":24}` + "\n", false},
		{"env not strings", `{"version":2,"width":80,"height":24,"env":{"TERM":1}}` + "\n", false},
		{"header array", `[2]` + "\n", false},
		{"decreasing time", h + `[1, "o", "x"]` + "\n" + `[0.5, "o", "y"]`, false},
		{"negative time", h + `[-1, "o", "x"]`, false},
		{"time string", h + `["1", "o", "x"]`, false},
		{"unknown code", h + `[1, "x", "x"]`, false},
		{"data number", h + `[1, "o", 1]`, false},
		{"two elements", h + `[1, "o"]`, false},
		{"bad resize", h + `[1, "r", "80 24"]`, false},
		{"trailing data", h + `[1, "o", "x"] 1`, false},
		{"blank line", h + "\n" + `[1, "o", "x"]`, false},
		{"invalid utf-8", h + "[1, \"o\", \"\xff\"]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(strings.NewReader(tt.in))
			if (err == nil) != tt.ok {
				t.Errorf("Validate: got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "record: ") {
				t.Errorf("error %q: want the \"record: \" prefix", err)
			}
		})
	}
}

func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"version":2,"width":80,"height":24,"env":{"TERM":"xterm"}}` + "\n" + `[0.5, "o", "a\u001b[0m"]` + "\n" + `[1, "r", "1x1"]` + "\n"))
	f.Add([]byte(`{"version":2,"width":80,"height":24}` + "\n" + `[1e400, "o", "a"]`))
	f.Add([]byte("{}\n[]\n"))
	f.Add([]byte(`{"version":2,"width":1,"height":1}` + "\n[0,\"m\",\"\"]\n[0,\"i\",\"\\ud800\"]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Validate(bytes.NewReader(data))
		perr := Play(context.Background(), bytes.NewReader(data), io.Discard, 1, func(context.Context, time.Duration) error { return nil })
		if (err == nil) != (perr == nil) {
			t.Errorf("Validate: %v, Play: %v; want both nil or both errors", err, perr)
		}
	})
}

// FuzzRecordUTF8 records data cut into chunks: the file is always valid
// asciicast, and valid UTF-8 comes back byte for byte.
func FuzzRecordUTF8(f *testing.F) {
	f.Add([]byte("hello \xe2\x98\x83 world"), uint8(7))
	f.Add([]byte("\xf0\x9f\x98\x80\xf0\x9f"), uint8(1))
	f.Add([]byte("\xff\xfe\x00\x1b[31m"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		var buf bytes.Buffer
		r, err := newRecorder(nopCloser{&buf}, "x.cast", Header{SessionID: "gw1/s:1"}, Params{})
		if err != nil {
			t.Fatal(err)
		}
		n := int(step%8) + 1
		for i := 0; i < len(data); i += n {
			r.Output(data[i:min(i+n, len(data))])
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, e := range readCast(t, buf.Bytes()) {
			got.WriteString(e.data)
		}
		if utf8.Valid(data) && got.String() != string(data) {
			t.Errorf("output: got %q, want %q", got.String(), data)
		}
	})
}
