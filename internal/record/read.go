package record

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// ErrTruncated is wrapped by the error of a reader that met the end of a
// recording in the middle of a line or gzip member, as a crash or a failed
// write leaves it: everything before was read.
var ErrTruncated = errors.New("record: recording ends early (truncated)")

// gzipMagic starts every gzip member (RFC 1952 §2.3.1).
var gzipMagic = []byte{0x1f, 0x8b}

// ChannelInfo is a channel's header read back from a recording.
type ChannelInfo struct {
	N         int
	SessionID string
	Time      float64 // seconds from the file's start
	Pty       bool
	Width     int
	Height    int
	Term      string
	Command   string
}

// Event is one event read back: seconds from the file's start, the
// channel's number, the code (o, e, i, r, m) and the data.
type Event struct {
	Time    float64
	Channel int
	Code    string
	Data    string
}

// Reader reads a recording written by File: gzip members of JSON lines.
// It checks every line and stops at the first it cannot parse.
type Reader struct {
	Header   FileHeader
	Start    int64         // the file header's timestamp, Unix seconds
	Channels []ChannelInfo // the channel headers read so far

	br    *bufio.Reader
	line  int
	lastT float64
}

// NewReader reads and checks the file header of the recording r.
func NewReader(r io.Reader) (*Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("record: not a gzip recording: %w", err)
	}
	rd := &Reader{br: bufio.NewReader(zr)}
	b, err := rd.next()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("record: empty recording")
	}
	if err != nil {
		return nil, err
	}
	var h struct {
		Format    *int    `json:"sluice_recording"`
		SessionID *string `json:"session_id"`
		User      string  `json:"user"`
		Timestamp int64   `json:"timestamp"`
	}
	if err := decodeStrict(b, &h); err != nil {
		return nil, rd.errorf("file header: %v", err)
	}
	if h.Format == nil || *h.Format != Format {
		return nil, rd.errorf("file header: want sluice_recording %d", Format)
	}
	if h.SessionID == nil || *h.SessionID == "" {
		return nil, rd.errorf("file header: no session_id")
	}
	rd.Header = FileHeader{SessionID: *h.SessionID, User: h.User}
	rd.Start = h.Timestamp
	return rd, nil
}

func (r *Reader) errorf(format string, args ...any) error {
	return fmt.Errorf("record: recording line %d: %s", r.line, fmt.Sprintf(format, args...))
}

// next returns the next whole line without its newline, io.EOF at the
// end, or an error wrapping ErrTruncated when the stream ends inside a
// line or a gzip member.
func (r *Reader) next() ([]byte, error) {
	b, err := r.br.ReadBytes('\n')
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && len(b) == 0:
		return nil, io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w after line %d", ErrTruncated, r.line)
	default:
		return nil, fmt.Errorf("record: read recording after line %d: %w", r.line, err)
	}
	r.line++
	b = b[:len(b)-1]
	if !utf8.Valid(b) {
		return nil, r.errorf("not UTF-8")
	}
	return b, nil
}

