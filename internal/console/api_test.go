package console

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeGateway is a Gateway with a fixed set of live sessions; others are
// the live sessions of the other nodes of its fleet.
type fakeGateway struct {
	mu     sync.Mutex
	live   []admin.Session
	others []admin.Session
	killed []string // "id by operator"
	// files are the recordings FollowRecording follows, by master id,
	// each follower holding at most queue bytes.
	files map[string]*record.File
	queue int
	// terms are the attendable pty channels (true: read-write allowed);
	// told and typed what Attend noted.
	terms       map[string]bool
	told, typed []string
}

var (
	_ RecordingFollower = (*fakeGateway)(nil)
	_ Terminals         = (*fakeGateway)(nil)
)

// Attend attends the pty channel whose id, or master id, is in terms
// (true: it may be joined read-write), noting what it is told.
func (f *fakeGateway) Attend(id, operator string, readWrite bool) (Attendance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch, rw := range f.terms {
		if ch != id && masterID(ch) != id {
			continue
		}
		if readWrite && !rw {
			return nil, ErrJoinRefused
		}
		f.told = append(f.told, operator+" attends "+ch)
		return &fakeAttendance{f: f, ch: ch, op: operator, rw: readWrite}, nil
	}
	return nil, admin.ErrNotFound
}

type fakeAttendance struct {
	f      *fakeGateway
	ch, op string
	rw     bool
}

func (a *fakeAttendance) Channel() string { return a.ch }

func (a *fakeAttendance) Input(p []byte) error {
	if !a.rw {
		return ErrJoinRefused
	}
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	a.f.typed = append(a.f.typed, string(p))
	return nil
}

func (a *fakeAttendance) Leave() {
	a.f.mu.Lock()
	defer a.f.mu.Unlock()
	a.f.told = append(a.f.told, a.op+" leaves "+a.ch)
}

// noted returns what the fake gateway's terminals were told and typed.
func (f *fakeGateway) noted() (told, typed []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.told), slices.Clone(f.typed)
}

func (f *fakeGateway) FollowRecording(id string) (string, *record.Follower, int64, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file := f.files[id]
	if file == nil {
		return "", nil, 0, nil, admin.ErrNotFound
	}
	fl, skip := file.Follow(f.queue)
	return file.Path(), fl, skip, func() { file.Unfollow(fl) }, nil
}

var _ FleetGateway = (*fakeGateway)(nil)

func (f *fakeGateway) FleetSessions() []admin.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Concat(f.live, f.others)
}

func (f *fakeGateway) FleetHolds(_ context.Context, id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.others, func(s admin.Session) bool { return s.ID == id }), nil
}

func (f *fakeGateway) LiveSessions() []admin.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.live)
}

func (f *fakeGateway) KillAs(_ context.Context, id, op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.live, func(s admin.Session) bool { return s.ID == id })
	if i < 0 {
		return admin.ErrNotFound
	}
	f.live = slices.Delete(f.live, i, i+1)
	f.killed = append(f.killed, id+" by "+op)
	return nil
}

func (f *fakeGateway) end(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = slices.DeleteFunc(f.live, func(s admin.Session) bool { return s.ID == id })
}

// world is a console serving HTTPS on loopback in front of a real SQLite
// store, a fake gateway and real recordings.
type world struct {
	t     *testing.T
	srv   *Server
	store audit.Store
	gw    *fakeGateway
	base  string
	hc    *http.Client
	state string
	now   time.Time
	chans []*record.Channel
}

// t0 is when the test's sessions start.
var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func newWorld(t *testing.T) *world {
	t.Helper()
	state := t.TempDir()
	ctx := context.Background()
	st, err := audit.OpenSQLite(ctx, filepath.Join(state, "audit.db"), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{t: t, store: st, gw: &fakeGateway{}, state: state, now: t0.Add(24 * time.Hour)}
	srv, err := New(Params{
		Gateway: w.gw, Store: st, Audit: st, StateDir: state, RecordDir: filepath.Join(state, "recordings"),
		Listen: "127.0.0.1:0", GatewayName: "gw1", Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return w.now }, LivePoll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.srv = srv
	l, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate().Leaf)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	w.hc = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	w.base = "https://" + l.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		tr.CloseIdleConnections()
	})
	return w
}

func (w *world) write(events ...audit.Event) {
	w.t.Helper()
	for _, e := range events {
		if err := w.store.Write(context.Background(), e); err != nil {
			w.t.Fatal(err)
		}
	}
}

