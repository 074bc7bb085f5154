package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/zone"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink collects audit events and lets a test wait for them.
type sink struct {
	mu     sync.Mutex
	events []audit.Event
	added  chan struct{}
}

func newSink() *sink { return &sink{added: make(chan struct{}, 1000)} }

func (s *sink) Write(_ context.Context, e audit.Event) error {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	s.added <- struct{}{}
	return nil
}

// wait returns the first event of type typ for session id, waiting for it.
func (s *sink) wait(t *testing.T, typ, id string) audit.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if e.Type == typ && e.SessionID == id {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("audit event %s for %s: got none in 5s, want one", typ, id)
		}
	}
}

func testZones(t *testing.T) *zone.Tree {
	t.Helper()
	p := func(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }
	tr, err := zone.New([]zone.Spec{
		{Name: "loopback", Networks: p("127.0.0.0/24")},
		{Name: "office", Parent: "loopback", Networks: p("127.0.0.2/32")},
		{Name: "lab", Networks: p("127.0.0.3/32")},
	})
	if err != nil {
		t.Fatalf("zone.New: %v", err)
	}
	return tr
}

type harness struct {
	svc   *Service
	addr  net.Addr
	sink  *sink
	serve chan error
}

// start runs a service "ssh-in" of gateway "gw1" on 127.0.0.1:0 admitting
// the office zone. The cleanup closes it and checks that Serve returned
// ErrServerClosed.
func start(t *testing.T, p Params) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	h := &harness{addr: ln.Addr(), sink: newSink(), serve: make(chan error, 1)}
	p.Gateway, p.Name, p.Listener, p.Audit = "gw1", "ssh-in", ln, h.sink
	if p.Zones == nil {
		p.Zones = testZones(t)
	}
	if p.ClientZones == nil {
		p.ClientZones = []string{"office"}
	}
	h.svc = New(p)
	go func() { h.serve <- h.svc.Serve() }()
	t.Cleanup(func() {
		if err := h.svc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-h.serve; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: got %v, want %v", err, ErrServerClosed)
		}
	})
	return h
}

func dialFrom(t *testing.T, src string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// greet is a Handler that writes the session id, then echoes lines until
// the client closes or the session ends.
func greet(ctx context.Context, m *session.Master, c net.Conn) {
	fmt.Fprintf(c, "%s\n", m.ID())
	_, _ = io.Copy(c, c)
}

func readLine(t *testing.T, c net.Conn) (string, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// expectClosed checks that the server closed c without sending anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err != io.EOF {
		t.Errorf("read from refused connection: got %d bytes, %v; want EOF", n, err)
	}
}

func TestZoneAccessControl(t *testing.T) {
	h := start(t, Params{Handler: greet})
	tests := []struct {
		src      string
		id       string
		verdict  audit.Verdict
		zone     string
		rule     string
		admitted bool
	}{
		{"127.0.0.2", "gw1/ssh-in:1", audit.Accept, "office", "services[ssh-in].client_zones", true},
		{"127.0.0.3", "gw1/ssh-in:2", audit.Reject, "lab", "services[ssh-in].client_zones", false},
		{"127.0.0.9", "gw1/ssh-in:3", audit.Reject, "loopback", "services[ssh-in].client_zones", false},
		{"127.0.1.1", "gw1/ssh-in:4", audit.Reject, "", "zones", false},
		{"127.0.0.2", "gw1/ssh-in:5", audit.Accept, "office", "services[ssh-in].client_zones", true},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			c := dialFrom(t, tt.src, h.addr)
			if tt.admitted {
				got, err := readLine(t, c)
				if err != nil || got != tt.id {
					t.Fatalf("greeting: got %q, %v; want %q", got, err, tt.id)
				}
				fmt.Fprintf(c, "ping\n")
				if got, err := readLine(t, c); got != "ping" {
					t.Errorf("echo: got %q, %v; want ping", got, err)
				}
			} else {
				expectClosed(t, c)
			}
			e := h.sink.wait(t, EventConnection, tt.id)
			if e.Verdict != tt.verdict || e.ClientZone != tt.zone || e.Rule != tt.rule || e.Service != "ssh-in" {
				t.Errorf("event: got verdict %q zone %q rule %q service %q, want %q %q %q ssh-in", e.Verdict, e.ClientZone, e.Rule, e.Service, tt.verdict, tt.zone, tt.rule)
			}
			if want := c.LocalAddr().String(); e.ClientAddr != want {
				t.Errorf("event client_addr: got %q, want %q", e.ClientAddr, want)
			}
			if !tt.admitted && !strings.Contains(e.Reason, "not permitted") && !strings.Contains(e.Reason, "no zone") {
				t.Errorf("event reason: got %q, want the denial", e.Reason)
			}
			if tt.admitted {
				c.Close()
				end := h.sink.wait(t, EventConnectionEnd, tt.id)
				if end.Reason != session.ErrClosed.Error() {
					t.Errorf("connection.end reason: got %q, want %q", end.Reason, session.ErrClosed)
				}
			}
		})
	}
}

