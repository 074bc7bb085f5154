package console

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
)

// follower reads a recording file that is still being written, one
// finished gzip member at a time (the recorder finishes one at least every
// flush interval); a member not yet whole is left for the next poll.
type follower struct {
	f       *os.File
	pending []byte // compressed bytes not yet a whole member
	partial []byte // decompressed text after the last newline
	buf     []byte
}

// errCorrupt is a recording that cannot be followed.
var errCorrupt = errors.New("console: recording is not a gzip recording")

// poll reads what the file has gained and calls line for each whole line
// of the members finished since the last poll.
func (fl *follower) poll(line func([]byte)) error {
	if fl.buf == nil {
		fl.buf = make([]byte, 64<<10)
	}
	for {
		n, err := fl.f.Read(fl.buf)
		fl.pending = append(fl.pending, fl.buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	for len(fl.pending) > 0 {
		// A bytes.Reader is an io.ByteReader, so gzip reads no further
		// than the member's end.
		br := bytes.NewReader(fl.pending)
		zr, err := gzip.NewReader(br)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		zr.Multistream(false)
		text, err := io.ReadAll(zr)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil // the member is still being written
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		fl.pending = fl.pending[len(fl.pending)-br.Len():]
		fl.partial = append(fl.partial, text...)
		for {
			i := bytes.IndexByte(fl.partial, '\n')
			if i < 0 {
				break
			}
			line(fl.partial[:i])
			fl.partial = fl.partial[i+1:]
		}
	}
	fl.pending = slices.Clip(fl.pending)
	return nil
}

// liveChannel is the part of a channel header line the live view reads.
type liveChannel struct {
	Channel   *int    `json:"channel"`
	SessionID string  `json:"session_id"`
	Time      float64 `json:"time"`
	Pty       bool    `json:"pty"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
}

// liveWriter sends a channel's recording to the browser as server-sent
// events in asciinema-player's eventsource format: first a reset
// {"cols","rows","time","init"} holding everything shown so far, then
// [time, "o"|"r", data] events, flushed whenever the reader catches up.
type liveWriter struct {
	w       *bufio.Writer
	flusher http.Flusher
	channel int // -1 until the channel's header is read
	start   float64
	cols    int
	rows    int
	caught  bool            // the reset has been sent
	init    strings.Builder // output before the reset
	last    float64
	err     error
}

func (lw *liveWriter) send(v any) {
	if lw.err != nil {
		return
	}
	b, _ := json.Marshal(v) // strings, numbers and arrays of them
	lw.w.WriteString("data: ")
	lw.w.Write(b)
	_, lw.err = lw.w.WriteString("\n\n")
}

// idle is called when the reader has read all there is for now.
func (lw *liveWriter) idle() {
	if lw.channel < 0 {
		return
	}
	if !lw.caught {
		lw.caught = true
		lw.send(map[string]any{"cols": lw.cols, "rows": lw.rows, "time": lw.last, "init": lw.init.String()})
		lw.init.Reset()
	}
	if lw.err == nil {
		lw.err = lw.w.Flush()
		lw.flusher.Flush()
	}
}

// line takes one line of the recording: the channel's header, or one of
// its events [time, channel, code, data]; others are skipped, as is what
// does not parse.
func (lw *liveWriter) line(b []byte, want string) {
	if len(b) == 0 {
		return
	}
	if b[0] == '{' {
		var c liveChannel
		if lw.channel >= 0 || json.Unmarshal(b, &c) != nil || c.Channel == nil {
			return
		}
		if c.SessionID == want || want == "" && c.Pty {
			lw.channel, lw.start = *c.Channel, c.Time
			if c.Width > 0 && c.Height > 0 {
				lw.cols, lw.rows = c.Width, c.Height
			}
		}
		return
	}
	var ev struct {
		t    float64
		ch   int
		code string
		data string
	}
	var raw []json.RawMessage
	if lw.channel < 0 || json.Unmarshal(b, &raw) != nil || len(raw) != 4 ||
		json.Unmarshal(raw[0], &ev.t) != nil || json.Unmarshal(raw[1], &ev.ch) != nil ||
		json.Unmarshal(raw[2], &ev.code) != nil || json.Unmarshal(raw[3], &ev.data) != nil || ev.ch != lw.channel {
		return
	}
	t := max(ev.t-lw.start, 0)
	lw.last = t
	code := ev.code
	switch code {
	case "o", "e":
		code = "o"
		if !lw.caught {
			lw.init.WriteString(ev.data)
			return
		}
	case "r":
		if !lw.caught {
			var c, r int
			if n, _ := fmt.Sscanf(ev.data, "%dx%d", &c, &r); n == 2 && c > 0 && r > 0 {
				lw.cols, lw.rows = c, r
			}
			return
		}
	default:
		return
	}
	lw.send([]any{t, code, ev.data})
}

func (s *Server) apiLive(w http.ResponseWriter, r *http.Request, who operator) {
	id := r.PathValue("id")
	master := masterID(id)
	isLive := func() bool {
		return slices.ContainsFunc(s.p.Gateway.LiveSessions(), func(l admin.Session) bool { return l.ID == master })
	}
	if !isLive() {
		http.Error(w, "no such live session", http.StatusNotFound)
		return
	}
	path, err := s.recordingFile(r, id)
	if errors.Is(err, errNoRecording) {
		http.Error(w, "this session is not recorded", http.StatusNotFound)
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	want := r.URL.Query().Get("channel")
	if want != "" && want != id && !strings.HasPrefix(want, id+"/") {
		http.Error(w, "channel is not in this session", http.StatusNotFound)
		return
	}
	if want == "" && strings.Count(id, "/") > 1 {
		want = id
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "recording unreadable", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	s.auditEvent(r, "console.live", who, id, audit.Accept, "", nil)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	lw := &liveWriter{w: bufio.NewWriter(w), flusher: flusher, channel: -1, cols: 80, rows: 24}
	fl := &follower{f: f}
	ended := false
	for lw.err == nil {
		if err := fl.poll(func(b []byte) { lw.line(b, want) }); err != nil {
			s.p.Logger.WarnContext(r.Context(), "console: live view", "path", path, "err", err)
			break
		}
		lw.idle()
		if ended {
			break
		}
		// The recorder finishes the file as the session ends: one more
		// poll after that reads its last member.
		ended = !isLive()
		t := time.NewTimer(s.p.LivePoll)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if lw.err == nil {
		// "done" tells the player the stream has ended, rather than
		// letting EventSource connect again.
		lw.w.WriteString("event: done\ndata: {}\n\n")
		lw.w.Flush()
		flusher.Flush()
	}
}
