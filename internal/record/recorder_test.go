package record

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// readAll reads a recording back: its reader (file header and channels)
// and events, and the error that ended the reading (nil at a clean end).
func readAll(t *testing.T, b []byte) (*Reader, []Event, error) {
	t.Helper()
	rd, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var evs []Event
	for {
		e, ch, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rd, evs, nil
		}
		if err != nil {
			return rd, evs, err
		}
		if !ch {
			evs = append(evs, e)
		}
	}
}

func mustRead(t *testing.T, path string) (*Reader, []Event) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rd, evs, err := readAll(t, b)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return rd, evs
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRoundTrip(t *testing.T) {
	clk := newFakeClock()
	dir := filepath.Join(t.TempDir(), "rec")
	f, err := Create(dir, FileHeader{SessionID: "gw1/ssh-in:42", User: "alice"}, Params{Input: true, Clock: clk})
	if err != nil {
		t.Fatalf("Create: got %v, want nil", err)
	}
	clk.Advance(500 * time.Millisecond)
	tty := f.Channel(Header{SessionID: "gw1/ssh-in:42/ssh/session:0", Pty: true, Width: 100, Height: 30, Term: "xterm"})
	tty.Output([]byte("hello \xe2\x98"))
	clk.Advance(250 * time.Millisecond)
	tty.Output([]byte("\x83\r\n"))
	tty.Resize(120, 40)
	ex := f.Channel(Header{SessionID: "gw1/ssh-in:42/ssh/session:1", Command: "sh -s"})
	clk.Advance(time.Second)
	tty.Input([]byte("q"))
	ex.Input([]byte("echo hi\n"))
	ex.Stderr([]byte("oops\xff\n"))
	ex.Marker("end")
	ps, es := tty.Close(), ex.Close()
	if err := f.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if got, want := filepath.Base(f.Path()), "gw1_ssh-in-42.rec.gz"; got != want {
		t.Errorf("file name: got %q, want %q", got, want)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, f.Path(): 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("mode of %s: got %v, want %v", path, st.Mode(), want)
		}
	}
	b, _ := os.ReadFile(f.Path())
	if got := f.SHA256(); got != hexSum(b) {
		t.Errorf("SHA256: got %s, want %s (the file's)", got, hexSum(b))
	}
	rd, got := mustRead(t, f.Path())
	if rd.Header != (FileHeader{SessionID: "gw1/ssh-in:42", User: "alice"}) || rd.Start != 1_700_000_000 {
		t.Errorf("file header: got %+v at %d", rd.Header, rd.Start)
	}
	wantCh := []ChannelInfo{
		{N: 0, SessionID: "gw1/ssh-in:42/ssh/session:0", Time: 0.5, Pty: true, Width: 100, Height: 30, Term: "xterm"},
		{N: 1, SessionID: "gw1/ssh-in:42/ssh/session:1", Time: 0.75, Width: 80, Height: 24, Command: "sh -s"},
	}
	if len(rd.Channels) != 2 || rd.Channels[0] != wantCh[0] || rd.Channels[1] != wantCh[1] {
		t.Errorf("channels: got %+v, want %+v", rd.Channels, wantCh)
	}
	want := []Event{
		{0.5, 0, "o", "hello "},
		{0.75, 0, "o", "\u2603\r\n"},
		{0.75, 0, "r", "120x40"},
		{1.75, 0, "i", "q"},
		{1.75, 1, "i", "echo hi\n"},
		{1.75, 1, "e", "oops\uFFFD\n"},
		{1.75, 1, "m", "end"},
	}
	if len(got) != len(want) {
		t.Fatalf("events: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if ps.Stdout.Bytes != 11 || ps.Stdout.SHA256 != hexSum([]byte("hello \xe2\x98\x83\r\n")) {
		t.Errorf("pty stdout: got %+v", ps.Stdout)
	}
	if es.Stderr.Bytes != 6 || es.Stderr.Recorded != 6 || es.Stderr.SHA256 != hexSum([]byte("oops\xff\n")) {
		t.Errorf("exec stderr: got %+v", es.Stderr)
	}
	// Play: the pty's output, the exec's input and stderr, in order.
	var out bytes.Buffer
	if err := Play(context.Background(), bytes.NewReader(b), &out, PlayOptions{Speed: 1, Sleep: noSleep}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "hello \u2603\r\necho hi\noops\uFFFD\n"; got != want {
		t.Errorf("Play: got %q, want %q", got, want)
	}
	out.Reset()
	if err := Play(context.Background(), bytes.NewReader(b), &out, PlayOptions{Speed: 1, Sleep: noSleep, Session: "gw1/ssh-in:42/ssh/session:1"}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "echo hi\noops\uFFFD\n"; got != want {
		t.Errorf("Play of session:1: got %q, want %q", got, want)
	}
}

func TestPtyInputOffByDefault(t *testing.T) {
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
	c.Input([]byte("secret"))
	c.Output([]byte("shown"))
	s := c.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, evs := mustRead(t, f.Path())
	if len(evs) != 1 || evs[0].Code != "o" || evs[0].Data != "shown" {
		t.Errorf("events: got %v, want only the output", evs)
	}
	// A digest of a few keystrokes would let a password be guessed.
	if s.Stdin.SHA256 != "" || s.Stdin.Bytes != 6 || s.Stdin.Recorded != 0 {
		t.Errorf("stdin sum: got %+v, want 6 bytes, no digest, none recorded", s.Stdin)
	}
}

func TestCap(t *testing.T) {
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{MaxStreamBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Command: "cat big"})
	var whole []byte
	for i := range 100 {
		p := []byte(strings.Repeat(string(rune('a'+i%26)), 7))
		whole = append(whole, p...)
		c.Output(p)
	}
	c.Input([]byte("short"))
	s := c.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Stdout.Bytes != 700 || s.Stdout.Recorded != 10 || s.Stdout.SHA256 != hexSum(whole) {
		t.Errorf("stdout: got %+v, want 700 bytes, 10 recorded, the digest of all", s.Stdout)
	}
	if s.Stdin.Bytes != 5 || s.Stdin.Recorded != 5 {
		t.Errorf("stdin: got %+v, want 5 bytes, all recorded", s.Stdin)
	}
	_, evs := mustRead(t, f.Path())
	var out strings.Builder
	markers := 0
	for _, e := range evs {
		switch e.Code {
		case "o":
			out.WriteString(e.Data)
		case "m":
			markers++
			if !strings.Contains(e.Data, "stdout cut at 10 bytes") {
				t.Errorf("marker: got %q", e.Data)
			}
		}
	}
	if out.String() != "aaaaaaabbb" || markers != 1 {
		t.Errorf("recorded: got %q and %d markers, want %q and one", out.String(), markers, "aaaaaaabbb")
	}
	// A pty channel is not capped.
	f2, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:2"}, Params{MaxStreamBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	p := f2.Channel(Header{SessionID: "gw1/s:2/ssh/session:0", Pty: true})
	p.Output(whole)
	if s := p.Close(); s.Stdout.Recorded != 700 {
		t.Errorf("pty stdout: got %+v, want all 700 recorded", s.Stdout)
	}
	f2.Close()
}

func TestCreateNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for range 3 {
		f, err := Create(dir, FileHeader{SessionID: "gw1/ssh-in:1"}, Params{})
		if err != nil {
			t.Fatalf("Create: got %v, want nil", err)
		}
		paths = append(paths, filepath.Base(f.Path()))
		f.Close()
	}
	want := []string{"gw1_ssh-in-1.rec.gz", "gw1_ssh-in-1.1.rec.gz", "gw1_ssh-in-1.2.rec.gz"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths: got %v, want %v", paths, want)
	}
}

