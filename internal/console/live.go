package console

import (
	"bufio"
	"context"
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
	"github.com/sluice-ssh/sluice/internal/record"
)

// follower reads a recording file that is still being written: at its end
// it waits for more while the session is live, calling idle first (the
// reader has caught up); once the session has ended it reads what is left
// and then reports io.EOF.
type follower struct {
	ctx  context.Context
	f    *os.File
	live func() bool
	poll time.Duration
	idle func()
	done bool // the session has ended: the next EOF is the end
}

func (fl *follower) Read(p []byte) (int, error) {
	for {
		n, err := fl.f.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		if fl.done {
			return 0, io.EOF
		}
		fl.idle()
		if !fl.live() {
			// The recorder finishes the file as the session ends; one
			// more poll lets it.
			fl.done = true
		}
		t := time.NewTimer(fl.poll)
		select {
		case <-fl.ctx.Done():
			t.Stop()
			return 0, fl.ctx.Err()
		case <-t.C:
		}
	}
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

func (lw *liveWriter) event(e record.Event) {
	if e.Channel != lw.channel {
		return
	}
	t := e.Time - lw.start
	lw.last = t
	code := e.Code
	switch code {
	case "o", "e":
		code = "o"
		if !lw.caught {
			lw.init.WriteString(e.Data)
			return
		}
	case "r":
		if !lw.caught {
			var c, r int
			if n, _ := fmt.Sscanf(e.Data, "%dx%d", &c, &r); n == 2 && c > 0 && r > 0 {
				lw.cols, lw.rows = c, r
			}
			return
		}
	default:
		return
	}
	lw.send([]any{t, code, e.Data})
}

func (s *Server) apiLive(w http.ResponseWriter, r *http.Request, who operator) {
	id := r.PathValue("id")
	master := id
	if parts := strings.SplitN(id, "/", 3); len(parts) == 3 {
		master = parts[0] + "/" + parts[1]
	}
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
	fl := &follower{ctx: r.Context(), f: f, live: isLive, poll: s.p.LivePoll, idle: lw.idle}
	rd, err := record.NewReader(fl)
	if err != nil {
		return
	}
	for lw.err == nil {
		e, ch, err := rd.Next()
		if err != nil {
			break
		}
		if ch {
			c := rd.Channels[len(rd.Channels)-1]
			if lw.channel < 0 && (c.SessionID == want || want == "" && c.Pty) {
				lw.channel, lw.start, lw.cols, lw.rows = c.N, c.Time, c.Width, c.Height
			}
			continue
		}
		lw.event(e)
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
