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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
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
	resp := w.stream("/api/v1/sessions/"+esc(id)+"/live", tok)
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
	const before = "before joining\r\n"
	if err := json.Unmarshal([]byte(data), &reset); err != nil || reset.Cols != 100 || reset.Rows != 30 || !strings.HasPrefix(before, reset.Init) {
		t.Fatalf("reset: got %+v, %v from %q", reset, err, data)
	}
	// The fake gateway has no Follower for this recording, so the reset
	// holds what the file held; output the recorder had not flushed yet
	// (its members are cut every 10 ms, maybe between the two writes)
	// follows at once, in order, before anything written later.
	for shown := reset.Init; shown != before; {
		_, data := r.next()
		var ev []any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || len(ev) != 3 || ev[1] != "o" {
			t.Fatalf("event %q (%v) while %q of %q was shown", data, err, shown, before)
		}
		if shown += ev[2].(string); !strings.HasPrefix(before, shown) {
			t.Fatalf("shown %q, want %q", shown, before)
		}
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
	if resp, _ := w.do("GET", "/api/v1/sessions/"+esc(id)+"/live", tok); resp.StatusCode != 404 {
		t.Fatalf("live view of an ended session: got %d, want 404", resp.StatusCode)
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
	resp := w.stream("/api/v1/sessions/"+esc(id)+"/live", tok)
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

// TestAPIJoin: a read-write join is refused where the gateway does not
// allow it (audited), and otherwise hands the operator an input URL that
// only they can use, for as long as their view lasts; what they type is
// counted in console.leave.
func TestAPIJoin(t *testing.T) {
	w := newWorld(t)
	carol, mallory := w.token("carol", time.Hour), w.token("mallory", time.Hour)
	id := w.session(1, "alice", "db:22", 0, true)
	ch, f := w.recordSession(id, "$ ")
	defer w.closeRecordings(f)
	w.gw.mu.Lock()
	w.gw.terms = map[string]bool{ch: false}
	w.gw.mu.Unlock()
	live := func(mode string) *http.Response {
		return w.stream("/api/v1/sessions/"+esc(id)+"/live?mode="+mode, carol)
	}
	for mode, want := range map[string]int{"read_write": 403, "write": 400} {
		if resp := live(mode); resp.StatusCode != want {
			t.Errorf("mode=%s: got %s, want %d", mode, resp.Status, want)
		} else {
			resp.Body.Close()
		}
	}
	ev, err := w.store.Query(context.Background(), audit.Filter{Type: "console.join"})
	if err != nil || len(ev) != 1 || ev[0].Verdict != audit.Reject || ev[0].User != "carol" {
		t.Fatalf("console.join: got %+v %v, want carol's refusal", ev, err)
	}
	w.gw.mu.Lock()
	w.gw.terms[ch] = true
	w.gw.mu.Unlock()
	resp := live("read_write")
	if resp.StatusCode != 200 {
		t.Fatalf("read_write allowed: got %s", resp.Status)
	}
	r := &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
	name, data := r.next()
	var j struct{ Input, Channel string }
	if name != "join" || json.Unmarshal([]byte(data), &j) != nil || j.Channel != ch || !strings.HasPrefix(j.Input, "/api/v1/sessions/"+esc(id)+"/input?join=") {
		t.Fatalf("first event: got %s %q, want join with an input URL", name, data)
	}
	post := func(tok, path, body string) int {
		resp, _ := w.doBody("POST", path, tok, body)
		return resp.StatusCode
	}
	if code := post(carol, j.Input, "ls\r"); code != 204 {
		t.Errorf("carol's input: got %d, want 204", code)
	}
	if code := post(carol, j.Input, strings.Repeat("x", maxInput+1)); code != 413 {
		t.Errorf("input over %d bytes: got %d, want 413", maxInput, code)
	}
	if code := post(mallory, j.Input, "rm -rf /\r"); code != 404 {
		t.Errorf("mallory with carol's join: got %d, want 404", code)
	}
	other := strings.Replace(j.Input, esc(id), esc("gw1/ssh-in:2"), 1)
	if code := post(carol, other, "id\r"); code != 404 {
		t.Errorf("carol's join on another session: got %d, want 404", code)
	}
	resp.Body.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ev, _ := w.store.Query(context.Background(), audit.Filter{Type: "console.leave"})
		if len(ev) == 1 {
			if ev[0].Detail["input_chunks"] != float64(1) || ev[0].Detail["input_bytes"] != float64(3) {
				t.Errorf("console.leave: got %v, want 1 chunk of 3 bytes", ev[0].Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no console.leave within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := post(carol, j.Input, "late\r"); code != 404 {
		t.Errorf("input after the view ended: got %d, want 404", code)
	}
	told, typed := w.gw.noted()
	if want := []string{"carol attends " + ch, "carol leaves " + ch}; !slices.Equal(told, want) {
		t.Errorf("the user was told: got %q, want %q", told, want)
	}
	if !slices.Equal(typed, []string{"ls\r"}) {
		t.Errorf("typed: got %q, want only carol's ls", typed)
	}
}

// TestAPILiveFleet: a session another node of the fleet holds is shown
// live from its recording (in the shared folder), with its detail page
// marked live; the view ends once the fleet no longer lists it.
func TestAPILiveFleet(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := "gw2/ssh-in:4"
	w.write(audit.Event{Time: t0, Type: audit.TypeSessionStart, SessionID: id, User: "dave", ClientAddr: "192.0.2.4:5000", Verdict: audit.Accept, Rule: "users", Target: "web:22"})
	w.gw.mu.Lock()
	w.gw.others = []admin.Session{{ID: id, User: "dave", Client: "192.0.2.4:5000", Target: "web:22", Start: t0}}
	w.gw.mu.Unlock()
	var d SessionDetail
	w.getJSON("/api/v1/sessions/"+esc(id), tok, &d)
	if !d.Session.Live {
		t.Errorf("detail of a session gw2 holds: got live false, want true")
	}
	_, f := w.recordSession(id, "on gw2\r\n")
	resp := w.stream("/api/v1/sessions/"+esc(id)+"/live", tok)
	if resp.StatusCode != 200 {
		t.Fatalf("live view of a session gw2 holds: got %s, want 200", resp.Status)
	}
	r := &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}
	if _, data := r.next(); !strings.Contains(data, `"init":"on gw2\r\n"`) {
		t.Fatalf("reset: got %q, want the output so far", data)
	}
	w.chans[0].Output([]byte("later"))
	if _, data := r.next(); !strings.Contains(data, `"o","later"`) {
		t.Fatalf("event: got %q, want the new output", data)
	}
	w.closeRecordings(f)
	ended := time.Now()
	w.gw.mu.Lock()
	w.gw.others = nil
	w.gw.mu.Unlock()
	if name, _ := r.next(); name != "done" {
		t.Fatalf("after the end: got event %q, want done", name)
	}
	if lag := time.Since(ended); lag > fleetLiveEvery+5*time.Second {
		t.Errorf("the view ended %v after the session, want within about %v", lag, fleetLiveEvery)
	}
	// A session no node holds has no live view.
	if resp, _ := w.do("GET", "/api/v1/sessions/"+esc("gw3/ssh-in:1")+"/live", tok); resp.StatusCode != 404 {
		t.Errorf("live view of a session nobody holds: got %d, want 404", resp.StatusCode)
	}
}
