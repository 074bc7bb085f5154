package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// joinWorld is a gateway recording a live pty session of OpenSSH's ssh,
// run in a pty as a person would, with its console's API served on
// loopback.
type joinWorld struct {
	*world
	api   *httptest.Server
	token string
	term  *lockedBuffer // what the user's terminal shows
	tty   interface{ Write([]byte) (int, error) }
	id    string // the live master session
}

func newJoinWorld(t *testing.T, service string) *joinWorld {
	w := newWorld(t, worldOptions{service: service, tail: "console:\n  listen: 127.0.0.1:0\n"})
	api := httptest.NewServer(w.gw.Console().Handler())
	t.Cleanup(api.Close)
	token, err := w.gw.Console().Credentials().NewToken("carol", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ssh", append(w.args("ssh"), "-tt", w.target()+"@127.0.0.1")...)
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var term lockedBuffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&term, tty) // ends with EIO when ssh exits
		close(copied)
	}()
	t.Cleanup(func() {
		_, _ = tty.Write([]byte("\rexit\r"))
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		tty.Close()
		<-copied
	})
	jw := &joinWorld{world: w, api: api, token: token, term: &term, tty: tty}
	// The session is live once its pty channel is attendable.
	waitFor(t, "a live pty session", func() bool {
		ls := w.gw.LiveSessions()
		if len(ls) != 1 {
			return false
		}
		jw.id = ls[0].ID
		_, _, _, stop, err := w.gw.FollowRecording(jw.id)
		if err == nil {
			stop()
		}
		w.gw.live.mu.Lock()
		defer w.gw.live.mu.Unlock()
		return err == nil && len(w.gw.live.terms) == 1
	})
	// Let the shell start before anyone types.
	_, _ = tty.Write([]byte("echo READY-$((2*3))\r"))
	jw.waitTerm(t, "READY-6")
	return jw
}

