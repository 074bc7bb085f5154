package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
)

func TestStartupsRandomEarlyDrop(t *testing.T) {
	// With start 10, rate 30, full 100 (OpenSSH's default), the refusal
	// probability at n unauthenticated connections is 30% + 70% *
	// (n-10)/90; IntN(100) < pct refuses.
	tests := []struct {
		name    string
		open    int
		roll    int
		refused bool
	}{
		{"below start never drops", 9, 0, false},
		{"at start drops at rate", 10, 29, true},
		{"at start keeps above rate", 10, 30, false},
		{"half way", 55, 64, true},
		{"half way keeps", 55, 65, false},
		{"at full always drops", 100, 99, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStartups(StartupsParams{Start: 10, Rate: 30, Full: 100, IntN: func(int) int { return 99 }})
			src := netip.MustParseAddr("192.0.2.1")
			for i := range tt.open {
				if _, err := s.Begin(src); err != nil {
					t.Fatalf("filling connection %d: %v", i, err)
				}
			}
			s.p.IntN = func(int) int { return tt.roll }
			_, err := s.Begin(src)
			var le *LimitError
			if got := errors.As(err, &le); got != tt.refused {
				t.Fatalf("got refused %v (%v), want %v", got, err, tt.refused)
			}
			if tt.refused && le.Rule != RuleMaxStartups {
				t.Errorf("got rule %q, want %q", le.Rule, RuleMaxStartups)
			}
		})
	}
}

func TestStartupsReleaseOnce(t *testing.T) {
	s := NewStartups(StartupsParams{Start: 1, Rate: 100, Full: 1, PerSource: 1})
	src := netip.MustParseAddr("192.0.2.1")
	release, err := s.Begin(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(netip.MustParseAddr("192.0.2.2")); !errors.Is(err, ErrLimit) {
		t.Fatalf("second connection: got %v, want ErrLimit", err)
	}
	release()
	release()
	if got := s.Unauthenticated(); got != 0 {
		t.Fatalf("unauthenticated after a double release: got %d, want 0", got)
	}
}

func TestAuthPenalty(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := NewStartups(StartupsParams{Penalty: time.Minute, PenaltyAfter: 3, Clock: clock})
	bad, good := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 2 {
		if s.Failed(bad) {
			t.Fatalf("failure %d started a penalty, want none before 3", i+1)
		}
	}
	if !s.Failed(bad) {
		t.Fatal("third failure: got no penalty, want one")
	}
	_, err := s.Begin(bad)
	if le, ok := errors.AsType[*LimitError](err); !ok || le.Rule != RuleAuthPenalty {
		t.Fatalf("penalised source: got %v, want a LimitError by %s", err, RuleAuthPenalty)
	}
	if release, err := s.Begin(good); err != nil {
		t.Fatalf("other source: got %v, want admitted", err)
	} else {
		release()
	}
	now = now.Add(time.Minute + time.Second)
	release, err := s.Begin(bad)
	if err != nil {
		t.Fatalf("after the penalty: got %v, want admitted", err)
	}
	release()
	// Old failures expire: two now and one after the penalty period do not
	// add up to a penalty.
	s.Failed(bad)
	s.Failed(bad)
	now = now.Add(2 * time.Minute)
	if s.Failed(bad) {
		t.Fatal("failures spread beyond the penalty period: got a penalty, want none")
	}
	s.Succeeded(bad)
	if got := len(s.failures); got != 0 {
		t.Fatalf("failures tracked after success: got %d, want 0", got)
	}
}

// authLines is a Handler for the limits tests: it greets with the session
// id, then each line "USER" authenticates the session as USER and is
// answered "ok" or "refused RULE", after which the connection is echoed.
func authLines(ctx context.Context, m *session.Master, c net.Conn) {
	fmt.Fprintf(c, "%s\n", m.ID())
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	m.SetUser(strings.TrimSpace(line), nil, "test")
	if rule, err := Authenticated(m); err != nil {
		fmt.Fprintf(c, "refused %s\n", rule)
		m.End(err)
		return
	}
	fmt.Fprintln(c, "ok")
	_, _ = r.WriteTo(c)
}

// login connects from src and authenticates as user, returning the
// connection and the server's answer ("" when it was closed first).
func login(t *testing.T, h *harness, src, user string) (net.Conn, string) {
	t.Helper()
	c := dialFrom(t, src, h.addr)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		return c, ""
	}
	fmt.Fprintln(c, user)
	answer, _ := r.ReadString('\n')
	return c, strings.TrimSpace(answer)
}

