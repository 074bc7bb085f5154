package record

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults for Params.
const (
	DefaultFlushInterval = time.Second
	DefaultQueueBytes    = 4 << 20
	// Size used when the session has no pty (exec without pty-req): the
	// classic 80x24 terminal, as asciinema requires a size.
	defaultWidth, defaultHeight = 80, 24
	writeBufferSize             = 64 << 10
)

// ErrOverflow is passed to OnError when events arrive faster than the disk
// takes them and the queue (Params.QueueBytes) is full.
var ErrOverflow = errors.New("record: queue overflow")

// ErrStopped is returned by Close after a write error or overflow stopped
// the recording; it wraps the cause passed to OnError.
var ErrStopped = errors.New("record: recording stopped")

// Header describes the recorded session.
type Header struct {
	Width, Height int       // terminal size; 80x24 when zero (no pty)
	Timestamp     time.Time // session start; the clock's now when zero
	Term          string    // TERM from pty-req
	Shell         string    // SHELL, if known
	SessionID     string    // names the file; required
	User          string
	Command       string // exec sessions: the command
	Title         string
}

// Params tunes a Recorder. The zero value is usable.
type Params struct {
	// Input records the client's keystrokes ("i" events); they may hold
	// passwords typed at prompts, so it is off by default.
	Input bool
	// FlushInterval bounds how long an event stays in memory (default 1s).
	FlushInterval time.Duration
	// QueueBytes bounds the event data waiting for the writer (default 4 MiB).
	QueueBytes int
	// Clock is the time source (default: the system clock).
	Clock Clock
	// OnError is called once, from the data path or the writer goroutine,
	// when the recording stops (write error, ErrOverflow). It must not block
	// and must not call Close.
	OnError func(error)
}

// Recorder writes one asciicast v2 file. Its methods are safe for
// concurrent use; Output, Input, Stderr, Resize and Marker never wait for
// the disk. Close must be called; it stops the writer goroutine.
type Recorder struct {
	path  string
	p     Params
	start time.Time
	f     io.WriteCloser

	mu                      sync.Mutex // guards everything below
	lastT                   float64
	carryOut, carryErr, cIn []byte
	pending                 []event
	pendingBytes            int
	stopped, closed         bool
	cause                   error // why recording stopped
	onErr                   sync.Once
	wake, quit, done        chan struct{}
	closeOnce               sync.Once
	closeErr                error
}

type event struct {
	t    float64
	code string
	data string
}

