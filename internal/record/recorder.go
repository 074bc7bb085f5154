package record

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults for Params.
const (
	DefaultFlushInterval = time.Second
	DefaultQueueBytes    = 4 << 20
	// DefaultMaxStreamBytes is the default cap on each stream of a channel
	// without a pty (record.max_bytes_per_stream).
	DefaultMaxStreamBytes = 1 << 20
	// Size written for a channel without a pty: the classic 80x24
	// terminal, as asciicast requires a size.
	defaultWidth, defaultHeight = 80, 24
	writeBufferSize             = 64 << 10
	// Format is the "sluice_recording" version of the file header.
	Format = 1
	// Ext ends the name of every recording file.
	Ext = ".rec.gz"
)

// ErrStopped is returned by File.Close after a write error stopped the
// recording; it wraps the cause passed to OnError.
var ErrStopped = errors.New("record: recording stopped")

// FileHeader describes the master session a File records.
type FileHeader struct {
	SessionID string // names the file; required
	User      string
}

// Header describes one recorded session channel.
type Header struct {
	SessionID string // the channel's stacked session id
	Pty       bool
	Width     int    // terminal size; 80x24 when zero
	Height    int    //
	Term      string // TERM from pty-req
	Command   string // exec: the command; "" for a shell
}

// Params tunes a File. The zero value is usable.
type Params struct {
	// Input records the keystrokes of pty channels ("i" events); they may
	// hold passwords typed at prompts, so it is off by default. The input
	// of channels without a pty is always recorded (up to MaxStreamBytes):
	// it is the commands a script sends.
	Input bool
	// MaxStreamBytes caps the bytes of each stream (stdin, stdout,
	// stderr) of a channel without a pty kept in the file; past it only
	// the stream's size and SHA-256 are kept (see Channel.Close). Zero
	// means DefaultMaxStreamBytes; negative means no cap.
	MaxStreamBytes int64
	// FlushInterval bounds how long an event stays in memory (default 1s):
	// the gzip member is then finished and written.
	FlushInterval time.Duration
	// QueueBytes bounds the event data waiting for the writer (default 4
	// MiB); a channel with more to record waits (backpressure).
	QueueBytes int
	// Hold makes a failed recording stop the data path: after a write
	// error, the channels' Input, Output and Stderr wait until the channel
	// is closed, so that nothing more is relayed unrecorded (fail_closed).
	Hold bool
	// Clock is the time source (default: the system clock).
	Clock Clock
	// OnError is called once, from the writer goroutine, when a write
	// error stops the recording. It must not block and must not call Close.
	OnError func(error)
}

// File is the recording of one master session: a concatenation of gzip
// members holding JSON lines (see the package doc). Its methods are safe
// for concurrent use. Close must be called; it stops the writer goroutine.
type File struct {
	path  string
	p     Params
	start time.Time
	f     sink

	mu           sync.Mutex // guards everything below
	room         *sync.Cond // on mu: the queue has room, or the file stopped
	lastT        float64
	channels     int
	pending      [][]byte // encoded lines
	pendingBytes int
	stopped      bool
	closed       bool
	cause        error         // why recording stopped
	failed       chan struct{} // closed when stopped
	wake         chan struct{}
	quit, done   chan struct{}
	closeOnce    sync.Once
	closeErr     error
	sum          string
	lines        int64                  // lines queued so far, the header's included
	followers    map[*Follower]struct{} // see Follow
}

// FileName is the base name of the recording of sessionID: the id with "/"
// as "_", ":" as "-" and other bytes outside [A-Za-z0-9._-] as "_", plus
// Ext. Create adds ".N" before Ext when the name is taken.
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
	return b.String() + Ext
}

// Create makes dir (0700) if needed, creates the recording file (0600,
// never overwriting one) and writes its header as the first gzip member.
func Create(dir string, h FileHeader, p Params) (*File, error) {
	if h.SessionID == "" {
		return nil, errors.New("record: empty session id")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	base := strings.TrimSuffix(FileName(h.SessionID), Ext)
	for n := 0; ; n++ {
		name := base + Ext
		if n > 0 {
			name = base + "." + strconv.Itoa(n) + Ext
		}
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) && n < 1000 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		r, err := newFile(f, path, h, p)
		if err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
		return r, nil
	}
}

// sink is where a File writes: an *os.File (tests wrap one to fail).
type sink interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
}

