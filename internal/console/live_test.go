package console

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/record"
)

// sseReader reads the data lines of a server-sent event stream.
type sseReader struct {
	t  *testing.T
	sc *bufio.Scanner
}

// next returns the next event's name ("" for message) and data.
func (r *sseReader) next() (string, string) {
	r.t.Helper()
	name, data := "", ""
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	r.t.Fatalf("stream ended: %v", r.sc.Err())
	return "", ""
}

func TestAPILive(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := w.session(1, "alice", "db:22", 0, true)
	_, f := w.recordSession(id, "before ", "joining\r\n")
	req, _ := http.NewRequest("GET", w.base+"/api/v1/sessions/"+esc(id)+"/live", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := w.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("live: got %s", resp.Status)
	}
	r := &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
	// The reset holds what was shown before the viewer came.
	_, data := r.next()
	var reset struct {
		Cols, Rows int
		Init       string
	}
	if err := json.Unmarshal([]byte(data), &reset); err != nil || reset.Cols != 100 || reset.Rows != 30 || reset.Init != "before joining\r\n" {
		t.Fatalf("reset: got %+v, %v from %q", reset, err, data)
	}
	// Output written now arrives as events.
	w.chans[0].Output([]byte("after"))
	w.chans[0].Resize(120, 40)
	var got []string
	for len(got) < 2 {
		_, data := r.next()
		var ev []any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %q: %v", data, err)
		}
		got = append(got, ev[1].(string)+":"+ev[2].(string))
	}
	if got[0] != "o:after" || got[1] != "r:120x40" {
		t.Fatalf("events: got %v, want [o:after r:120x40]", got)
	}
	// The session ends: the stream says done.
	w.closeRecordings(f)
	w.gw.end(id)
	if name, _ := r.next(); name != "done" {
		t.Fatalf("after the end: got event %q, want done", name)
	}
	// A session that is not live has no live view.
	req, _ = http.NewRequest("GET", w.base+"/api/v1/sessions/"+esc(id)+"/live", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp2, err := w.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 404 {
		t.Fatalf("live view of an ended session: got %d, want 404", resp2.StatusCode)
	}
}

// FuzzLiveView feeds the live view a recording file it reads as it is
// written: text (the recording's lines, gzip-compressed in members cut at
// split) and then raw bytes the recorder never wrote. Whatever the file
// holds, the view does not panic, and what it sends the browser is
// well-formed: a reset object first, then [time, "o"|"r", data] events
// with a time that is not negative.
func FuzzLiveView(f *testing.F) {
	hdr := `{"sluice_recording":1,"session_id":"gw1/ssh-in:1","user":"alice","timestamp":1772359200}` + "\n" +
		`{"channel":0,"session_id":"gw1/ssh-in:1/ssh/session:0","time":0.5,"pty":true,"width":100,"height":30,"term":"xterm"}` + "\n"
	f.Add(hdr+`[0.6,0,"o","hello "]`+"\n"+`[0.7,0,"r","120x40"]`+"\n"+`[0.8,0,"o","world\r\n"]`+"\n", uint(40), []byte(nil))
	f.Add(hdr+`[0.1,0,"e","before start"]`+"\n"+`[1e308,0,"o","x"]`+"\n"+`[-1,0,"o","y"]`+"\n", uint(10), []byte{0x1f, 0x8b, 8, 0})
	f.Add(hdr+`[0.6,1,"o","other channel"]`+"\n"+`[0.6,0,"i","input"]`+"\n"+`[0.6,0,"o"]`+"\n"+`{"channel":"x"}`+"\n", uint(0), []byte("not gzip"))
	f.Add(`{"channel":0,"session_id":"s","time":-5,"pty":true,"width":-1,"height":0}`+"\n"+`[0,0,"r","0x0"]`+"\n"+`[0,0,"o","\u0000"]`+"\n", uint(3), []byte(nil))
	f.Fuzz(func(t *testing.T, text string, split uint, raw []byte) {
		path := filepath.Join(t.TempDir(), "rec.gz")
		file, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		cut := int(split % uint(len(text)+1))
		for _, part := range []string{text[:cut], text[cut:]} {
			zw := gzip.NewWriter(file)
			zw.Write([]byte(part))
			zw.Close()
		}
		file.Write(raw)
		in, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		rec := httptest.NewRecorder()
		lw := &liveWriter{w: bufio.NewWriter(rec), flusher: rec, channel: -1, cols: 80, rows: 24}
		tl := &tail{ctx: context.Background(), f: in, live: func() bool { return false }, caughtUp: lw.idle}
		if err := follow(tl, func(b []byte) bool { lw.line(b, ""); return true }); errors.Is(err, context.Canceled) {
			t.Fatalf("follow: %v", err)
		}
		lw.idle()
		for i, ev := range strings.Split(strings.TrimSuffix(rec.Body.String(), "\n\n"), "\n\n") {
			if ev == "" {
				continue
			}
			data, ok := strings.CutPrefix(ev, "data: ")
			if !ok || strings.Contains(data, "\n") {
				t.Fatalf("event %d: got %q, want one data line", i, ev)
			}
			if i == 0 {
				var reset struct {
					Cols, Rows *int
					Time       *float64
					Init       *string
				}
				if err := json.Unmarshal([]byte(data), &reset); err != nil || reset.Cols == nil || reset.Rows == nil || reset.Time == nil || reset.Init == nil || *reset.Cols <= 0 || *reset.Rows <= 0 {
					t.Fatalf("first event: got %q (%v), want a reset", data, err)
				}
				continue
			}
			var e []any
			if err := json.Unmarshal([]byte(data), &e); err != nil || len(e) != 3 {
				t.Fatalf("event %d: got %q (%v), want [time, code, data]", i, data, err)
			}
			tm, ok1 := e[0].(float64)
			code, ok2 := e[1].(string)
			_, ok3 := e[2].(string)
			if !ok1 || !ok2 || !ok3 || tm < 0 || (code != "o" && code != "r") {
				t.Fatalf("event %d: got %q, want [time ≥ 0, o|r, data]", i, data)
			}
		}
	})
}