// session writes a master session's start (and end unless live) at t0+min.
func (w *world) session(n int, user, target string, min int, live bool) string {
	id := fmt.Sprintf("gw1/ssh-in:%d", n)
	start := t0.Add(time.Duration(min) * time.Minute)
	w.write(audit.Event{Time: start, Type: audit.TypeSessionStart, SessionID: id, User: user, ClientAddr: "127.0.0.2:5000", Verdict: audit.Accept, Rule: "users", Target: target})
	if live {
		w.gw.mu.Lock()
		w.gw.live = append(w.gw.live, admin.Session{ID: id, User: user, Client: "127.0.0.2:5000", Target: target, Start: start})
		w.gw.mu.Unlock()
	} else {
		w.write(audit.Event{Time: start.Add(time.Minute), Type: audit.TypeSessionEnd, SessionID: id, User: user, Detail: map[string]any{"exit_status": 0}})
	}
	return id
}

// token makes an API token valid for ttl.
func (w *world) token(name string, ttl time.Duration) string {
	w.t.Helper()
	tok, err := w.srv.Credentials().NewToken(name, ttl)
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// do sends a request with the bearer token tok ("" for none).
func (w *world) do(method, path, tok string) (*http.Response, string) {
	w.t.Helper()
	return w.doBody(method, path, tok, "")
}

// doBody is do with a request body.
func (w *world) doBody(method, path, tok, body string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.base+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// stream sends GET path with the bearer token tok and returns the
// response with its body open, for an event stream the test reads as it
// comes. A stream that never ends is cut, and the test with it, after
// 30 s or when the test ends.
func (w *world) stream(path, tok string) *http.Response {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 30*time.Second)
	w.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", w.base+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (w *world) getJSON(path, tok string, v any) {
	w.t.Helper()
	resp, body := w.do("GET", path, tok)
	if resp.StatusCode != 200 {
		w.t.Fatalf("GET %s: got %s %q, want 200", path, resp.Status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		w.t.Fatalf("GET %s: %v in %q", path, err, body)
	}
}

func esc(id string) string { return url.PathEscape(id) }

func TestAPIAuth(t *testing.T) {
	w := newWorld(t)
	good := w.token("ci", time.Hour)
	expired := w.token("old", time.Minute)
	w.now = w.now.Add(2 * time.Minute)
	tests := []struct {
		name, auth string
		want       int
		body       string
	}{
		{"no token", "", 401, "log in"},
		{"wrong token", "Bearer sluice_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401, "unknown token"},
		{"token of another prefix", "Bearer " + strings.TrimPrefix(good, "sluice_"), 401, "unknown token"},
		{"expired", "Bearer " + expired, 401, "token expired"},
		{"basic scheme", "Basic " + good, 401, "Bearer"},
		{"good", "Bearer " + good, 200, ""},
	}
	for _, path := range []string{"/api/v1/sessions", "/api/v1/audit", "/api/v1/sessions/" + esc("gw1/ssh-in:1")} {
		for _, tt := range tests {
			t.Run(tt.name+path, func(t *testing.T) {
				req, _ := http.NewRequest("GET", w.base+path, nil)
				if tt.auth != "" {
					req.Header.Set("Authorization", tt.auth)
				}
				resp, err := w.hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := tt.want
				if want == 200 && strings.Contains(path, "ssh-in") {
					want = 404 // authenticated, but no such session
				}
				if resp.StatusCode != want || !strings.Contains(string(b), tt.body) {
					t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, b, want, tt.body)
				}
				if want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			})
		}
	}
	// A kill without a token does nothing.
	w.session(1, "alice", "db:22", 0, true)
	if resp, _ := w.do("POST", "/api/v1/sessions/"+esc("gw1/ssh-in:1")+"/kill", ""); resp.StatusCode != 401 || len(w.gw.killed) != 0 {
		t.Fatalf("kill without token: got %d, killed %v, want 401 and nothing killed", resp.StatusCode, w.gw.killed)
	}
}

func TestTokenStoredAsHash(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	b, err := os.ReadFile(filepath.Join(w.state, "console", "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), strings.TrimPrefix(tok, "sluice_")) {
		t.Fatalf("tokens.json holds the token itself: %s", b)
	}
	fi, _ := os.Stat(filepath.Join(w.state, "console", "tokens.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens.json mode: got %v, want 0600", fi.Mode().Perm())
	}
	if _, err := w.srv.Credentials().NewToken("ci", time.Hour); !errors.Is(err, ErrExists) {
		t.Errorf("second token named ci: got %v, want ErrExists", err)
	}
	if _, err := w.srv.Credentials().NewToken("bad name", time.Hour); err == nil {
		t.Error("token named with a space: got nil error")
	}
}

func sessionIDs(l SessionList) []string {
	var out []string
	for _, s := range l.Sessions {
		out = append(out, s.ID)
	}
	return out
}

// TestAPISessionsFleet: in a fleet the live list holds the other nodes'
// sessions too, filtered like this node's.
func TestAPISessionsFleet(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	w.session(1, "alice", "db:22", 0, true)
	w.gw.mu.Lock()
	w.gw.others = []admin.Session{
		{ID: "gw2/ssh-in:7", User: "dave", Client: "192.0.2.4:5000", Target: "web:22", Start: t0.Add(5 * time.Minute)},
		{ID: "gw3/ssh-in:2", User: "alice", Client: "192.0.2.5:5000", Target: "db:22", Start: t0.Add(7 * time.Minute)},
	}
	w.gw.mu.Unlock()
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"?live=1", []string{"gw3/ssh-in:2", "gw2/ssh-in:7", "gw1/ssh-in:1"}},
		{"?live=1&user=alice", []string{"gw3/ssh-in:2", "gw1/ssh-in:1"}},
		{"?live=1&host=web", []string{"gw2/ssh-in:7"}},
	} {
		var got SessionList
		w.getJSON("/api/v1/sessions"+tt.query, tok, &got)
		if !slices.Equal(sessionIDs(got), tt.want) {
			t.Errorf("sessions%s: got %v, want %v", tt.query, sessionIDs(got), tt.want)
		}
	}
}

func TestAPISessionsFilters(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	w.session(1, "alice", "db:22", 0, false)
	w.session(2, "bob", "web:22", 10, false)
	w.session(3, "alice", "web:22", 20, true)
	w.session(4, "carol", "DB:2222", 30, true)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"gw1/ssh-in:4", "gw1/ssh-in:3", "gw1/ssh-in:2", "gw1/ssh-in:1"}},
		{"?user=alice", []string{"gw1/ssh-in:3", "gw1/ssh-in:1"}},
		{"?host=db", []string{"gw1/ssh-in:4", "gw1/ssh-in:1"}},
		{"?host=web&user=alice", []string{"gw1/ssh-in:3"}},
		{"?since=" + t0.Add(10*time.Minute).Format(time.RFC3339), []string{"gw1/ssh-in:4", "gw1/ssh-in:3", "gw1/ssh-in:2"}},
		{"?live=true", []string{"gw1/ssh-in:4", "gw1/ssh-in:3"}},
		{"?live=1&user=carol", []string{"gw1/ssh-in:4"}},
		{"?live=1&host=web", []string{"gw1/ssh-in:3"}},
		{"?user=nobody", nil},
	}
	for _, tt := range tests {
		var got SessionList
		w.getJSON("/api/v1/sessions"+tt.query, tok, &got)
		if !slices.Equal(sessionIDs(got), tt.want) {
			t.Errorf("sessions%s: got %v, want %v", tt.query, sessionIDs(got), tt.want)
		}
	}
	var all SessionList
	w.getJSON("/api/v1/sessions", tok, &all)
	for _, s := range all.Sessions {
		if wantLive := s.ID == "gw1/ssh-in:3" || s.ID == "gw1/ssh-in:4"; s.Live != wantLive {
			t.Errorf("%s: live %v, want %v", s.ID, s.Live, wantLive)
		}
	}
	for _, q := range []string{"?since=yesterday", "?limit=0", "?limit=100000", "?live=maybe", "?before=x"} {
		if resp, body := w.do("GET", "/api/v1/sessions"+q, tok); resp.StatusCode != 400 {
			t.Errorf("sessions%s: got %d %q, want 400", q, resp.StatusCode, body)
		}
	}
}

