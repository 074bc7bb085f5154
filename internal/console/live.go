package console

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
)

// tail is a recording file as the recorder writes it: Read waits for
// more (looking every poll) instead of reporting the file's end, until
// the session has ended and the file has been read to its end, or ctx is
// done. Before each wait it calls caughtUp: what has been written so far
// has been read.
type tail struct {
	ctx      context.Context
	f        io.Reader
	poll     time.Duration
	live     func() bool
	caughtUp func()
	ended    bool
}

func (t *tail) Read(p []byte) (int, error) {
	for {
		if err := t.ctx.Err(); err != nil {
			return 0, err // the viewer has gone, even while output flows
		}
		n, err := t.f.Read(p)
		if n > 0 || err != nil && !errors.Is(err, io.EOF) {
			return n, err
		}
		if t.ended {
			return 0, io.EOF
		}
		t.caughtUp()
		// The recorder finishes the file as the session ends: one more
		// read after that reads its last member.
		t.ended = !t.live()
		timer := time.NewTimer(t.poll)
		select {
		case <-t.ctx.Done():
			timer.Stop()
			return 0, t.ctx.Err()
		case <-timer.C:
		}
	}
}

// members reads the gzip members of src one after the other. Unlike
// gzip's own multistream reading, it hands over the whole of a member
// before it waits for the next one's header (gzip returns a member's last
// bytes with io.EOF, and would hold them while it read on).
type members struct {
	zr  *gzip.Reader
	src *bufio.Reader
}

func (m *members) Read(p []byte) (int, error) {
	for {
		n, err := m.zr.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
		// The member has ended: the next one, or io.EOF at the end.
		if err := m.zr.Reset(m.src); err != nil {
			return 0, err
		}
		m.zr.Multistream(false)
	}
}

// maxLiveLine bounds a line of the recording the live view reads; the
// recorder's are far shorter (an event holds one write of the session),
// and a longer one is skipped.
const maxLiveLine = 8 << 20

// follow decompresses the recording r (all its gzip members, each byte
// once, as it arrives) and hands each whole line to line, until line
// returns false. It returns nil then or at the recording's end, or why it
// stopped.
func follow(r io.Reader, line func([]byte) bool) error {
	src := bufio.NewReaderSize(r, 64<<10)
	zr, err := gzip.NewReader(src)
	if err != nil {
		return err
	}
	zr.Multistream(false)
	br := bufio.NewReaderSize(&members{zr: zr, src: src}, 64<<10)
	var long []byte
	skipping := false
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				long = append(long, b...)
				if skipping = len(long) > maxLiveLine; skipping {
					long = long[:0]
				}
			}
			continue
		case err != nil:
			if errors.Is(err, io.EOF) && len(b) == 0 && len(long) == 0 {
				return nil
			}
			return err
		case skipping:
			skipping = false
			continue
		case len(long) > 0:
			b = append(long, b...)
			long = long[:0]
		}
		if !line(b[:len(b)-1]) {
			return nil
		}
	}
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
	scratch []byte // an event being written
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
	if lw.channel < 0 {
		return
	}
	t, ch, code, data, ok := parseEvent(b)
	if !ok || ch != lw.channel {
		return
	}
	t = max(t-lw.start, 0)
	lw.last = t
	switch code {
	case 'o', 'e':
		if !lw.caught {
			var s string
			if json.Unmarshal(data, &s) == nil {
				lw.init.WriteString(s)
			}
			return
		}
		lw.sendEvent(t, 'o', data)
	case 'r':
		if !lw.caught {
			var s string
			var c, r int
			if json.Unmarshal(data, &s) == nil {
				if n, _ := fmt.Sscanf(s, "%dx%d", &c, &r); n == 2 && c > 0 && r > 0 {
					lw.cols, lw.rows = c, r
				}
			}
			return
		}
		lw.sendEvent(t, 'r', data)
	}
}