// decodeStrict decodes exactly one JSON value from b into v, refusing
// unknown object keys.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// Next returns the next event, io.EOF at the end of the recording, or an
// error (wrapping ErrTruncated for a recording that ends early). Channel
// headers are read on the way and appended to Channels; ch reports whether
// this call read one (the event is then the zero Event).
func (r *Reader) Next() (e Event, ch bool, err error) {
	b, err := r.next()
	if err != nil {
		return Event{}, false, err
	}
	if len(b) > 0 && b[0] == '{' {
		return Event{}, true, r.channel(b)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 4 {
		return Event{}, false, r.errorf("event is not a JSON array of four elements")
	}
	t, err := strconv.ParseFloat(string(raw[0]), 64)
	if err != nil || t < 0 || t > maxSeconds {
		return Event{}, false, r.errorf("time: got %s, want a non-negative number", raw[0])
	}
	if t < r.lastT {
		return Event{}, false, r.errorf("time %v is before the previous %v", t, r.lastT)
	}
	r.lastT = t
	n, err := strconv.Atoi(string(raw[1]))
	if err != nil || n < 0 || n >= len(r.Channels) {
		return Event{}, false, r.errorf("channel: got %s, want one whose header came before", raw[1])
	}
	e = Event{Time: t, Channel: n}
	if json.Unmarshal(raw[2], &e.Code) != nil || json.Unmarshal(raw[3], &e.Data) != nil {
		return Event{}, false, r.errorf("code and data: want strings")
	}
	switch e.Code {
	case "o", "e", "i", "m":
	case "r":
		if !resizeData.MatchString(e.Data) {
			return Event{}, false, r.errorf("resize data: got %q, want COLSxROWS", e.Data)
		}
	default:
		return Event{}, false, r.errorf("code: got %q, want o, e, i, r or m", e.Code)
	}
	return e, false, nil
}

// maxSeconds bounds event times (about 317 years): a larger one is not a
// time this writer wrote, and would overflow a Duration.
const maxSeconds = 1e10

func (r *Reader) channel(b []byte) error {
	var h channelHeaderJSON
	if err := decodeStrict(b, &h); err != nil {
		return r.errorf("channel header: %v", err)
	}
	switch {
	case h.Channel != len(r.Channels):
		return r.errorf("channel header: got channel %d, want %d", h.Channel, len(r.Channels))
	case h.SessionID == "":
		return r.errorf("channel header: no session_id")
	case h.Time < r.lastT || h.Time > maxSeconds:
		return r.errorf("channel header: time %v is before the previous %v", h.Time, r.lastT)
	case h.Width <= 0 || h.Height <= 0:
		return r.errorf("channel header: size %dx%d, want positive", h.Width, h.Height)
	}
	r.lastT = h.Time
	r.Channels = append(r.Channels, ChannelInfo{N: h.Channel, SessionID: h.SessionID, Time: h.Time, Pty: h.Pty,
		Width: h.Width, Height: h.Height, Term: h.Term, Command: h.Command})
	return nil
}

// isRecording reports whether br starts with a gzip member (a recording)
// rather than an asciicast header.
func isRecording(br *bufio.Reader) bool {
	b, _ := br.Peek(len(gzipMagic))
	return bytes.Equal(b, gzipMagic)
}

// WriteCast writes channel session of the recording r to w as an asciicast
// v2 file, which asciinema plays: the channel's header as the asciicast
// header, its events with times counted from the channel's start, stderr
// ("e") as output ("o"). A recording that ends early gives the events up
// to its end and an error wrapping ErrTruncated.
func WriteCast(r io.Reader, w io.Writer, session string) error {
	rd, err := NewReader(r)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	n := -1 // the channel's number, once its header is read
	var start float64
	var line []byte
	for {
		e, ch, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n >= 0 {
				_ = bw.Flush()
			}
			return err
		}
		if ch {
			c := rd.Channels[len(rd.Channels)-1]
			if n >= 0 || c.SessionID != session {
				continue
			}
			n, start = c.N, c.Time
			h := headerJSON{Version: 2, Width: c.Width, Height: c.Height, Timestamp: rd.Start + int64(c.Time),
				Command: c.Command, SluiceSessionID: c.SessionID, SluiceUser: rd.Header.User, SluiceCommand: c.Command}
			if c.Term != "" {
				h.Env = map[string]string{"TERM": c.Term}
			}
			b, _ := json.Marshal(h) // strings and numbers always encode
			bw.Write(append(b, '\n'))
			continue
		}
		if e.Channel != n {
			continue
		}
		code := e.Code
		if code == "e" {
			code = "o"
		}
		line = appendCastEvent(line[:0], e.Time-start, code, e.Data)
		bw.Write(line)
	}
	if n < 0 {
		return fmt.Errorf("record: no channel %q in the recording of %s", session, rd.Header.SessionID)
	}
	return bw.Flush()
}

// headerJSON is the asciicast v2 header, key order as asciinema writes it.
type headerJSON struct {
	Version         int               `json:"version"`
	Width           int               `json:"width"`
	Height          int               `json:"height"`
	Timestamp       int64             `json:"timestamp"`
	Command         string            `json:"command,omitempty"`
	Env             map[string]string `json:"env,omitempty"`
	SluiceSessionID string            `json:"sluice_session_id"`
	SluiceUser      string            `json:"sluice_user,omitempty"`
	SluiceCommand   string            `json:"sluice_command,omitempty"`
}

// appendCastEvent appends one asciicast v2 event line.
func appendCastEvent(b []byte, t float64, code, data string) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, max(t, 0), 'f', 6, 64)
	b = append(b, ", \""...)
	b = append(b, code...)
	b = append(b, "\", "...)
	s, _ := json.Marshal(data) // a string always encodes
	b = append(b, s...)
	return append(b, "]\n"...)
}