// waitFor polls cond for up to a minute (the machine may be loaded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (jw *joinWorld) waitTerm(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(jw.term.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the user's terminal shows no %q within a minute: %q", want, jw.term.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// live opens the live view with mode; it returns the response (its body
// read by the caller) and a cancel that ends the view.
func (jw *joinWorld) live(t *testing.T, mode string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", jw.api.URL+"/api/v1/sessions/"+url.PathEscape(jw.id)+"/live?mode="+mode, nil)
	req.Header.Set("Authorization", "Bearer "+jw.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return resp, func() { cancel(); resp.Body.Close() }
}

// post sends keystrokes to path (an input URL).
func (jw *joinWorld) post(t *testing.T, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", jw.api.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+jw.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// consoleEvents are the audit events of type typ about the session.
func (jw *joinWorld) consoleEvents(typ string) []audit.Event {
	return jw.events(typ, func(e audit.Event) bool { return e.SessionID == jw.id })
}

// TestConsoleJoinReadWrite: with console_join: read_write, an operator
// joins a live OpenSSH pty session: the user is told on their terminal,
// the operator's keystrokes reach the target's shell as the user's, and
// the join and what was typed (counted) are audited.
func TestConsoleJoinReadWrite(t *testing.T) {
	t.Parallel()
	jw := newJoinWorld(t, "    record: true\n    console_join: read_write\n")
	resp, end := jw.live(t, "read_write")
	if resp.StatusCode != http.StatusOK {
		end()
		t.Fatalf("live view read_write: got %s, want 200", resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	var input string
	for input == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			end()
			t.Fatalf("reading the live view: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"input"`) {
			var j struct{ Input string }
			if err := json.Unmarshal([]byte(data), &j); err != nil {
				t.Fatal(err)
			}
			input = j.Input
		}
	}
	// What the view shows from now on.
	var view lockedBuffer
	viewed := make(chan struct{})
	go func() {
		_, _ = io.Copy(&view, br)
		close(viewed)
	}()
	jw.waitTerm(t, "sluice: operator carol has joined this session read-write")
	if code := jw.post(t, input, "echo JOINED-$((6*7))\r"); code != http.StatusNoContent {
		t.Fatalf("input: got %d, want 204", code)
	}
	jw.waitTerm(t, "JOINED-42") // the shell ran what carol typed
	waitFor(t, "the joined command's output in the live view", func() bool { return strings.Contains(view.String(), "JOINED-42") })
	// Another operator's token cannot use carol's join.
	other, err := jw.gw.Console().Credentials().NewToken("mallory", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", jw.api.URL+input, strings.NewReader("echo STOLEN\r"))
	req.Header.Set("Authorization", "Bearer "+other)
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusNotFound {
		t.Errorf("mallory using carol's join: got %v %v, want 404", r.Status, err)
	}
	end()
	<-viewed
	jw.waitTerm(t, "sluice: operator carol stopped watching this session")
	if strings.Contains(jw.term.String(), "STOLEN") {
		t.Error("mallory's keystrokes reached the target")
	}
	waitFor(t, "console.leave", func() bool { return len(jw.consoleEvents("console.leave")) == 1 })
	joins := jw.consoleEvents("console.join")
	if len(joins) != 1 || joins[0].Verdict != audit.Accept || joins[0].Detail["mode"] != "read_write" || joins[0].Detail["operator"] != "carol" {
		t.Errorf("console.join: got %+v, want carol accepted read_write", joins)
	}
	leave := jw.consoleEvents("console.leave")[0]
	if leave.Detail["input_chunks"] != float64(1) || leave.Detail["input_bytes"] != float64(len("echo JOINED-$((6*7))\r")) {
		t.Errorf("console.leave: got %v, want 1 chunk of %d bytes", leave.Detail, len("echo JOINED-$((6*7))\r"))
	}
}

// TestConsoleJoinRefused: by default an operator may only watch: the user
// is told, a read-write join is refused and audited, and nothing the
// operator sends reaches the target.
func TestConsoleJoinRefused(t *testing.T) {
	t.Parallel()
	jw := newJoinWorld(t, "    record: true\n")
	resp, end := jw.live(t, "read_write")
	end()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("live view read_write without console_join: got %s, want 403", resp.Status)
	}
	waitFor(t, "a refused console.join", func() bool {
		j := jw.consoleEvents("console.join")
		return len(j) == 1 && j[0].Verdict == audit.Reject && j[0].Detail["operator"] == "carol"
	})
	resp, end = jw.live(t, "read_only")
	if resp.StatusCode != http.StatusOK {
		end()
		t.Fatalf("live view read_only: got %s, want 200", resp.Status)
	}
	jw.waitTerm(t, "sluice: operator carol is watching this session")
	// Input without a join goes nowhere.
	for _, q := range []string{"", "?join=", "?join=00000000000000000000000000000000"} {
		if code := jw.post(t, "/api/v1/sessions/"+url.PathEscape(jw.id)+"/input"+q, "echo SNEAKED-$((7*7))\r"); code != http.StatusNotFound {
			t.Errorf("input%s: got %d, want 404", q, code)
		}
	}
	end()
	jw.waitTerm(t, "sluice: operator carol stopped watching this session")
	_, _ = jw.tty.Write([]byte("echo AFTER-$((5*5))\r"))
	jw.waitTerm(t, "AFTER-25")
	if strings.Contains(jw.term.String(), "SNEAKED-49") {
		t.Error("a read-only operator's keystrokes reached the target")
	}
	// The notices are in the recording as the gateway's markers, not as
	// the program's output.
	_, _ = jw.tty.Write([]byte("exit\r"))
	path := jw.recording("/ssh/session:0")
	c := readChannel(t, path, jw.channelEnd("/ssh/session:0").SessionID)
	if m := c.data("m"); !strings.Contains(m, "sluice: operator carol is watching this session") || !strings.Contains(m, "sluice: operator carol stopped watching this session") {
		t.Errorf("markers: got %q, want both notices", m)
	}
	if o := c.data("o"); strings.Contains(o, "sluice: operator") {
		t.Errorf("output: got a notice in the program's output %q", o)
	}
}

// TestPrintableOperator: an operator's name cannot drive the user's
// terminal (escape sequences, newlines) or flood it.
func TestPrintableOperator(t *testing.T) {
	for in, want := range map[string]string{
		"carol":                   "carol",
		"eve\x1b]0;pwned\x07":     "eve?]0;pwned?",
		"bob\r\nsluice: all good": "bob??sluice: all good",
		strings.Repeat("é", 100):  strings.Repeat("é", 64),
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q): got %q, want %q", in, got, want)
		}
	}
}