// TestAPILiveFollower: a live view takes the recorder's lines as they are
// queued; one that falls further behind than its queue starts again from
// the file with a reset holding everything so far, and the session never
// waits for it.
func TestAPILiveFollower(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := w.session(1, "alice", "db:22", 0, true)
	_, f := w.recordSession(id, "before\r\n")
	w.gw.mu.Lock()
	w.gw.files, w.gw.queue = map[string]*record.File{id: f}, 4<<10
	w.gw.mu.Unlock()
	req, _ := http.NewRequest("GET", w.base+"/api/v1/sessions/"+esc(id)+"/live", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := w.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
	r.sc.Buffer(nil, 1<<20)
	var reset struct{ Init string }
	if _, data := r.next(); json.Unmarshal([]byte(data), &reset) != nil || reset.Init != "before\r\n" {
		t.Fatalf("first reset: got %q, want the output so far", data)
	}
	w.chans[0].Output([]byte("after"))
	if _, data := r.next(); data == "" || !strings.Contains(data, `"o","after"`) {
		t.Fatalf("event: got %q, want the output after", data)
	}
	// 64 KiB at once: far more than the follower's 4 KiB queue.
	big := strings.Repeat("0123456789abcdef", 4<<10)
	for i := 0; i < len(big); i += 1 << 10 {
		w.chans[0].Output([]byte(big[i : i+1<<10]))
	}
	w.chans[0].Output([]byte("END"))
	seen, resets := "", 0
	for !strings.HasSuffix(seen, "END") {
		_, data := r.next()
		if strings.HasPrefix(data, "{") {
			// The reset after the cut: the whole screen again.
			if err := json.Unmarshal([]byte(data), &reset); err != nil || !strings.HasPrefix(reset.Init, "before\r\nafter") {
				t.Fatalf("reset after falling behind: got %.80q, %v", data, err)
			}
			seen, resets = reset.Init, resets+1
			continue
		}
		var ev []any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %q: %v", data, err)
		}
		if s, _ := ev[2].(string); ev[1] == "o" {
			seen += s
		}
	}
	if resets == 0 {
		t.Error("got no reset after 64 KiB through a 4 KiB queue, want the view started again")
	}
	if !strings.HasPrefix(seen, "before\r\nafter") || !strings.Contains(seen, big+"END") {
		t.Errorf("the view after the cut: got %d bytes, want everything once, ending in the 64 KiB and END", len(seen))
	}
	w.closeRecordings(f)
	w.gw.end(id)
	for {
		if name, _ := r.next(); name == "done" {
			break
		}
	}
}