func TestAPISessionsPages(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	var want []string
	for i := 1; i <= 7; i++ {
		want = append([]string{w.session(i, "alice", "db:22", i, false)}, want...)
		w.session(100+i, "bob", "web:22", i, false) // filtered out by host
	}
	var got []string
	path := "/api/v1/sessions?limit=3&host=db"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("more pages than sessions")
		}
		var l SessionList
		w.getJSON(path, tok, &l)
		if len(l.Sessions) > 3 {
			t.Fatalf("page of %d, want at most 3", len(l.Sessions))
		}
		got = append(got, sessionIDs(l)...)
		if l.Next == "" {
			break
		}
		path = "/api/v1/sessions?limit=3&host=db&before=" + url.QueryEscape(l.Next)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages: got %v, want %v", got, want)
	}
}

// recordSession writes a recording of id's channel session:0 holding
// output, and its "record" audit event.
func (w *world) recordSession(id string, output ...string) (string, *record.File) {
	w.t.Helper()
	f, err := record.Create(filepath.Join(w.state, "recordings"), record.FileHeader{SessionID: id, User: "alice"}, record.Params{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		w.t.Fatal(err)
	}
	ch := id + "/ssh/session:0"
	c := f.Channel(record.Header{SessionID: ch, Pty: true, Width: 100, Height: 30, Term: "xterm"})
	for _, o := range output {
		c.Output([]byte(o))
	}
	w.write(audit.Event{Time: t0, Type: "record", SessionID: ch, User: "alice", Verdict: audit.Accept, Detail: map[string]any{"recording": f.Path()}})
	w.chans = append(w.chans, c)
	return ch, f
}

func TestAPISessionDetail(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := w.session(1, "alice", "db:22", 0, false)
	w.session(10, "bob", "db:22", 0, false) // a prefix of 1 must not mix in
	w.write(audit.Event{Time: t0.Add(time.Second), Type: "exec", SessionID: id + "/ssh/session:0", User: "alice", Verdict: audit.Reject, Rule: "services[ssh-in].policy.exec.deny[0]", Detail: map[string]any{"command": "rm -rf /"}},
		audit.Event{Time: t0.Add(2 * time.Second), Type: "exec", SessionID: "gw1/ssh-in:10/ssh/session:0", User: "bob", Verdict: audit.Accept})
	ch, f := w.recordSession(id, "hello")
	w.closeRecordings(f)
	var d SessionDetail
	w.getJSON("/api/v1/sessions/"+esc(id), tok, &d)
	if d.Session.ID != id || d.Session.User != "alice" || d.Session.Live || d.Session.ExitStatus == nil {
		t.Errorf("session: got %+v", d.Session)
	}
	var types []string
	for _, e := range d.Events {
		if e.SessionID != id && !strings.HasPrefix(e.SessionID, id+"/") {
			t.Errorf("timeline holds %s's event %s", e.SessionID, e.Type)
		}
		types = append(types, e.Type)
	}
	if want := []string{"session.start", "record", "exec", "session.end"}; !slices.Equal(types, want) {
		t.Errorf("timeline: got %v, want %v", types, want)
	}
	if !slices.Equal(d.Channels, []string{ch}) {
		t.Errorf("channels: got %v, want [%s]", d.Channels, ch)
	}
	if resp, _ := w.do("GET", "/api/v1/sessions/"+esc("gw1/ssh-in:99"), tok); resp.StatusCode != 404 {
		t.Errorf("unknown session: got %d, want 404", resp.StatusCode)
	}
}

func (w *world) closeRecordings(f *record.File) {
	w.t.Helper()
	for _, c := range w.chans {
		c.Close()
	}
	w.chans = nil
	if err := f.Close(); err != nil {
		w.t.Fatal(err)
	}
}

func TestAPIRecording(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := w.session(1, "alice", "db:22", 0, false)
	ch, f := w.recordSession(id, "hello ", "world\r\n")
	w.closeRecordings(f)
	for _, path := range []string{
		"/api/v1/sessions/" + esc(id) + "/recording",
		"/api/v1/sessions/" + esc(ch) + "/recording",
		"/api/v1/sessions/" + esc(id) + "/recording?channel=" + url.QueryEscape(ch),
	} {
		resp, body := w.do("GET", path, tok)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-asciicast" {
			t.Fatalf("GET %s: got %s %q", path, resp.Status, body)
		}
		lines := strings.Split(strings.TrimSpace(body), "\n")
		var h struct {
			Version int    `json:"version"`
			Width   int    `json:"width"`
			Height  int    `json:"height"`
			Session string `json:"sluice_session_id"`
		}
		if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Version != 2 || h.Session != ch {
			t.Fatalf("header: got %+v, %v from %q", h, err, lines[0])
		}
		var out strings.Builder
		for _, l := range lines[1:] {
			var ev []any
			if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev) != 3 {
				t.Fatalf("event line %q: %v", l, err)
			}
			out.WriteString(ev[2].(string))
		}
		if out.String() != "hello world\r\n" {
			t.Errorf("output: got %q, want %q", out.String(), "hello world\r\n")
		}
	}
	// Replays are audited with the operator's name.
	ev, err := w.store.Query(context.Background(), audit.Filter{Type: "console.replay"})
	if err != nil || len(ev) != 3 || ev[0].User != "ci" || ev[0].Detail["operator"] != "ci" || ev[0].SessionID != ch {
		t.Errorf("console.replay events: got %+v, %v", ev, err)
	}
	for _, path := range []string{
		"/api/v1/sessions/" + esc("gw1/ssh-in:2") + "/recording",
		"/api/v1/sessions/" + esc(id) + "/recording?channel=" + url.QueryEscape("gw1/ssh-in:2/ssh/session:0"),
		"/api/v1/sessions/" + esc(id) + "/recording?channel=" + url.QueryEscape(id+"/ssh/session:7"),
	} {
		if resp, body := w.do("GET", path, tok); resp.StatusCode != 404 {
			t.Errorf("GET %s: got %d %q, want 404", path, resp.StatusCode, body)
		}
	}
}

