package record

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// resizeData is the "r" event's data, COLSxROWS (asciicast v2).
var resizeData = regexp.MustCompile(`^[0-9]+x[0-9]+$`)

// castEvent is one asciicast v2 event.
type castEvent struct {
	t    float64
	code string
	data string
}

// castReader reads an asciicast v2 stream line by line, checking it.
type castReader struct {
	br    *bufio.Reader
	line  int
	lastT float64
}

func newCastReader(r io.Reader) *castReader { return &castReader{br: bufio.NewReader(r)} }

func (c *castReader) errorf(format string, args ...any) error {
	return fmt.Errorf("record: asciicast line %d: %s", c.line, fmt.Sprintf(format, args...))
}

// next returns the next line without its newline, or io.EOF.
func (c *castReader) next() ([]byte, error) {
	b, err := c.br.ReadBytes('\n')
	if len(b) == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("record: read asciicast: %w", err)
	}
	c.line++
	if !bytes.HasSuffix(b, []byte("\n")) && !json.Valid(b) {
		// The writer ends every line; a crash or a failed write does not.
		return nil, fmt.Errorf("%w at line %d", ErrTruncated, c.line)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	if !utf8.Valid(b) {
		return nil, c.errorf("not UTF-8")
	}
	return b, nil
}

// decodeOne decodes exactly one JSON value from b into v.
func decodeOne(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// header reads and checks the header line.
func (c *castReader) header() error {
	b, err := c.next()
	if errors.Is(err, io.EOF) {
		return errors.New("record: asciicast: empty stream")
	}
	if err != nil {
		return err
	}
	var h map[string]any
	if err := decodeOne(b, &h); err != nil || h == nil {
		return c.errorf("header is not a JSON object")
	}
	if v, ok := h["version"].(json.Number); !ok || v.String() != "2" {
		return c.errorf("version: got %v, want 2", h["version"])
	}
	for _, k := range []string{"width", "height"} {
		if n, ok := intField(h[k]); !ok || n <= 0 {
			return c.errorf("%s: got %v, want a positive integer", k, h[k])
		}
	}
	if v, ok := h["timestamp"]; ok {
		if _, ok := intField(v); !ok {
			return c.errorf("timestamp: got %v, want an integer", v)
		}
	}
	for _, k := range []string{"duration", "idle_time_limit"} {
		if v, ok := h[k]; ok {
			if f, ok := numField(v); !ok || f < 0 {
				return c.errorf("%s: got %v, want a non-negative number", k, v)
			}
		}
	}
	for _, k := range []string{"command", "title", "sluice_session_id", "sluice_user", "sluice_command"} {
		if v, ok := h[k]; ok {
			if _, ok := v.(string); !ok {
				return c.errorf("%s: got %v, want a string", k, v)
			}
		}
	}
	if v, ok := h["env"]; ok {
		env, ok := v.(map[string]any)
		if !ok {
			return c.errorf("env: got %v, want an object", v)
		}
		for k, s := range env {
			if _, ok := s.(string); !ok {
				return c.errorf("env.%s: got %v, want a string", k, s)
			}
		}
	}
	return nil
}

func numField(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

func intField(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

// event reads and checks the next event line, or returns io.EOF.
func (c *castReader) event() (castEvent, error) {
	b, err := c.next()
	if err != nil {
		return castEvent{}, err
	}
	var raw []any
	if err := decodeOne(b, &raw); err != nil || len(raw) != 3 {
		return castEvent{}, c.errorf("event is not a JSON array of three elements")
	}
	t, ok := numField(raw[0])
	if !ok || t < 0 {
		return castEvent{}, c.errorf("time: got %v, want a non-negative number", raw[0])
	}
	if t < c.lastT {
		return castEvent{}, c.errorf("time %v is before the previous event's %v", t, c.lastT)
	}
	c.lastT = t
	code, ok := raw[1].(string)
	if !ok {
		return castEvent{}, c.errorf("code: got %v, want a string", raw[1])
	}
	data, ok := raw[2].(string)
	if !ok {
		return castEvent{}, c.errorf("data: got %v, want a string", raw[2])
	}
	switch code {
	case "o", "i", "m":
	case "r":
		if !resizeData.MatchString(data) {
			return castEvent{}, c.errorf("resize data: got %q, want COLSxROWS", data)
		}
	default:
		return castEvent{}, c.errorf("code: got %q, want o, i, r or m", code)
	}
	return castEvent{t: t, code: code, data: data}, nil
}

// PlayOptions tune Play.
type PlayOptions struct {
	// Speed divides the recorded intervals (2 plays twice as fast).
	Speed float64
	// Sleep waits (nil: a timer that ends early with ctx).
	Sleep func(context.Context, time.Duration) error
	// Session, when set, plays only the channels of a recording whose
	// session id is Session or stacked in it (an asciicast file is played
	// whole).
	Session string
}

// Validate checks the recording r: a gzip recording written by File (see
// Reader), or an asciicast v2 stream (a header object with version 2,
// positive integer width and height and correctly typed optional keys,
// then events [time, code, data] with non-negative, non-decreasing times,
// a code among o, i, r, m and string data, "COLSxROWS" for r). A recording
// that ends early is an error wrapping ErrTruncated.
func Validate(r io.Reader) error {
	return Play(context.Background(), r, io.Discard, PlayOptions{Speed: 1, Sleep: noSleep})
}

func noSleep(context.Context, time.Duration) error { return nil }

// Play writes what the client was shown in the recording r to w, waiting
// between events their recorded interval divided by o.Speed: the "o" and
// "e" events, and for channels without a pty also "i" (the input a script
// sent, which no terminal echoed). Other events are skipped. A malformed
// recording is an error at its first bad line; one that ends early is
// played to its last whole event and then reported with ErrTruncated.
func Play(ctx context.Context, r io.Reader, w io.Writer, o PlayOptions) error {
	if !(o.Speed > 0) || math.IsInf(o.Speed, 0) {
		return fmt.Errorf("record: play speed %v, want a positive number", o.Speed)
	}
	if o.Sleep == nil {
		o.Sleep = sleepContext
	}
	br := bufio.NewReader(r)
	p := player{ctx: ctx, w: w, o: o}
	if isRecording(br) {
		return p.recording(br)
	}
	return p.cast(br)
}

// player plays one recording.
type player struct {
	ctx     context.Context
	w       io.Writer
	o       PlayOptions
	last    float64
	started bool
}

// play waits until t, then writes data.
func (p *player) play(t float64, data string) error {
	if !p.started {
		p.last, p.started = t, true
	}
	if d := toDuration((t - p.last) / p.o.Speed); d > 0 {
		if err := p.o.Sleep(p.ctx, d); err != nil {
			return fmt.Errorf("record: play: %w", err)
		}
	}
	p.last = t
	if _, err := io.WriteString(p.w, data); err != nil {
		return fmt.Errorf("record: play: %w", err)
	}
	return nil
}

func (p *player) cast(r io.Reader) error {
	c := newCastReader(r)
	if err := c.header(); err != nil {
		return err
	}
	p.last, p.started = 0, true // asciicast times count from the header's start
	for {
		if err := p.ctx.Err(); err != nil {
			return fmt.Errorf("record: play: %w", context.Cause(p.ctx))
		}
		e, err := c.event()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.code == "o" {
			if err := p.play(e.t, e.data); err != nil {
				return err
			}
		}
	}
}

func (p *player) recording(r io.Reader) error {
	rd, err := NewReader(r)
	if err != nil {
		return err
	}
	var selected []bool // by channel number
	for {
		if err := p.ctx.Err(); err != nil {
			return fmt.Errorf("record: play: %w", context.Cause(p.ctx))
		}
		e, ch, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if ch {
			c := rd.Channels[len(rd.Channels)-1]
			id := p.o.Session
			selected = append(selected, id == "" || c.SessionID == id || strings.HasPrefix(c.SessionID, strings.TrimSuffix(id, "/")+"/"))
			continue
		}
		if !selected[e.Channel] {
			continue
		}
		switch e.Code {
		case "o", "e":
		case "i":
			if rd.Channels[e.Channel].Pty {
				continue
			}
		default:
			continue
		}
		if err := p.play(e.Time, e.Data); err != nil {
			return err
		}
	}
}

// toDuration converts seconds, saturating where a Duration overflows.
func toDuration(sec float64) time.Duration {
	if ns := sec * float64(time.Second); ns < float64(math.MaxInt64) {
		return time.Duration(ns)
	}
	return math.MaxInt64
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