func TestPerSourceMaxStartupsOverTCP(t *testing.T) {
	st := NewStartups(StartupsParams{PerSource: 2})
	h := start(t, Params{Handler: authLines, Startups: st, ClientZones: []string{"loopback", "lab"}})
	a := dialFrom(t, "127.0.0.2", h.addr)
	b := dialFrom(t, "127.0.0.2", h.addr)
	// The greeting is the session id: a and b are served concurrently, so
	// which of them is instance 1 is not known in advance.
	var ids []string
	for _, c := range []net.Conn{a, b} {
		id, err := readLine(t, c)
		if err != nil {
			t.Fatalf("greeting: %v", err)
		}
		ids = append(ids, strings.TrimSpace(id))
	}
	third := dialFrom(t, "127.0.0.2", h.addr)
	expectClosed(t, third)
	e := h.sink.wait(t, EventConnection, "gw1/ssh-in:3")
	if e.Verdict != audit.Reject || e.Rule != RulePerSourceMaxStartups {
		t.Errorf("third from one source: got %q by %q, want reject by %s", e.Verdict, e.Rule, RulePerSourceMaxStartups)
	}
	if _, answer := login(t, h, "127.0.0.3", "bob"); answer != "ok" {
		t.Errorf("another source: got %q, want ok", answer)
	}
	// Authenticating frees the slot.
	fmt.Fprintln(a, "alice")
	if _, err := readLine(t, a); err != nil {
		t.Fatal(err)
	}
	if _, answer := login(t, h, "127.0.0.2", "carol"); answer != "ok" {
		t.Errorf("after one authenticated: got %q, want ok", answer)
	}
	if got := st.Unauthenticated(); got != 1 {
		t.Errorf("unauthenticated: got %d, want 1 (b)", got)
	}
	b.Close()
	h.sink.wait(t, EventConnectionEnd, ids[1])
	if got := st.Unauthenticated(); got != 0 {
		t.Errorf("unauthenticated after b closed: got %d, want 0", got)
	}
}

func TestMaxStartupsFullOverTCP(t *testing.T) {
	st := NewStartups(StartupsParams{Start: 1, Rate: 100, Full: 1})
	h := start(t, Params{Handler: authLines, Startups: st})
	first := dialFrom(t, "127.0.0.2", h.addr)
	if _, err := readLine(t, first); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, dialFrom(t, "127.0.0.2", h.addr))
	if e := h.sink.wait(t, EventConnection, "gw1/ssh-in:2"); e.Rule != RuleMaxStartups {
		t.Errorf("got rule %q, want %s", e.Rule, RuleMaxStartups)
	}
}

func TestMaxSessionsPerUser(t *testing.T) {
	h := start(t, Params{Handler: authLines, MaxSessionsPerUser: 2})
	var alice []net.Conn
	for range 2 {
		c, answer := login(t, h, "127.0.0.2", "alice")
		if answer != "ok" {
			t.Fatalf("alice within the limit: got %q, want ok", answer)
		}
		alice = append(alice, c)
	}
	if _, answer := login(t, h, "127.0.0.2", "alice"); answer != "refused services[ssh-in].max_sessions_per_user" {
		t.Fatalf("third alice: got %q, want refused services[ssh-in].max_sessions_per_user", answer)
	}
	if _, answer := login(t, h, "127.0.0.2", "bob"); answer != "ok" {
		t.Fatalf("bob: got %q, want ok", answer)
	}
	alice[0].Close()
	h.sink.wait(t, EventConnectionEnd, "gw1/ssh-in:1")
	if _, answer := login(t, h, "127.0.0.2", "alice"); answer != "ok" {
		t.Fatalf("alice after one ended: got %q, want ok", answer)
	}
}

func TestStartupsConcurrent(t *testing.T) {
	s := NewStartups(StartupsParams{Start: 5, Rate: 50, Full: 20, PerSource: 8})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			src := netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 4)})
			for range 100 {
				if release, err := s.Begin(src); err == nil {
					release()
				}
			}
		})
	}
	wg.Wait()
	if got := s.Unauthenticated(); got != 0 {
		t.Fatalf("unauthenticated after all released: got %d, want 0", got)
	}
}