func TestAPIRecordingOutsideRecordDir(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := w.session(1, "alice", "db:22", 0, false)
	secret := filepath.Join(w.state, "console", "tokens.json")
	for _, p := range []string{secret, filepath.Join(w.state, "recordings", "..", "console", "tokens.json"), "recordings/x.rec.gz"} {
		w.write(audit.Event{Time: t0, Type: "record", SessionID: id + "/ssh/session:0", Verdict: audit.Accept, Detail: map[string]any{"recording": p}})
		resp, body := w.do("GET", "/api/v1/sessions/"+esc(id)+"/recording", tok)
		if resp.StatusCode != 404 || strings.Contains(body, "sha256") {
			t.Fatalf("recording named %s: got %d %q, want 404", p, resp.StatusCode, body)
		}
	}
}

func TestAPIKill(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ops-bot", time.Hour)
	id := w.session(1, "alice", "db:22", 0, true)
	if resp, body := w.do("POST", "/api/v1/sessions/"+esc(id)+"/kill", tok); resp.StatusCode != 204 {
		t.Fatalf("kill: got %d %q, want 204", resp.StatusCode, body)
	}
	if want := []string{id + " by ops-bot"}; !slices.Equal(w.gw.killed, want) {
		t.Fatalf("killed: got %v, want %v", w.gw.killed, want)
	}
	if resp, _ := w.do("POST", "/api/v1/sessions/"+esc(id)+"/kill", tok); resp.StatusCode != 404 {
		t.Fatalf("second kill: got %d, want 404", resp.StatusCode)
	}
	w.session(2, "bob", "db:22", 0, true)
	if resp, _ := w.do("GET", "/api/v1/sessions/"+esc("gw1/ssh-in:2")+"/kill", tok); resp.StatusCode/100 != 4 || len(w.gw.killed) != 1 {
		t.Fatalf("GET kill: got %d, killed %v, want a 4xx and no kill", resp.StatusCode, w.gw.killed)
	}
}