// fileHeaderJSON is the first line of a recording.
type fileHeaderJSON struct {
	Format    int    `json:"sluice_recording"`
	SessionID string `json:"session_id"`
	User      string `json:"user,omitempty"`
	Timestamp int64  `json:"timestamp"`
}

// newFile writes the header member to f and starts the writer goroutine.
func newFile(f sink, path string, h FileHeader, p Params) (*File, error) {
	if p.FlushInterval <= 0 {
		p.FlushInterval = DefaultFlushInterval
	}
	if p.QueueBytes <= 0 {
		p.QueueBytes = DefaultQueueBytes
	}
	if p.MaxStreamBytes == 0 {
		p.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if p.Clock == nil {
		p.Clock = systemClock{}
	}
	r := &File{
		path:   path,
		p:      p,
		start:  p.Clock.Now(),
		f:      f,
		failed: make(chan struct{}),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		lines:  1, // the header
	}
	r.room = sync.NewCond(&r.mu)
	line, err := json.Marshal(fileHeaderJSON{Format: Format, SessionID: h.SessionID, User: h.User, Timestamp: r.start.Unix()})
	if err != nil {
		return nil, fmt.Errorf("record: encode header: %w", err)
	}
	cw := &countWriter{w: f}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed) // a valid level
	if _, err := zw.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("record: write header: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("record: write header: %w", err)
	}
	go r.run(cw)
	return r, nil
}

// Path is the recording's file path.
func (r *File) Path() string { return r.path }

// Failed is closed when a write error has stopped the recording.
func (r *File) Failed() <-chan struct{} { return r.failed }

// Err is why the recording stopped, or nil.
func (r *File) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cause
}

