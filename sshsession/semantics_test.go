package sshsession

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// recorder is a Handler that records what reached HandleRequest and runs
// Serve until released or the session ends.
type recorder struct {
	mu      sync.Mutex
	got     []Request
	refuse  func(Request) bool
	release chan struct{}
	session chan *Session
}

func newRecorder() *recorder {
	return &recorder{release: make(chan struct{}), session: make(chan *Session, 1)}
}

func (h *recorder) HandleRequest(s *Session, r Request) error {
	h.mu.Lock()
	h.got = append(h.got, r)
	h.mu.Unlock()
	if h.refuse != nil && h.refuse(r) {
		return errors.New("refused by handler")
	}
	return nil
}

func (h *recorder) Serve(s *Session) {
	h.session <- s
	select {
	case <-h.release:
	case <-s.Context().Done():
	}
}

func (h *recorder) types() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var names []string
	for _, r := range h.got {
		names = append(names, r.Type())
	}
	return strings.Join(names, ",")
}

var testPty = &PtyRequest{Term: "xterm", Columns: 80, Rows: 24, Modes: []Mode{{53, 1}}}

func TestWindowChangeChecks(t *testing.T) {
	h := newRecorder()
	sv := startServer(t, context.Background(), nil, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	if sendRequest(t, ch, &WindowChange{Columns: 100, Rows: 30}) {
		t.Error("window-change without pty: got accepted, want refused")
	}
	if !sendRequest(t, ch, testPty) {
		t.Fatal("pty-req: got refused, want accepted")
	}
	if sendRequest(t, ch, testPty) {
		t.Error("second pty-req: got accepted, want refused")
	}
	for _, w := range []*WindowChange{{Columns: 0, Rows: 30}, {Columns: 100, Rows: 0}} {
		if sendRequest(t, ch, w) {
			t.Errorf("window-change %dx%d: got accepted, want refused", w.Columns, w.Rows)
		}
	}
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	s := waitFor(t, h.session, "Serve")
	if got, want := s.Window(), (WindowChange{Columns: 80, Rows: 24}); got != want {
		t.Errorf("Window after pty-req: got %+v, want %+v", got, want)
	}
	if !sendRequest(t, ch, &WindowChange{Columns: 100, Rows: 30, WidthPixels: 1000, HeightPixels: 600}) {
		t.Fatal("window-change with pty: got refused, want accepted")
	}
	if got, want := s.Window(), (WindowChange{Columns: 100, Rows: 30, WidthPixels: 1000, HeightPixels: 600}); got != want {
		t.Errorf("Window after window-change: got %+v, want %+v", got, want)
	}
	if p, ok := s.Pty(); !ok || p.Term != "xterm" || len(p.Modes) != 1 {
		t.Errorf("Pty: got %+v, %v; want xterm with one mode", p, ok)
	}
	if got, want := h.types(), "pty-req,shell,window-change"; got != want {
		t.Errorf("reached the handler: got %s, want %s", got, want)
	}
	close(h.release)
}

func TestEnvAndPtyAfterProgramRefused(t *testing.T) {
	h := newRecorder()
	cfg := &Config{AcceptEnv: func(string, string) bool { return true }}
	sv := startServer(t, context.Background(), cfg, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ExecRequest{Command: "x"}) {
		t.Fatal("exec: got refused, want accepted")
	}
	s := waitFor(t, h.session, "Serve")
	if sendRequest(t, ch, &EnvRequest{Name: "LANG", Value: "C"}) {
		t.Error("env after exec: got accepted, want refused")
	}
	if sendRequest(t, ch, testPty) {
		t.Error("pty-req after exec: got accepted, want refused")
	}
	if !sendRequest(t, ch, &SignalRequest{Name: "INT"}) || !sendRequest(t, ch, &BreakRequest{Millis: 10}) {
		t.Error("signal or break while running: got refused, want accepted")
	}
	if got, want := h.types(), "exec,signal,break"; got != want {
		t.Errorf("reached the handler: got %s, want %s", got, want)
	}
	if env := s.Environ(); len(env) != 0 {
		t.Errorf("Environ: got %v, want none", env)
	}
	if _, ok := s.Pty(); ok {
		t.Error("Pty: got a pty, want none")
	}
	close(h.release)
}

func TestAcceptEnv(t *testing.T) {
	h := newRecorder()
	h.refuse = func(r Request) bool { e, ok := r.(*EnvRequest); return ok && e.Name == "LC_DENY" }
	cfg := &Config{AcceptEnv: func(name, _ string) bool { return name == "LANG" || strings.HasPrefix(name, "LC_") }}
	sv := startServer(t, context.Background(), cfg, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	for _, tt := range []struct {
		env  EnvRequest
		want bool
	}{
		{EnvRequest{"LANG", "C.UTF-8"}, true},
		{EnvRequest{"LD_PRELOAD", "/evil.so"}, false},
		{EnvRequest{"LC_ALL", "C"}, true},
		{EnvRequest{"LC_DENY", "x"}, false},
	} {
		if got := sendRequest(t, ch, &tt.env); got != tt.want {
			t.Errorf("env %s: got accepted %v, want %v", tt.env.Name, got, tt.want)
		}
	}
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	s := waitFor(t, h.session, "Serve")
	want := []EnvRequest{{"LANG", "C.UTF-8"}, {"LC_ALL", "C"}}
	if got := s.Environ(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Environ: got %v, want %v", got, want)
	}
	if got, want := h.types(), "env,env,env,shell"; got != want {
		t.Errorf("reached the handler: got %s, want %s (LD_PRELOAD must not)", got, want)
	}
	close(h.release)

	// The zero Config refuses every variable.
	sv2 := startServer(t, context.Background(), nil, &testHandler{})
	ch2, _ := openSession(t, sv2.client)
	defer ch2.Close()
	if sendRequest(t, ch2, &EnvRequest{"LANG", "C"}) {
		t.Error("env with nil AcceptEnv: got accepted, want refused")
	}
}

func TestMalformedRequestRefusedChannelUsable(t *testing.T) {
	h := newRecorder()
	cfg := &Config{AcceptEnv: func(string, string) bool { return true }, Limits: Limits{MaxEnvValue: 8}}
	sv := startServer(t, context.Background(), cfg, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	bad := []struct{ typ, payload string }{
		{"pty-req", "\x00\x00\x00\xffgarbage"},
		{"env", string((&EnvRequest{Name: "A", Value: "123456789"}).Marshal())},
		{"shell", "x"},
	}
	for _, b := range bad {
		ok, err := ch.SendRequest(b.typ, true, []byte(b.payload))
		if err != nil || ok {
			t.Errorf("%s %q: got %v, %v; want refused", b.typ, b.payload, ok, err)
		}
	}
	if !sendRequest(t, ch, &EnvRequest{Name: "A", Value: "12345678"}) {
		t.Error("valid env after malformed requests: got refused, want accepted")
	}
	if !sendRequest(t, ch, &ExecRequest{Command: "x"}) {
		t.Fatal("exec after malformed requests: got refused, want accepted")
	}
	waitFor(t, h.session, "Serve")
	if got, want := h.types(), "env,exec"; got != want {
		t.Errorf("reached the handler: got %s, want %s", got, want)
	}
	close(h.release)
}

// TestRequestsInOrder sends requests without waiting for replies while the
// handler is slow, then one that wants a reply: the handler sees them in
// order, and the reply comes after all of them were handled.
func TestRequestsInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	h := &testHandler{handle: func(s *Session, r Request) error {
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		got = append(got, r.(*SignalRequest).Name)
		mu.Unlock()
		return nil
	}}
	sv := startServer(t, context.Background(), nil, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	var want []string
	for i := range 20 {
		name := string(rune('A' + i))
		want = append(want, name)
		if _, err := ch.SendRequest("signal", false, (&SignalRequest{Name: name}).Marshal()); err != nil {
			t.Fatal(err)
		}
	}
	want = append(want, "LAST")
	if !sendRequest(t, ch, &SignalRequest{Name: "LAST"}) {
		t.Fatal("signal: got refused, want accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("handled: got %v, want %v", got, want)
	}
}

// TestEOFAfterBothStreams checks that EOF waits for stderr after stdout's
// CloseWrite, that stderr written after it arrives, and that Stderr's Close
// then sends EOF while the program still runs.
func TestEOFAfterBothStreams(t *testing.T) {
	step := make(chan struct{})
	written := make(chan error, 2)
	h := &testHandler{serve: func(s *Session) {
		io.WriteString(s, "out")
		s.CloseWrite()
		_, err := io.WriteString(s, "late")
		written <- err
		<-step
		io.WriteString(s.Stderr(), "err after stdout")
		s.Stderr().Close()
		_, err = io.WriteString(s.Stderr(), "late")
		written <- err
		select {
		case <-step:
		case <-s.Context().Done():
		}
	}}
	sv := startServer(t, context.Background(), nil, h)
	ch, reqs := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	if err := waitFor(t, written, "write after CloseWrite"); !errors.Is(err, ErrClosedWrite) {
		t.Errorf("Write after CloseWrite: got %v, want ErrClosedWrite", err)
	}
	buf := make([]byte, 16)
	n, err := ch.Read(buf)
	if string(buf[:n]) != "out" || err != nil {
		t.Fatalf("stdout: got %q, %v; want out", buf[:n], err)
	}
	stdoutDone := make(chan error, 1)
	go func() {
		_, err := ch.Read(buf)
		stdoutDone <- err
	}()
	select {
	case err := <-stdoutDone:
		t.Fatalf("stdout ended before stderr was finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	step <- struct{}{}
	if err := waitFor(t, stdoutDone, "EOF"); err != io.EOF {
		t.Fatalf("stdout after stderr closed: got %v, want io.EOF", err)
	}
	stderr, err := io.ReadAll(ch.Stderr())
	if string(stderr) != "err after stdout" || err != nil {
		t.Errorf("stderr: got %q, %v; want %q", stderr, err, "err after stdout")
	}
	if err := waitFor(t, written, "write after Stderr().Close"); !errors.Is(err, ErrClosedWrite) {
		t.Errorf("Stderr().Write after Close: got %v, want ErrClosedWrite", err)
	}
	select {
	case r, ok := <-reqs:
		t.Fatalf("channel ended at EOF (request %v, open %v); want it open while Serve runs", r, ok)
	case <-time.After(50 * time.Millisecond):
	}
	close(step)
}

// TestCloseWaitsForOutput has Serve return while another goroutine still
// writes more than the window: all of it arrives before EOF and exit-status.
func TestCloseWaitsForOutput(t *testing.T) {
	const size = 6 << 20 // three times x/crypto's 2 MiB window
	var wg sync.WaitGroup
	h := &testHandler{serve: func(s *Session) {
		wg.Go(func() { s.Write(bytes.Repeat([]byte("x"), size)) })
		waitInflight(s)
		s.Exit(5)
	}}
	sv := startServer(t, context.Background(), nil, h)
	defer wg.Wait()
	sess, err := sv.client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out countWriter
	sess.Stdout = &out
	err = sess.Run("big")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 5 {
		t.Errorf("Run: got %v, want exit status 5", err)
	}
	if out.n != size {
		t.Errorf("stdout: got %d bytes, want %d", out.n, size)
	}
}

// waitInflight waits until a write of s is inside the x/crypto channel.
func waitInflight(s *Session) {
	for {
		s.out.Lock()
		n := s.inflight
		s.out.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// TestCloseTimeout: against a client that never reads, closing gives up
// after CloseTimeout instead of waiting forever.
func TestCloseTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var wg sync.WaitGroup
	writeErr := make(chan error, 1)
	returned := make(chan time.Time, 1)
	h := &testHandler{serve: func(s *Session) {
		wg.Go(func() {
			_, err := s.Write(make([]byte, 4<<20))
			writeErr <- err
		})
		waitInflight(s)
		returned <- time.Now()
	}}
	sv := startServer(t, context.Background(), &Config{CloseTimeout: timeout}, h)
	defer wg.Wait()
	ch, reqs := openSession(t, sv.client)
	defer ch.Close()
	if !sendRequest(t, ch, &ShellRequest{}) {
		t.Fatal("shell: got refused, want accepted")
	}
	start := waitFor(t, returned, "Serve to return")
	for range reqs {
	} // closed when the server closes the channel
	if d := time.Since(start); d < timeout-50*time.Millisecond || d > 5*time.Second {
		t.Errorf("channel closed %v after Serve returned, want about %v", d, timeout)
	}
	if err := waitFor(t, writeErr, "the blocked write"); err == nil {
		t.Error("write blocked on a full window: got nil after close, want an error")
	}
}

// TestOtherRequestReachesHandler: a request type the library does not know
// goes to the Handler raw, and its verdict is the answer.
func TestOtherRequestReachesHandler(t *testing.T) {
	var got []*OtherRequest
	var mu sync.Mutex
	h := &testHandler{handle: func(s *Session, r Request) error {
		o, ok := r.(*OtherRequest)
		if !ok {
			return nil
		}
		mu.Lock()
		got = append(got, o)
		mu.Unlock()
		if o.Name == "auth-agent-req@openssh.com" {
			return nil
		}
		return errors.New("refused")
	}}
	sv := startServer(t, context.Background(), nil, h)
	ch, _ := openSession(t, sv.client)
	defer ch.Close()
	if ok, err := ch.SendRequest("auth-agent-req@openssh.com", true, nil); err != nil || !ok {
		t.Fatalf("auth-agent-req: got %v, %v; want accepted", ok, err)
	}
	if ok, err := ch.SendRequest("x11-req", true, []byte{1, 2, 3}); err != nil || ok {
		t.Fatalf("x11-req: got %v, %v; want refused", ok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Type() != "auth-agent-req@openssh.com" || string(got[1].Marshal()) != "\x01\x02\x03" {
		t.Fatalf("got %+v, want the two requests as sent", got)
	}
}