func TestMaxSessions(t *testing.T) {
	h := start(t, Params{Handler: greet, MaxSessions: 2})
	first := dialFrom(t, "127.0.0.2", h.addr)
	second := dialFrom(t, "127.0.0.2", h.addr)
	for _, c := range []net.Conn{first, second} {
		if _, err := readLine(t, c); err != nil {
			t.Fatalf("greeting: %v", err)
		}
	}
	if got := len(h.svc.Live()); got != 2 {
		t.Errorf("live sessions: got %d, want 2", got)
	}
	third := dialFrom(t, "127.0.0.2", h.addr)
	expectClosed(t, third)
	e := h.sink.wait(t, EventConnection, "gw1/ssh-in:3")
	if e.Verdict != audit.Reject || e.Rule != "services[ssh-in].max_sessions" || e.ClientZone != "office" {
		t.Errorf("third: got verdict %q rule %q zone %q, want reject services[ssh-in].max_sessions office", e.Verdict, e.Rule, e.ClientZone)
	}

	first.Close()
	h.sink.wait(t, EventConnectionEnd, "gw1/ssh-in:1")
	fourth := dialFrom(t, "127.0.0.2", h.addr)
	if got, err := readLine(t, fourth); got != "gw1/ssh-in:4" {
		t.Errorf("after a session ended: got %q, %v; want gw1/ssh-in:4", got, err)
	}
	live := h.svc.Live()
	if len(live) != 2 || live[0].ID() != "gw1/ssh-in:2" || live[1].ID() != "gw1/ssh-in:4" {
		var ids []string
		for _, m := range live {
			ids = append(ids, m.ID())
		}
		t.Errorf("live: got %v, want [gw1/ssh-in:2 gw1/ssh-in:4]", ids)
	}
}

func TestKillLiveSession(t *testing.T) {
	h := start(t, Params{Handler: greet})
	c := dialFrom(t, "127.0.0.2", h.addr)
	if _, err := readLine(t, c); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	live := h.svc.Live()
	if len(live) != 1 {
		t.Fatalf("live: got %d sessions, want 1", len(live))
	}
	live[0].End(fmt.Errorf("%w: by operator", session.ErrRevoked))
	expectClosed(t, c)
	e := h.sink.wait(t, EventConnectionEnd, "gw1/ssh-in:1")
	if e.Reason != "session: revoked: by operator" {
		t.Errorf("connection.end reason: got %q, want %q", e.Reason, "session: revoked: by operator")
	}
}

func TestShutdownWaits(t *testing.T) {
	release := make(chan struct{})
	var causes sync.Map
	h := start(t, Params{Handler: func(ctx context.Context, m *session.Master, c net.Conn) {
		fmt.Fprintf(c, "%s\n", m.ID())
		<-release
		causes.Store(m.ID(), context.Cause(ctx))
	}})
	c := dialFrom(t, "127.0.0.2", h.addr)
	if _, err := readLine(t, c); err != nil {
		t.Fatalf("greeting: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.svc.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a live session: got %v, want %v", err, context.DeadlineExceeded)
	}
	if err := <-h.serve; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: got %v, want %v", err, ErrServerClosed)
	}
	h.serve <- ErrServerClosed // for the cleanup
	if d, err := net.DialTimeout("tcp", h.addr.String(), time.Second); err == nil {
		d.Close()
		t.Errorf("dial after Shutdown: got a connection, want refused")
	}
	if got := len(h.svc.Live()); got != 1 {
		t.Errorf("live during Shutdown: got %d, want 1", got)
	}

	close(release)
	if err := h.svc.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after the session ended: got %v, want nil", err)
	}
	if v, _ := causes.Load("gw1/ssh-in:1"); v != nil {
		t.Errorf("handler context during Shutdown: got cause %v, want live", v)
	}
	if got := len(h.svc.Live()); got != 0 {
		t.Errorf("live after Shutdown: got %d, want 0", got)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	var mu sync.Mutex
	causes := map[string]error{}
	record := func(m *session.Master, ctx context.Context) {
		mu.Lock()
		defer mu.Unlock()
		causes[m.ID()] = context.Cause(ctx)
	}
	h := start(t, Params{Handler: func(ctx context.Context, m *session.Master, c net.Conn) {
		fmt.Fprintf(c, "%s\n", m.ID())
		if m.InstanceID() == 1 {
			<-ctx.Done() // a handler that watches its context
		} else {
			_, _ = io.Copy(io.Discard, c) // one that only notices its conn closing
		}
		record(m, ctx)
	}})
	var conns []net.Conn
	for range 2 {
		c := dialFrom(t, "127.0.0.2", h.addr)
		if _, err := readLine(t, c); err != nil {
			t.Fatalf("greeting: %v", err)
		}
		conns = append(conns, c)
	}
	if err := h.svc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, c := range conns {
		expectClosed(t, c)
		id := fmt.Sprintf("gw1/ssh-in:%d", i+1)
		mu.Lock()
		got := causes[id]
		mu.Unlock()
		if !errors.Is(got, session.ErrShutdown) {
			t.Errorf("%s cause: got %v, want %v", id, got, session.ErrShutdown)
		}
		if e := h.sink.wait(t, EventConnectionEnd, id); e.Reason != session.ErrShutdown.Error() {
			t.Errorf("%s connection.end reason: got %q, want %q", id, e.Reason, session.ErrShutdown)
		}
	}
	if got := len(h.svc.Live()); got != 0 {
		t.Errorf("live after Close: got %d, want 0", got)
	}
}