func TestFileName(t *testing.T) {
	tests := []struct{ id, want string }{
		{"gw1/ssh-in:42", "gw1_ssh-in-42.rec.gz"},
		{"../../etc/passwd", "_._.._etc_passwd.rec.gz"},
		{".hidden", "_hidden.rec.gz"},
		{"a b\x00é", "a_b___.rec.gz"},
	}
	for _, tt := range tests {
		if got := FileName(tt.id); got != tt.want {
			t.Errorf("FileName(%q): got %q, want %q", tt.id, got, tt.want)
		}
	}
}

// TestBackpressure writes into a pipe nobody reads: the data path waits
// for the writer instead of dropping events or failing, and goes on once
// the pipe is read.
func TestBackpressure(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var failures atomic.Int32
	f, err := newFile(pw, "pipe", FileHeader{SessionID: "gw1/s:1"}, Params{QueueBytes: 64 << 10, MaxStreamBytes: -1, FlushInterval: time.Millisecond,
		OnError: func(error) { failures.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
	// Random-looking bytes hardly compress: 8 MiB fills the pipe and the
	// queue many times over.
	chunk := make([]byte, 32<<10)
	var x uint32 = 1
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 256 {
			for i := range chunk {
				x = x*1664525 + 1013904223
				chunk[i] = 'a' + byte(x>>24)%26
			}
			c.Output(chunk)
			written.Add(int64(len(chunk)))
		}
	}()
	// Nothing reads the pipe: the writer blocks, then the queue fills,
	// then Output waits.
	var last int64 = -1
	for {
		time.Sleep(200 * time.Millisecond)
		n := written.Load()
		if n == last {
			break
		}
		last = n
	}
	select {
	case <-done:
		t.Fatalf("Output returned for all 8 MiB with nothing reading the file, want it to wait")
	default:
	}
	if last > 1<<20 {
		t.Errorf("recorded before waiting: %d bytes, want at most about the queue and pipe (1 MiB)", last)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(pr)
		got <- b
	}()
	<-done
	s := c.Close()
	if err := f.Close(); err != nil && !strings.Contains(err.Error(), "hash") {
		t.Errorf("Close: got %v", err)
	}
	b := <-got
	if failures.Load() != 0 {
		t.Errorf("OnError: called %d times, want never", failures.Load())
	}
	if s.Stdout.Bytes != 8<<20 || s.Stdout.Recorded != 8<<20 {
		t.Errorf("stdout: got %+v, want 8 MiB, all recorded", s.Stdout)
	}
	_, evs, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, e := range evs {
		n += len(e.Data)
	}
	if n != 8<<20 {
		t.Errorf("recorded: got %d bytes back, want %d", n, 8<<20)
	}
}

// failAfter is a real file that refuses writes past n bytes, like a full
// disk.
type failAfter struct {
	*os.File
	mu sync.Mutex
	n  int
}

var errDiskFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) > f.n {
		k, _ := f.File.Write(p[:f.n])
		f.n = 0
		return k, errDiskFull
	}
	f.n -= len(p)
	return f.File.Write(p)
}

