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
	"time"
	"unicode/utf8"
)

// resizeData is the "r" event's data, COLSxROWS (asciicast v2).
var resizeData = regexp.MustCompile(`^[0-9]+x[0-9]+$`)

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
func (c *castReader) event() (event, error) {
	b, err := c.next()
	if err != nil {
		return event{}, err
	}
	var raw []any
	if err := decodeOne(b, &raw); err != nil || len(raw) != 3 {
		return event{}, c.errorf("event is not a JSON array of three elements")
	}
	t, ok := numField(raw[0])
	if !ok || t < 0 {
		return event{}, c.errorf("time: got %v, want a non-negative number", raw[0])
	}
	if t < c.lastT {
		return event{}, c.errorf("time %v is before the previous event's %v", t, c.lastT)
	}
	c.lastT = t
	code, ok := raw[1].(string)
	if !ok {
		return event{}, c.errorf("code: got %v, want a string", raw[1])
	}
	data, ok := raw[2].(string)
	if !ok {
		return event{}, c.errorf("data: got %v, want a string", raw[2])
	}
	switch code {
	case "o", "i", "m":
	case "r":
		if !resizeData.MatchString(data) {
			return event{}, c.errorf("resize data: got %q, want COLSxROWS", data)
		}
	default:
		return event{}, c.errorf("code: got %q, want o, i, r or m", code)
	}
	return event{t: t, code: code, data: data}, nil
}

// Validate checks that r is an asciicast v2 stream: a header object with
// version 2, positive integer width and height and correctly typed optional
// keys, then events [time, code, data] with non-negative, non-decreasing
// times, a code among o, i, r, m and string data ("COLSxROWS" for r).
func Validate(r io.Reader) error {
	c := newCastReader(r)
	if err := c.header(); err != nil {
		return err
	}
	for {
		if _, err := c.event(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// Play writes the "o" events of the asciicast v2 stream r to w, waiting
// between them their recorded interval divided by speed (2 plays twice as
// fast); other events are skipped. sleep waits (nil: a timer that ends early
// with ctx). A malformed stream is an error at its first bad line.
func Play(ctx context.Context, r io.Reader, w io.Writer, speed float64, sleep func(context.Context, time.Duration) error) error {
	if !(speed > 0) || math.IsInf(speed, 0) {
		return fmt.Errorf("record: play speed %v, want a positive number", speed)
	}
	if sleep == nil {
		sleep = sleepContext
	}
	c := newCastReader(r)
	if err := c.header(); err != nil {
		return err
	}
	var last float64
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("record: play: %w", context.Cause(ctx))
		}
		e, err := c.event()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.code != "o" {
			continue
		}
		if d := toDuration((e.t - last) / speed); d > 0 {
			if err := sleep(ctx, d); err != nil {
				return fmt.Errorf("record: play: %w", err)
			}
		}
		last = e.t
		if _, err := io.WriteString(w, e.data); err != nil {
			return fmt.Errorf("record: play: %w", err)
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