// sendEvent sends [t, "code", data], data being the JSON string it was
// in the recording: the output is passed on without decoding it.
func (lw *liveWriter) sendEvent(t float64, code byte, data []byte) {
	if lw.err != nil {
		return
	}
	b := append(lw.scratch[:0], "data: ["...)
	b = strconv.AppendFloat(b, t, 'f', 6, 64)
	b = append(b, ',', '"', code, '"', ',')
	b = append(b, data...)
	b = append(b, "]\n\n"...)
	_, lw.err = lw.w.Write(b)
	lw.scratch = b
}

// parseEvent reads an event line as the recorder writes it (see
// record's appendEvent): [TIME,CHANNEL,"C",DATA] with no spaces, TIME a
// finite number, CHANNEL a number, C one letter and DATA a JSON string,
// returned as it is (quoted and escaped). ok is false for anything else.
func parseEvent(b []byte) (t float64, ch int, code byte, data []byte, ok bool) {
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return 0, 0, 0, nil, false
	}
	rest := b[1 : len(b)-1]
	i := bytes.IndexByte(rest, ',')
	if i < 0 {
		return 0, 0, 0, nil, false
	}
	t, err := strconv.ParseFloat(string(rest[:i]), 64)
	if err != nil || math.IsNaN(t) || math.IsInf(t, 0) || !isJSONNumber(rest[:i]) {
		return 0, 0, 0, nil, false
	}
	rest = rest[i+1:]
	if i = bytes.IndexByte(rest, ','); i < 0 {
		return 0, 0, 0, nil, false
	}
	if ch, err = strconv.Atoi(string(rest[:i])); err != nil {
		return 0, 0, 0, nil, false
	}
	rest = rest[i+1:]
	if len(rest) < 4 || rest[0] != '"' || rest[2] != '"' || rest[3] != ',' || !isJSONString(rest[4:]) {
		return 0, 0, 0, nil, false
	}
	return t, ch, rest[1], rest[4:], true
}