func newFailing(t *testing.T, n int, p Params) (*File, *failAfter) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x"+Ext)
	osf, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw := &failAfter{File: osf, n: n}
	f, err := newFile(fw, path, FileHeader{SessionID: "gw1/s:1"}, p)
	if err != nil {
		t.Fatalf("newFile: got %v, want nil", err)
	}
	return f, fw
}

// TestWriteError fills the disk mid-recording: OnError is called once, the
// data path goes on (or holds, with Hold), and the file is left valid up to
// its last whole gzip member.
func TestWriteError(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(map[bool]string{false: "best_effort", true: "hold"}[hold], func(t *testing.T) {
			var calls atomic.Int32
			var cause atomic.Pointer[error]
			f, _ := newFailing(t, 200<<10, Params{Hold: hold, MaxStreamBytes: -1, FlushInterval: time.Millisecond, OnError: func(err error) {
				calls.Add(1)
				cause.Store(&err)
			}})
			c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
			c.Output([]byte("first whole event\n"))
			time.Sleep(50 * time.Millisecond) // flushed as a member of its own
			chunk := make([]byte, 16<<10)
			var x uint32 = 7
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range 200 {
					for i := range chunk {
						x = x*1664525 + 1013904223
						chunk[i] = 'a' + byte(x>>24)%26
					}
					c.Output(chunk)
				}
			}()
			select {
			case <-f.Failed():
			case <-time.After(10 * time.Second):
				t.Fatal("Failed: not closed after the disk filled")
			}
			if hold {
				select {
				case <-done:
					t.Fatal("Output returned after the failure, want it held until Close")
				case <-time.After(100 * time.Millisecond):
				}
			}
			if !hold {
				// best_effort goes on relaying: what comes after the
				// failure is counted and hashed, not recorded.
				<-done
			}
			sums := c.Close()
			<-done
			switch {
			case sums.Stdout.SHA256 == "":
				t.Errorf("stdout: got %+v, want a digest", sums.Stdout)
			case !hold && sums.Stdout.Recorded >= sums.Stdout.Bytes:
				t.Errorf("stdout: got %+v, want fewer bytes recorded than relayed", sums.Stdout)
			case hold && sums.Stdout.Recorded > sums.Stdout.Bytes:
				t.Errorf("stdout: got %+v, want no more bytes recorded than relayed", sums.Stdout)
			}
			err := f.Close()
			if !errors.Is(err, ErrStopped) || !errors.Is(err, errDiskFull) {
				t.Errorf("Close: got %v, want ErrStopped wrapping the write error", err)
			}
			if got := calls.Load(); got != 1 {
				t.Errorf("OnError calls: got %d, want 1", got)
			}
			if p := cause.Load(); p == nil || !errors.Is(*p, errDiskFull) {
				t.Errorf("OnError cause: got %v, want %v", p, errDiskFull)
			}
			b, _ := os.ReadFile(f.Path())
			if f.SHA256() != hexSum(b) {
				t.Errorf("SHA256: got %s, want the truncated file's %s", f.SHA256(), hexSum(b))
			}
			_, evs, err := readAll(t, b)
			if err != nil {
				t.Fatalf("reading the file after the failure: %v, want it valid", err)
			}
			if len(evs) == 0 || evs[0].Data != "first whole event\n" {
				t.Errorf("events: got %d, want the first whole event kept", len(evs))
			}
		})
	}
}

