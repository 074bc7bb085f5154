package console

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
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