// isJSONNumber reports whether b is made of what a JSON number may hold
// (RFC 8259 §6); strconv.ParseFloat has checked its shape, but it also
// takes "Inf", hex and underscores, which these letters leave out.
func isJSONNumber(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// isJSONString reports whether b is one JSON string (RFC 8259 §7): in
// quotes, with no control character, only JSON's escapes, and valid UTF-8.
func isJSONString(b []byte) bool {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return false
	}
	s := b[1 : len(b)-1]
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '"':
			return false
		case c == '\\':
			i++
			if i >= len(s) {
				return false
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+5 > len(s) {
					return false
				}
				for _, h := range s[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return utf8.Valid(s)
}

// fleetLiveEvery is how often, at most, a live view of a session another
// node of the fleet holds asks the fleet's registry whether it still
// does: the view ends at most that long after the session.
const fleetLiveEvery = time.Second

// liveness returns a check of whether master session id is live: held by
// this node or, when the Gateway is a FleetGateway, by another node of
// the fleet (asked at most every fleetLiveEvery; the last answer stands
// while the registry does not answer).
func (s *Server) liveness(ctx context.Context, master string) func() bool {
	local := func() bool {
		return slices.ContainsFunc(s.p.Gateway.LiveSessions(), func(l admin.Session) bool { return l.ID == master })
	}
	fg, ok := s.p.Gateway.(FleetGateway)
	if !ok {
		return local
	}
	var (
		asked time.Time
		held  bool
	)
	return func() bool {
		if local() {
			return true
		}
		if !asked.IsZero() && time.Since(asked) < fleetLiveEvery {
			return held
		}
		asked = time.Now()
		h, err := fg.FleetHolds(ctx, master)
		if err != nil {
			s.p.Logger.WarnContext(ctx, "console: live view: asking the fleet", "session_id", master, "err", err)
			return held
		}
		held = h
		return held
	}
}

// liveBatch is how long a live view gathers what the recorder hands it
// before it writes it out: a browser is not served a write per event.
const liveBatch = 50 * time.Millisecond

// errBehind says a live view fell behind the recorder's Follower.
var errBehind = errors.New("console: live view fell behind")

// view sends a live channel to lw: the recording at path up to its
// first skip lines (all of it when fl is nil), then the lines fl hands
// over as they come. It returns nil when the recording has ended,
// errBehind when fl has cut it off.
func (s *Server) view(ctx context.Context, lw *liveWriter, path string, fl *record.Follower, skip int64, isLive func() bool, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var n int64
	// With a Follower, the file has caught up only once it holds the
	// skip lines the recorder had taken when the Follower began: the
	// last of them may still sit in the recorder's unflushed member, and
	// a reset sent before them would leave them out of the screen.
	caughtUp := func() {
		if fl == nil || n >= skip {
			lw.idle()
		}
	}
	t := &tail{ctx: ctx, f: f, poll: s.p.LivePoll, live: isLive, caughtUp: caughtUp}
	err = follow(t, func(b []byte) bool {
		n++
		lw.line(b, want)
		return fl == nil || n < skip
	})
	if err != nil || fl == nil {
		return err
	}
	for {
		lw.idle()
		if lw.err != nil {
			return lw.err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fl.Ready():
		}
		lines, more := fl.Take()
		for _, l := range lines {
			lw.line(l[:len(l)-1], want)
		}
		if !more {
			if fl.Behind() {
				return errBehind
			}
			return nil
		}
		timer := time.NewTimer(liveBatch)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

func (s *Server) apiLive(w http.ResponseWriter, r *http.Request, who operator) {
	id := r.PathValue("id")
	master := masterID(id)
	isLive := s.liveness(r.Context(), master)
	if !isLive() {
		http.Error(w, "no such live session", http.StatusNotFound)
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
	var readWrite bool
	switch mode := r.URL.Query().Get("mode"); mode {
	case "", modeReadOnly:
	case modeReadWrite:
		readWrite = true
	default:
		badRequest(w, "bad mode %q: want %s or %s", mode, modeReadOnly, modeReadWrite)
		return
	}
	follow := func() (path string, fl *record.Follower, skip int64, stop func(), err error) {
		if rf, ok := s.p.Gateway.(RecordingFollower); ok {
			path, fl, skip, stop, err = rf.FollowRecording(master)
			if !errors.Is(err, admin.ErrNotFound) {
				return path, fl, skip, stop, err
			}
			// Not recording now: the file the store names, if any.
		}
		path, err = s.recordingFile(r, id)
		return path, nil, 0, func() {}, err
	}
	path, fl, skip, stop, err := follow()
	if errors.Is(err, errNoRecording) {
		http.Error(w, "this session is not recorded", http.StatusNotFound)
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	defer func() { stop() }()
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	att, jn, ok := s.attend(w, r, who, id, want, readWrite)
	if !ok {
		return
	}
	if att != nil {
		defer att.Leave()
	}
	if jn != nil {
		defer s.leave(r, who, jn)
	}
	s.auditEvent(r, "console.live", who, id, audit.Accept, "", nil)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	if jn != nil {
		// Where the browser sends the operator's keystrokes.
		b, _ := json.Marshal(map[string]string{"input": "/api/v1/sessions/" + url.PathEscape(id) + "/input?join=" + jn.token, "channel": jn.att.Channel()})
		fmt.Fprintf(bw, "event: join\ndata: %s\n\n", b)
	}
	bw.Flush()
	flusher.Flush()
	lw := &liveWriter{w: bw, flusher: flusher, channel: -1, cols: 80, rows: 24}
	for {
		err = s.view(r.Context(), lw, path, fl, skip, isLive, want)
		if !errors.Is(err, errBehind) {
			break
		}
		// Cut off for falling behind: start again from the file, with a
		// reset holding everything shown so far.
		stop()
		if path, fl, skip, stop, err = follow(); err != nil {
			break
		}
		lw = &liveWriter{w: bw, flusher: flusher, channel: -1, cols: 80, rows: 24}
	}
	switch {
	case r.Context().Err() != nil:
		return
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		s.p.Logger.WarnContext(r.Context(), "console: live view", "path", path, "err", err)
	}
	lw.idle()
	if lw.err == nil {
		// "done" tells the player the stream has ended, rather than
		// letting EventSource connect again.
		lw.w.WriteString("event: done\ndata: {}\n\n")
		lw.w.Flush()
		flusher.Flush()
	}
}