func TestFlushByTimer(t *testing.T) {
	clk := newFakeClock()
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0"})
	defer c.Close()
	c.Output([]byte("first"))
	eventually(t, "the flush timer", func() bool { return clk.armed() == 1 })
	read := func() string {
		b, err := os.ReadFile(f.Path())
		if err != nil {
			t.Fatal(err)
		}
		_, evs, _ := readAll(t, b)
		var s strings.Builder
		for _, e := range evs {
			s.WriteString(e.Data)
		}
		return s.String()
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

// TestTruncatedFile cuts a recording at every length: reading it gives a
// prefix of the events and then a clean end or ErrTruncated, never
// another error.
func TestTruncatedFile(t *testing.T) {
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0"})
	for i := range 20 {
		c.Output([]byte(strings.Repeat("line ", i) + "\n"))
		time.Sleep(3 * time.Millisecond) // several members
	}
	c.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(f.Path())
	_, all, err := readAll(t, whole)
	if err != nil {
		t.Fatal(err)
	}
	hdr := headerMemberLen(t, whole)
	for n := hdr; n < len(whole); n++ {
		_, evs, err := readAll(t, whole[:n])
		if err != nil && !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: got %v, want nil or ErrTruncated", n, err)
		}
		for i := range evs {
			if evs[i] != all[i] {
				t.Fatalf("cut at %d: event %d is %v, want %v", n, i, evs[i], all[i])
			}
		}
	}
}

// headerMemberLen is the length of the first gzip member of b.
func headerMemberLen(t *testing.T, b []byte) int {
	t.Helper()
	br := bytes.NewReader(b)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	if _, err := io.Copy(io.Discard, zr); err != nil {
		t.Fatal(err)
	}
	return len(b) - br.Len()
}

// FuzzRecordUTF8 records data cut into chunks: the file is always valid,
// and valid UTF-8 comes back byte for byte.
func FuzzRecordUTF8(f *testing.F) {
	f.Add([]byte("hello \xe2\x98\x83 world"), uint8(7))
	f.Add([]byte("\xf0\x9f\x98\x80\xf0\x9f"), uint8(1))
	f.Add([]byte("\xff\xfe\x00\x1b[31m"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		file, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{})
		if err != nil {
			t.Fatal(err)
		}
		c := file.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
		n := int(step%8) + 1
		for i := 0; i < len(data); i += n {
			c.Output(data[i:min(i+n, len(data))])
		}
		c.Close()
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
		_, evs := mustRead(t, file.Path())
		var got strings.Builder
		for _, e := range evs {
			got.WriteString(e.Data)
		}
		if utf8.Valid(data) && got.String() != string(data) {
			t.Errorf("output: got %q, want %q", got.String(), data)
		}
	})
}

// FuzzReader feeds the recording reader (through Play) gzip members of
// arbitrary lines, and arbitrary bytes: it must never panic, and every
// error is the package's.
func FuzzReader(f *testing.F) {
	good := `{"sluice_recording":1,"session_id":"gw1/s:1","user":"u","timestamp":1}` + "\n" +
		`{"channel":0,"session_id":"gw1/s:1/ssh/session:0","time":0,"pty":false,"width":80,"height":24,"command":"x"}` + "\n" +
		`[0.5,0,"i","ls\n"]` + "\n" + `[1,0,"r","1x1"]` + "\n" + `[1,0,"o","\u001b[0m"]` + "\n"
	f.Add([]byte(good), true, uint16(0))
	f.Add([]byte(good), true, uint16(200))
	f.Add([]byte(`{"sluice_recording":1,"session_id":"a"}`+"\n"+`[0,1,"o","x"]`+"\n"), true, uint16(0))
	f.Add([]byte(`{"sluice_recording":1,"session_id":"a"}`+"\n"+`[1e400,0,"o","x"]`), true, uint16(0))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, false, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, compress bool, cut uint16) {
		in := data
		if compress {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(data)
			zw.Close()
			in = b.Bytes()
			if c := int(cut); c > 0 && c < len(in) {
				in = in[:c]
			}
		}
		err := Play(context.Background(), bytes.NewReader(in), io.Discard, PlayOptions{Speed: 1, Sleep: noSleep})
		if err != nil && !strings.HasPrefix(err.Error(), "record: ") {
			t.Errorf("error %q: want the \"record: \" prefix", err)
		}
	})
}