func TestAPIAuditFilters(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	ev := func(sec int, typ, sid, user string, v audit.Verdict) audit.Event {
		return audit.Event{Time: t0.Add(time.Duration(sec) * time.Second), Type: typ, SessionID: sid, User: user, Verdict: v}
	}
	w.write(
		ev(0, "session.start", "gw1/ssh-in:1", "alice", audit.Accept),
		ev(1, "exec", "gw1/ssh-in:1/ssh/session:0", "alice", audit.Reject),
		ev(2, "sftp.open", "gw1/ssh-in:1/ssh/session:1/sftp", "alice", audit.Accept),
		ev(3, "sftp.remove", "gw1/ssh-in:10/ssh/session:0/sftp", "bob", audit.Reject),
		ev(4, "session.end", "gw1/ssh-in:1", "alice", ""),
	)
	at := func(sec int) string {
		return url.QueryEscape(t0.Add(time.Duration(sec) * time.Second).Format(time.RFC3339))
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"session.start", "exec", "sftp.open", "sftp.remove", "session.end"}},
		{"?user=bob", []string{"sftp.remove"}},
		{"?session=gw1/ssh-in:1", []string{"session.start", "exec", "sftp.open", "session.end"}},
		{"?session=gw1/ssh-in:1/ssh/session:1", []string{"sftp.open"}},
		{"?type=sftp.", []string{"sftp.open", "sftp.remove"}},
		{"?type=exec", []string{"exec"}},
		{"?verdict=reject", []string{"exec", "sftp.remove"}},
		{"?verdict=accept&type=s", []string{"session.start", "sftp.open"}},
		{"?since=" + at(2), []string{"sftp.open", "sftp.remove", "session.end"}},
		{"?until=" + at(2), []string{"session.start", "exec"}},
		{"?since=" + at(1) + "&until=" + at(4), []string{"exec", "sftp.open", "sftp.remove"}},
		{"?limit=2", []string{"sftp.remove", "session.end"}},
	}
	for _, tt := range tests {
		resp, body := w.do("GET", "/api/v1/audit"+tt.query, tok)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jsonl" {
			t.Fatalf("audit%s: got %s %q", tt.query, resp.Status, body)
		}
		var got []string
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			var e audit.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("audit%s: line %q: %v", tt.query, sc.Text(), err)
			}
			got = append(got, e.Type)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("audit%s: got %v, want %v", tt.query, got, tt.want)
		}
	}
	for _, q := range []string{"?verdict=maybe", "?since=x", "?until=x", "?limit=-1", "?format=xml"} {
		if resp, body := w.do("GET", "/api/v1/audit"+q, tok); resp.StatusCode != 400 {
			t.Errorf("audit%s: got %d %q, want 400", q, resp.StatusCode, body)
		}
	}
}