// flakyListener fails its first Accepts with a temporary error, as a
// listener does when the process runs out of file descriptors.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, tempErr{}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestTemporaryAcceptErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := newSink()
	svc := New(Params{Gateway: "gw1", Name: "ssh-in", Listener: &flakyListener{Listener: ln, fails: 3},
		Zones: testZones(t), ClientZones: []string{"office"}, Audit: s, Handler: greet})
	serve := make(chan error, 1)
	go func() { serve <- svc.Serve() }()
	c := dialFrom(t, "127.0.0.2", ln.Addr())
	if got, err := readLine(t, c); got != "gw1/ssh-in:1" {
		t.Errorf("after temporary errors: got %q, %v; want gw1/ssh-in:1", got, err)
	}
	c.Close()
	if err := svc.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-serve; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: got %v, want %v", err, ErrServerClosed)
	}
}

func TestServeListenerError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ln.Close()
	svc := New(Params{Gateway: "gw1", Name: "ssh-in", Listener: ln, Handler: greet})
	err = svc.Serve()
	if err == nil || errors.Is(err, ErrServerClosed) || !strings.HasPrefix(err.Error(), "service: ssh-in: accept: ") {
		t.Errorf("Serve on a closed listener: got %v, want a service: ssh-in: accept error", err)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestRelease checks that the Release of the parameters in force is called
// once they serve no new connection: when Reconfigure replaces them, and
// when the service stops accepting.
func TestRelease(t *testing.T) {
	var mu sync.Mutex
	released := map[string]int{}
	release := func(name string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			released[name]++
		}
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return released[name]
	}
	h := start(t, Params{Handler: greet, Release: release("first")})
	if n := count("first"); n != 0 {
		t.Fatalf("first released %d times before anything replaced it", n)
	}
	h.svc.Reconfigure(Params{Handler: greet, Release: release("second")})
	if n, m := count("first"), count("second"); n != 1 || m != 0 {
		t.Fatalf("after Reconfigure: first released %d times, second %d; want 1, 0", n, m)
	}
	if err := h.svc.Retire(); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Retire(); err != nil {
		t.Fatal(err)
	}
	if n, m := count("first"), count("second"); n != 1 || m != 1 {
		t.Fatalf("after Retire twice: first released %d times, second %d; want 1, 1", n, m)
	}
}

// TestInstance checks that session ids take their instance from
// Params.Instance and that a connection it cannot number is refused.
func TestInstance(t *testing.T) {
	var mu sync.Mutex
	next, fail := uint64(500), false
	h := start(t, Params{Handler: greet, Instance: func() (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return 0, errors.New("store down")
		}
		next++
		return next, nil
	}})
	for _, want := range []string{"gw1/ssh-in:501", "gw1/ssh-in:502"} {
		c := dialFrom(t, "127.0.0.2", h.addr)
		if got, err := readLine(t, c); err != nil || got != want {
			t.Fatalf("session id: got %q, %v, want %q", got, err, want)
		}
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	expectClosed(t, dialFrom(t, "127.0.0.2", h.addr))
}