// TestWriteCast exports a channel as asciicast v2: Validate accepts it,
// and asciinema itself plays it.
func TestWriteCast(t *testing.T) {
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/ssh-in:1", User: "alice"}, Params{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	other := f.Channel(Header{SessionID: "gw1/ssh-in:1/ssh/session:0", Command: "true"})
	other.Output([]byte("not this channel\n"))
	c := f.Channel(Header{SessionID: "gw1/ssh-in:1/ssh/session:1", Pty: true, Width: 80, Height: 24, Term: "xterm"})
	c.Output([]byte("hello \xe2\x98"))
	c.Output([]byte("\x83 world\r\n"))
	c.Input([]byte("ls\r"))
	c.Resize(100, 30)
	c.Marker("m1")
	c.Stderr([]byte("bad \xff byte\r\n"))
	other.Close()
	c.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rec, _ := os.ReadFile(f.Path())
	var cast bytes.Buffer
	if err := WriteCast(bytes.NewReader(rec), &cast, "gw1/ssh-in:1/ssh/session:1"); err != nil {
		t.Fatalf("WriteCast: %v", err)
	}
	if err := Validate(bytes.NewReader(cast.Bytes())); err != nil {
		t.Fatalf("Validate of the export: %v\n%s", err, cast.Bytes())
	}
	header, _, _ := strings.Cut(cast.String(), "\n")
	for _, want := range []string{`"version":2`, `"width":80`, `"env":{"TERM":"xterm"}`, `"sluice_session_id":"gw1/ssh-in:1/ssh/session:1"`, `"sluice_user":"alice"`} {
		if !strings.Contains(header, want) {
			t.Errorf("header %s: want %s", header, want)
		}
	}
	if strings.Contains(cast.String(), "not this channel") {
		t.Errorf("export: got another channel's output")
	}
	if err := WriteCast(bytes.NewReader(rec), io.Discard, "gw1/ssh-in:1/ssh/session:9"); err == nil {
		t.Errorf("WriteCast of a channel not in the file: got nil, want an error")
	}
	bin := sshtest.RequireTool(t, "asciinema")
	path := filepath.Join(t.TempDir(), "x.cast")
	if err := os.WriteFile(path, cast.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// asciinema 2.x cat opens /dev/tty, so it gets a terminal of its own.
	cmd := exec.Command(bin, "cat", path)
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
	out, err = exec.Command(bin, "play", "-s", "1000", path).Output()
	if err != nil {
		t.Fatalf("asciinema play: %v", err)
	}
	if !strings.Contains(string(out), "hello \u2603 world") {
		t.Errorf("asciinema play: got %q, want the output", out)
	}
}

// TestCloseEndsWait: a channel waiting for room in the queue of a file
// whose disk hangs returns when the channel is closed (the session was
// killed), instead of holding its goroutine for ever.
func TestCloseEndsWait(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFile(pw, "pipe", FileHeader{SessionID: "gw1/s:1"}, Params{QueueBytes: 1 << 10, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
	var calls atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 512)
		for i := 0; ; i++ {
			for j := range chunk {
				chunk[j] = byte(i*7+j*13) | 0x20 // text, hardly compressible
			}
			c.Output(chunk)
			if calls.Add(1) > 1<<20 {
				return // the pipe never filled: the test fails below
			}
			select {
			case <-c.released:
				return
			default:
			}
		}
	}()
	var last int64 = -1
	for n := calls.Load(); n != last; n = calls.Load() {
		last = n
		time.Sleep(200 * time.Millisecond)
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Output still waiting after Close")
	}
	if calls.Load() > 1<<20 {
		t.Fatal("Output never waited")
	}
	pr.Close() // the writer fails with EPIPE and returns
	if err := f.Close(); !errors.Is(err, ErrStopped) {
		t.Errorf("Close: got %v, want ErrStopped (the pipe broke)", err)
	}
}