func TestAPIAuditCSV(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	w.write(audit.Event{Time: t0, Type: "exec", SessionID: "gw1/ssh-in:1/ssh/session:0", User: "alice", Verdict: audit.Reject, Rule: "deny",
		Detail: map[string]any{"command": "=HYPERLINK(\"http://x\")"}, Reason: "-2+3"})
	resp, body := w.do("GET", "/api/v1/audit?format=csv", tok)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: got %s %q", resp.Status, body)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("csv: got %v, %v, want a header and a row", recs, err)
	}
	if !slices.Equal(recs[0], csvColumns) {
		t.Errorf("header: got %v", recs[0])
	}
	row := map[string]string{}
	for i, c := range recs[0] {
		row[c] = recs[1][i]
	}
	if row["type"] != "exec" || row["user"] != "alice" || row["verdict"] != "reject" || row["reason"] != "'-2+3" {
		t.Errorf("row: got %v", row)
	}
	if !strings.Contains(row["detail"], "HYPERLINK") {
		t.Errorf("detail: got %q", row["detail"])
	}
}

func TestAPIEscapedIDs(t *testing.T) {
	w := newWorld(t)
	tok := w.token("ci", time.Hour)
	id := w.session(1, "alice", "db:22", 0, false)
	// An id not escaped has more path segments: no route matches it.
	if resp, _ := w.do("GET", "/api/v1/sessions/"+id, tok); resp.StatusCode != 404 {
		t.Errorf("unescaped id: got %d, want 404", resp.StatusCode)
	}
	var d SessionDetail
	w.getJSON("/api/v1/sessions/"+esc(id), tok, &d)
	if d.Session.ID != id {
		t.Errorf("escaped id: got %q, want %q", d.Session.ID, id)
	}
}

// TestBadTokensAuditedBounded: a rejected token is audited (an expired one
// by its name), but a client that keeps sending bad tokens writes at most
// loginFailures such events per window; a good token still works after.
func TestBadTokensAuditedBounded(t *testing.T) {
	w := newWorld(t)
	expired := w.token("old-ci", time.Minute)
	good := w.token("ci", time.Hour)
	w.now = w.now.Add(2 * time.Minute)
	if resp, _ := w.do("GET", "/api/v1/sessions", expired); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired token: got %d, want 401", resp.StatusCode)
	}
	for range 20 {
		if resp, _ := w.do("GET", "/api/v1/sessions", "not-a-token"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unknown token: got %d, want 401", resp.StatusCode)
		}
	}
	if resp, _ := w.do("GET", "/api/v1/sessions", good); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token after the bad ones: got %d, want 200", resp.StatusCode)
	}
	ev, err := w.store.Query(context.Background(), audit.Filter{Type: "console.auth"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != loginFailures {
		t.Fatalf("got %d console.auth events for 21 bad tokens, want %d", len(ev), loginFailures)
	}
	if ev[0].Verdict != audit.Reject || !strings.Contains(ev[0].Reason, `"old-ci"`) {
		t.Errorf("first event %+v, want a reject naming the expired token", ev[0])
	}
}