// channelHeaderJSON starts a channel's events in the file.
type channelHeaderJSON struct {
	Channel   int     `json:"channel"`
	SessionID string  `json:"session_id"`
	Time      float64 `json:"time"`
	Pty       bool    `json:"pty"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	Term      string  `json:"term,omitempty"`
	Command   string  `json:"command,omitempty"`
	MaxBytes  int64   `json:"max_stream_bytes,omitempty"`
}

// Channel starts recording one session channel. A channel of a file that
// has stopped records nothing but still counts and hashes its streams.
func (r *File) Channel(h Header) *Channel {
	c := &Channel{f: r, pty: h.Pty, released: make(chan struct{})}
	if !h.Pty && r.p.MaxStreamBytes > 0 {
		c.max = r.p.MaxStreamBytes
	}
	c.in = stream{name: "stdin", code: "i", keep: !h.Pty || r.p.Input, h: sha256.New()}
	c.out = stream{name: "stdout", code: "o", keep: true, h: sha256.New()}
	c.err = stream{name: "stderr", code: "e", keep: true, h: sha256.New()}
	if h.Pty && !r.p.Input {
		// A hash of a few keystrokes would let a password be guessed.
		c.in.h = nil
	}
	hj := channelHeaderJSON{SessionID: h.SessionID, Pty: h.Pty, Width: h.Width, Height: h.Height,
		Term: h.Term, Command: h.Command, MaxBytes: c.max}
	if hj.Width <= 0 || hj.Height <= 0 {
		hj.Width, hj.Height = defaultWidth, defaultHeight
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c.n = r.channels
	r.channels++
	hj.Channel, hj.Time = c.n, r.nowLocked()
	line, _ := json.Marshal(hj) // strings and numbers always encode
	r.enqueueLocked(append(line, '\n'))
	return c
}

// nowLocked is the time since the file's start, never before the last
// event's. r.mu must be held.
func (r *File) nowLocked() float64 {
	t := r.p.Clock.Now().Sub(r.start).Seconds()
	if t < r.lastT {
		t = r.lastT
	}
	r.lastT = t
	return t
}

// event queues one event of channel ch, waiting while the queue is full
// (backpressure), and reports whether it was queued (not after a failure).
// It is stamped once queued, so that times never go backwards in the file.
// A closed channel (abort set) no longer waits.
func (r *File) event(ch int, code, data string, abort *atomic.Bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.stopped && !r.closed && !abort.Load() && r.pendingBytes > 0 && r.pendingBytes+len(data) > r.p.QueueBytes {
		r.room.Wait()
	}
	if r.stopped || r.closed {
		return false
	}
	r.enqueueLocked(appendEvent(nil, r.nowLocked(), ch, code, data))
	return true
}

// enqueueLocked adds a line for the writer. r.mu must be held.
func (r *File) enqueueLocked(line []byte) {
	if r.stopped || r.closed {
		return
	}
	r.pending = append(r.pending, line)
	r.pendingBytes += len(line)
	r.lines++
	for fl := range r.followers {
		fl.push(line)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// appendEvent appends one event line, [time, channel, code, data].
// encoding/json writes invalid UTF-8 as U+FFFD, so the line is always
// valid JSON.
func appendEvent(b []byte, t float64, ch int, code, data string) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, t, 'f', 6, 64)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(ch), 10)
	b = append(b, ",\""...)
	b = append(b, code...)
	b = append(b, "\","...)
	s, _ := json.Marshal(data) // a string always encodes
	b = append(b, s...)
	return append(b, "]\n"...)
}

// stopLocked ends recording with cause. r.mu must be held.
func (r *File) stopLocked(cause error) {
	if r.stopped {
		return
	}
	r.stopped = true
	r.cause = cause
	r.pending, r.pendingBytes = nil, 0
	r.room.Broadcast()
	r.endFollowersLocked()
	close(r.failed)
	if r.p.OnError != nil {
		r.p.OnError(cause)
	}
}

func (r *File) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := r.pending
	r.pending, r.pendingBytes = nil, 0
	r.room.Broadcast()
	return batch
}

// countWriter counts the bytes w took.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// run is the writer goroutine; it returns after quit, once the queue is
// written. Lines go into one gzip member until the flush, which finishes
// the member: the file on disk is then a valid gzip stream of whole lines.
// cw has counted the header member.
func (r *File) run(cw *countWriter) {
	defer close(r.done)
	good := cw.n // the file's size after its last whole member
	bw := bufio.NewWriterSize(cw, writeBufferSize)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed) // a valid level
	open := false                                    // a member is started
	lastFlush := r.start
	var timer Timer
	var timerC <-chan time.Time
	failed := false
	fail := func(err error) {
		failed = true
		// Leave the file as it was after the last whole member.
		_ = r.f.Truncate(good)
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
		if failed || !open {
			return
		}
		open = false
		if err := zw.Close(); err != nil {
			fail(err)
			return
		}
		if err := bw.Flush(); err != nil {
			fail(err)
			return
		}
		good = cw.n
	}
	for {
		quitting := false
		select {
		case <-r.wake:
		case <-timerC:
			timer, timerC = nil, nil
		case <-r.quit:
			quitting = true
		}
		for _, line := range r.take() {
			if failed {
				break
			}
			if !open {
				zw.Reset(bw)
				open = true
			}
			if _, err := zw.Write(line); err != nil {
				fail(err)
			}
		}
		switch {
		case quitting:
			flush()
			return
		case failed || !open:
		case r.p.Clock.Now().Sub(lastFlush) >= r.p.FlushInterval:
			flush()
		case timer == nil:
			timer = r.p.Clock.NewTimer(r.p.FlushInterval - r.p.Clock.Now().Sub(lastFlush))
			timerC = timer.C()
		}
	}
}

// Close writes and flushes the queue, closes the file, waits for the
// writer goroutine and computes the SHA-256 of the file as stored. Every
// Channel should be closed first. It returns an error wrapping ErrStopped
// if a write error stopped the recording.
func (r *File) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.room.Broadcast()
		r.endFollowersLocked()
		r.mu.Unlock()
		close(r.quit)
		<-r.done
		var errs []error
		if cause := r.Err(); cause != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrStopped, cause))
		}
		if err := r.f.Sync(); err != nil && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("record: sync %s: %w", r.path, err))
		}
		if err := r.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("record: close %s: %w", r.path, err))
		}
		sum, err := fileSHA256(r.path)
		if err != nil {
			errs = append(errs, err)
		}
		r.mu.Lock()
		r.sum = sum
		r.mu.Unlock()
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// SHA256 is the hex SHA-256 of the file as stored, once Close has
// returned; "" before, or if it could not be read.
func (r *File) SHA256() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sum
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("record: hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("record: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Channel records one session channel into its File. Input, Output and
// Stderr may each be called from their own goroutine, and wait while the
// file's queue is full. Close must be called.
type Channel struct {
	f        *File
	n        int   // the channel's number in the file
	pty      bool  //
	max      int64 // cap of each stream; 0: none
	in       stream
	out      stream
	err      stream
	released chan struct{} // closed by Close: ends Params.Hold
	closing  atomic.Bool   // set by Close: ends waits for the queue
	once     sync.Once
	sums     Streams
}

// stream is one direction of a channel's data.
type stream struct {
	mu     sync.Mutex
	name   string
	code   string
	keep   bool      // recorded at all
	h      hash.Hash // nil: not hashed
	bytes  int64     // all bytes seen
	taken  int64     // bytes within the cap
	kept   int64     // bytes recorded (queued for the file)
	cut    bool      // the cap was reached
	carry  []byte    // an incomplete UTF-8 sequence at the end
	closed bool
}

// Input records bytes from the client (see Params.Input).
func (c *Channel) Input(p []byte) { c.data(&c.in, p) }

// Output records bytes sent to the client.
func (c *Channel) Output(p []byte) { c.data(&c.out, p) }

// Stderr records bytes sent to the client's stderr.
func (c *Channel) Stderr(p []byte) { c.data(&c.err, p) }

// Resize records a window change.
func (c *Channel) Resize(w, h int) {
	c.f.event(c.n, "r", strconv.Itoa(w)+"x"+strconv.Itoa(h), &c.closing)
}

// Marker records a marker.
func (c *Channel) Marker(label string) { c.f.event(c.n, "m", label, &c.closing) }

// Path is the file's path.
func (c *Channel) Path() string { return c.f.path }

// data counts and hashes p and records it up to the cap, in whole UTF-8
// sequences; it marks where the cap cut the stream.
func (c *Channel) data(s *stream, p []byte) {
	if len(p) == 0 {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.bytes += int64(len(p))
	if s.h != nil {
		s.h.Write(p)
	}
	if s.keep && !s.cut {
		rec, cut := p, false
		if c.max > 0 && s.taken+int64(len(p)) > c.max {
			rec, cut = p[:c.max-s.taken], true
		}
		s.taken += int64(len(rec))
		data := append(s.carry, rec...)
		n := len(data)
		if !cut {
			n = completePrefix(data)
		}
		s.carry = append(s.carry[:0], data[n:]...)
		if n > 0 && c.f.event(c.n, s.code, string(data[:n]), &c.closing) {
			s.kept += int64(n)
		}
		if cut {
			s.cut = true
			c.f.event(c.n, "m", fmt.Sprintf("sluice: %s cut at %d bytes; its size and SHA-256 are in the channel.end audit event", s.name, c.max), &c.closing)
		}
	}
	s.mu.Unlock()
	if c.f.p.Hold {
		select {
		case <-c.f.failed:
			<-c.released
		default:
		}
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

// StreamSum accounts for one whole stream of a channel.
type StreamSum struct {
	Bytes    int64  // every byte relayed
	SHA256   string // hex, of every byte; "" when not hashed
	Recorded int64  // the bytes handed to the file (none after a write failure)
}

// Streams are a channel's stream sums.
type Streams struct {
	Stdin, Stdout, Stderr StreamSum
}

// Detail is s as an audit event detail: stream name to {"bytes",
// "sha256", "recorded"}.
func (s Streams) Detail() map[string]any {
	d := make(map[string]any, 3)
	for name, ss := range map[string]StreamSum{"stdin": s.Stdin, "stdout": s.Stdout, "stderr": s.Stderr} {
		m := map[string]any{"bytes": ss.Bytes, "recorded": ss.Recorded}
		if ss.SHA256 != "" {
			m["sha256"] = ss.SHA256
		}
		d[name] = m
	}
	return d
}

// Close records what is left of split characters, ends Params.Hold and
// returns the channel's stream sums. Data after Close is ignored; data
// calls waiting for room in the queue return (so that a channel ended from
// outside is not held by a disk that hangs).
func (c *Channel) Close() Streams {
	c.once.Do(func() {
		c.closing.Store(true)
		c.f.mu.Lock()
		c.f.room.Broadcast()
		c.f.mu.Unlock()
		close(c.released)
		sum := func(s *stream) StreamSum {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.closed = true
			if len(s.carry) > 0 && c.f.event(c.n, s.code, string(s.carry), &c.closing) {
				s.kept += int64(len(s.carry))
			}
			s.carry = nil
			ss := StreamSum{Bytes: s.bytes, Recorded: s.kept}
			if s.h != nil {
				ss.SHA256 = hex.EncodeToString(s.h.Sum(nil))
			}
			return ss
		}
		c.sums = Streams{Stdin: sum(&c.in), Stdout: sum(&c.out), Stderr: sum(&c.err)}
	})
	return c.sums
}