// FileName is the base name of the recording of sessionID: the id with "/"
// as "_", ":" as "-" and other bytes outside [A-Za-z0-9._-] as "_", plus
// ".cast". Create adds ".N" before ".cast" when the name is taken.
func FileName(sessionID string) string {
	var b strings.Builder
	for i := 0; i < len(sessionID) && i < 200; i++ {
		switch c := sessionID[i]; {
		case c == ':':
			b.WriteByte('-')
		case c == '.' && i == 0:
			b.WriteByte('_')
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + ".cast"
}

// Create makes dir (0700) if needed, creates the recording file (0600,
// never overwriting one) and writes its header.
func Create(dir string, h Header, p Params) (*Recorder, error) {
	if h.SessionID == "" {
		return nil, errors.New("record: empty session id")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	base := strings.TrimSuffix(FileName(h.SessionID), ".cast")
	for n := 0; ; n++ {
		name := base + ".cast"
		if n > 0 {
			name = base + "." + strconv.Itoa(n) + ".cast"
		}
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) && n < 1000 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		r, err := newRecorder(f, path, h, p)
		if err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
		return r, nil
	}
}

// newRecorder writes the header to f and starts the writer goroutine.
func newRecorder(f io.WriteCloser, path string, h Header, p Params) (*Recorder, error) {
	if p.FlushInterval <= 0 {
		p.FlushInterval = DefaultFlushInterval
	}
	if p.QueueBytes <= 0 {
		p.QueueBytes = DefaultQueueBytes
	}
	if p.Clock == nil {
		p.Clock = systemClock{}
	}
	r := &Recorder{
		path:  path,
		p:     p,
		start: p.Clock.Now(),
		f:     f,
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	line, err := encodeHeader(h, r.start)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(line); err != nil {
		return nil, fmt.Errorf("record: write header: %w", err)
	}
	go r.run()
	return r, nil
}

// headerJSON is the asciicast v2 header, key order as asciinema writes it.
type headerJSON struct {
	Version         int               `json:"version"`
	Width           int               `json:"width"`
	Height          int               `json:"height"`
	Timestamp       int64             `json:"timestamp"`
	Command         string            `json:"command,omitempty"`
	Title           string            `json:"title,omitempty"`
	Env             map[string]string `json:"env,omitempty"`
	SluiceSessionID string            `json:"sluice_session_id"`
	SluiceUser      string            `json:"sluice_user,omitempty"`
	SluiceCommand   string            `json:"sluice_command,omitempty"`
}

func encodeHeader(h Header, now time.Time) ([]byte, error) {
	hj := headerJSON{
		Version: 2, Width: h.Width, Height: h.Height, Timestamp: h.Timestamp.Unix(),
		Command: h.Command, Title: h.Title,
		SluiceSessionID: h.SessionID, SluiceUser: h.User, SluiceCommand: h.Command,
	}
	if hj.Width <= 0 || hj.Height <= 0 {
		hj.Width, hj.Height = defaultWidth, defaultHeight
	}
	if h.Timestamp.IsZero() {
		hj.Timestamp = now.Unix()
	}
	if h.Term != "" || h.Shell != "" {
		hj.Env = map[string]string{}
		if h.Term != "" {
			hj.Env["TERM"] = h.Term
		}
		if h.Shell != "" {
			hj.Env["SHELL"] = h.Shell
		}
	}
	b, err := json.Marshal(hj)
	if err != nil {
		return nil, fmt.Errorf("record: encode header: %w", err)
	}
	return append(b, '\n'), nil
}

// Path is the recording's file path.
func (r *Recorder) Path() string { return r.path }

// Output records bytes sent to the client.
func (r *Recorder) Output(p []byte) { r.record("o", &r.carryOut, p) }

// Stderr records a non-pty session's stderr, as "o" (see the package doc).
func (r *Recorder) Stderr(p []byte) { r.record("o", &r.carryErr, p) }

// Input records bytes from the client when Params.Input is set.
func (r *Recorder) Input(p []byte) {
	if r.p.Input {
		r.record("i", &r.cIn, p)
	}
}

// Resize records a window change.
func (r *Recorder) Resize(w, h int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enqueue("r", strconv.Itoa(w)+"x"+strconv.Itoa(h))
}

// Marker records a marker (asciinema play can pause at markers).
func (r *Recorder) Marker(label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enqueue("m", label)
}

// record appends p to the stream's carried bytes and queues everything up
// to the last complete UTF-8 sequence.
func (r *Recorder) record(code string, carry *[]byte, p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.closed {
		return
	}
	data := append(*carry, p...)
	n := completePrefix(data)
	*carry = append([]byte(nil), data[n:]...)
	if n > 0 {
		r.enqueue(code, string(data[:n]))
	}
}

// completePrefix returns the length of b without a trailing incomplete
// UTF-8 sequence (at most utf8.UTFMax-1 bytes that could still become a
// character). Invalid bytes count as complete.
func completePrefix(b []byte) int {
	lo := max(0, len(b)-utf8.UTFMax+1)
	for i := len(b) - 1; i >= lo; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// enqueue adds an event stamped now. r.mu must be held.
func (r *Recorder) enqueue(code, data string) {
	if r.stopped || r.closed {
		return
	}
	t := r.p.Clock.Now().Sub(r.start).Seconds()
	if t < r.lastT {
		t = r.lastT
	}
	r.lastT = t
	if r.pendingBytes+len(data) > r.p.QueueBytes {
		r.stopLocked(ErrOverflow)
		return
	}
	r.pending = append(r.pending, event{t: t, code: code, data: data})
	r.pendingBytes += len(data)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// stopLocked ends recording with cause. r.mu must be held.
func (r *Recorder) stopLocked(cause error) {
	if r.stopped {
		return
	}
	r.stopped = true
	r.cause = cause
	r.pending, r.pendingBytes = nil, 0
	r.onErr.Do(func() {
		if r.p.OnError != nil {
			r.p.OnError(cause)
		}
	})
}

func (r *Recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := r.pending
	r.pending, r.pendingBytes = nil, 0
	return batch
}

// run is the writer goroutine; it returns after quit, once the queue is written.
func (r *Recorder) run() {
	defer close(r.done)
	bw := bufio.NewWriterSize(r.f, writeBufferSize)
	lastFlush := r.start // the header went straight to the file
	var timer Timer
	var timerC <-chan time.Time
	failed := false
	fail := func(err error) {
		failed = true
		r.mu.Lock()
		r.stopLocked(fmt.Errorf("record: write %s: %w", r.path, err))
		r.mu.Unlock()
	}
	flush := func() {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		lastFlush = r.p.Clock.Now()
		if err := bw.Flush(); err != nil && !failed {
			fail(err)
		}
	}
	var line []byte
	for {
		quitting := false
		select {
		case <-r.wake:
		case <-timerC:
			timer, timerC = nil, nil
		case <-r.quit:
			quitting = true
		}
		for _, e := range r.take() {
			if failed {
				break
			}
			line = appendEvent(line[:0], e)
			if _, err := bw.Write(line); err != nil {
				fail(err)
			}
		}
		switch {
		case quitting:
			flush()
			return
		case failed || bw.Buffered() == 0:
		case r.p.Clock.Now().Sub(lastFlush) >= r.p.FlushInterval:
			flush()
		case timer == nil:
			timer = r.p.Clock.NewTimer(r.p.FlushInterval - r.p.Clock.Now().Sub(lastFlush))
			timerC = timer.C()
		}
	}
}

// appendEvent appends e as one asciicast line. encoding/json writes invalid
// UTF-8 as U+FFFD, so the line is always valid JSON.
func appendEvent(b []byte, e event) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, e.t, 'f', 6, 64)
	b = append(b, ", \""...)
	b = append(b, e.code...)
	b = append(b, "\", "...)
	s, _ := json.Marshal(e.data) // a string always encodes
	b = append(b, s...)
	return append(b, "]\n"...)
}

// Close records what is left of split characters, writes and flushes the
// queue, closes the file and waits for the writer goroutine. It returns an
// error wrapping ErrStopped if recording stopped early.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		for _, c := range []*[]byte{&r.carryOut, &r.carryErr} {
			if len(*c) > 0 {
				r.enqueue("o", string(*c))
			}
		}
		if len(r.cIn) > 0 {
			r.enqueue("i", string(r.cIn))
		}
		r.closed = true
		r.mu.Unlock()
		close(r.quit)
		<-r.done
		r.mu.Lock()
		cause := r.cause
		r.mu.Unlock()
		var errs []error
		if cause != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrStopped, cause))
		}
		if err := r.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("record: close %s: %w", r.path, err))
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}
