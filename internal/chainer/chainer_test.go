package chainer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// countingListener accepts on a loopback port and counts connections.
type countingListener struct {
	ln      net.Listener
	accepts atomic.Int64
	done    chan struct{}
}

func listen(t *testing.T, addr string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	l := &countingListener{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepts.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(l.close)
	return l
}

// close stops the listener and waits for its accept loop.
func (l *countingListener) close() {
	l.ln.Close()
	<-l.done
}

func (l *countingListener) addr() string { return l.ln.Addr().String() }

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func permitAll(netip.AddrPort) error { return nil }

func outcomes(attempts []Attempt) []Outcome {
	var out []Outcome
	for _, a := range attempts {
		out = append(out, a.Outcome)
	}
	return out
}

func checkOutcomes(t *testing.T, attempts []Attempt, want ...Outcome) {
	t.Helper()
	if got := outcomes(attempts); !slices.Equal(got, want) {
		t.Errorf("got outcomes %v, want %v (attempts %+v)", got, want, attempts)
	}
}

func mustConnect(t *testing.T, c *Chainer, targets ...string) []Attempt {
	t.Helper()
	conn, attempts, err := c.Connect(context.Background(), targets)
	if err != nil {
		t.Fatalf("Connect: got error %v, want nil (attempts %+v)", err, attempts)
	}
	conn.Close()
	return attempts
}

func mustFail(t *testing.T, c *Chainer, ctx context.Context, wantKind Kind, targets ...string) (*Error, []Attempt) {
	t.Helper()
	conn, attempts, err := c.Connect(ctx, targets)
	if err == nil {
		conn.Close()
		t.Fatalf("Connect: got conn to %v, want error of kind %v", conn.RemoteAddr(), wantKind)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got error %T %v, want *chainer.Error", err, err)
	}
	if ce.Kind != wantKind {
		t.Errorf("got kind %v, want %v (%v)", ce.Kind, wantKind, err)
	}
	if !slices.Equal(outcomes(ce.Attempts), outcomes(attempts)) {
		t.Errorf("got error attempts %+v, want the returned %+v", ce.Attempts, attempts)
	}
	if !strings.HasPrefix(err.Error(), "chainer: ") {
		t.Errorf("got message %q, want prefix %q", err, "chainer: ")
	}
	return ce, attempts
}

func TestConnectOK(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	c := New(Params{Timeout: time.Second, Permit: permitAll})
	attempts := mustConnect(t, c, l.addr())
	checkOutcomes(t, attempts, Connected)
	if got, want := attempts[0].Addr.String(), l.addr(); got != want {
		t.Errorf("got addr %s, want %s", got, want)
	}
	if attempts[0].Target != l.addr() || attempts[0].Err != nil {
		t.Errorf("got attempt %+v, want target %s and no error", attempts[0], l.addr())
	}
}

func TestConnectRefused(t *testing.T) {
	dead := closedPort(t)
	c := New(Params{Timeout: time.Second, Permit: permitAll})
	ce, attempts := mustFail(t, c, context.Background(), KindUnreachable, dead)
	checkOutcomes(t, attempts, Refused)
	if !errors.Is(ce, syscall.ECONNREFUSED) {
		t.Errorf("got error %v, want it to wrap ECONNREFUSED", ce)
	}
}

func TestFailover(t *testing.T) {
	dead := closedPort(t)
	l := listen(t, "127.0.0.1:0")
	var mu sync.Mutex
	var permitted []string
	c := New(Params{Timeout: time.Second, Permit: func(a netip.AddrPort) error {
		mu.Lock()
		defer mu.Unlock()
		permitted = append(permitted, a.String())
		return nil
	}})
	attempts := mustConnect(t, c, dead, l.addr())
	checkOutcomes(t, attempts, Refused, Connected)
	if want := []string{dead, l.addr()}; !slices.Equal(permitted, want) {
		t.Errorf("got Permit calls %v, want %v", permitted, want)
	}
}

func TestDownCache(t *testing.T) {
	dead := closedPort(t)
	l := listen(t, "127.0.0.1:0")
	now := time.Unix(1_700_000_000, 0)
	c := New(Params{Timeout: time.Second, DownTTL: time.Minute, Permit: permitAll, Clock: func() time.Time { return now }})

	checkOutcomes(t, mustConnect(t, c, dead, l.addr()), Refused, Connected)
	now = now.Add(59 * time.Second)
	attempts := mustConnect(t, c, dead, l.addr())
	checkOutcomes(t, attempts, SkippedDown, Connected)
	if got := attempts[0].Addr.String(); got != dead {
		t.Errorf("got skipped addr %s, want %s", got, dead)
	}
	now = now.Add(time.Second) // the TTL has passed
	checkOutcomes(t, mustConnect(t, c, dead, l.addr()), Refused, Connected)
}

func TestDownCacheDisabled(t *testing.T) {
	dead := closedPort(t)
	l := listen(t, "127.0.0.1:0")
	c := New(Params{Timeout: time.Second, Permit: permitAll})
	checkOutcomes(t, mustConnect(t, c, dead, l.addr()), Refused, Connected)
	checkOutcomes(t, mustConnect(t, c, dead, l.addr()), Refused, Connected)
}

func TestAllDownTriedAnyway(t *testing.T) {
	dead := closedPort(t)
	c := New(Params{Timeout: time.Second, DownTTL: time.Hour, Permit: permitAll})
	_, attempts := mustFail(t, c, context.Background(), KindUnreachable, dead)
	checkOutcomes(t, attempts, Refused)
	_, attempts = mustFail(t, c, context.Background(), KindUnreachable, dead)
	checkOutcomes(t, attempts, SkippedDown, Refused)

	// The host comes back while still in the cache: it is found anyway, and
	// leaves the cache.
	listen(t, dead)
	checkOutcomes(t, mustConnect(t, c, dead), SkippedDown, Connected)
	checkOutcomes(t, mustConnect(t, c, dead), Connected)
}

func TestPermitRefusalNeverDials(t *testing.T) {
	forbidden := listen(t, "127.0.0.1:0")
	allowed := listen(t, "127.0.0.1:0")
	errZone := errors.New("zone servers not permitted")
	forbiddenAddr := netip.MustParseAddrPort(forbidden.addr())
	c := New(Params{Timeout: time.Second, DownTTL: time.Hour, Permit: func(a netip.AddrPort) error {
		if a == forbiddenAddr {
			return errZone
		}
		return nil
	}})

	ce, attempts := mustFail(t, c, context.Background(), KindDenied, forbidden.addr())
	checkOutcomes(t, attempts, Denied)
	if !errors.Is(ce, errZone) || attempts[0].Addr != forbiddenAddr {
		t.Errorf("got attempt %+v, error %v, want Denied at %s wrapping %v", attempts[0], ce, forbiddenAddr, errZone)
	}
	checkOutcomes(t, mustConnect(t, c, forbidden.addr(), allowed.addr()), Denied, Connected)
	// A denial does not mark the address down.
	_, attempts = mustFail(t, c, context.Background(), KindDenied, forbidden.addr())
	checkOutcomes(t, attempts, Denied)

	// Dial the forbidden listener once ourselves; connections are accepted
	// in order, so once ours is counted any dial by the chainer would be too.
	conn, err := net.Dial("tcp", forbidden.addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for forbidden.accepts.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := forbidden.accepts.Load(); got != 1 {
		t.Errorf("got %d connections at the denied listener, want 1 (ours)", got)
	}
}

// blockingDialer never connects; it returns when ctx is done.
type blockingDialer struct{ calls atomic.Int64 }

func (d *blockingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.calls.Add(1)
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
}

func TestTimeout(t *testing.T) {
	d := &blockingDialer{}
	c := New(Params{Timeout: 50 * time.Millisecond, DownTTL: time.Hour, Permit: permitAll, Dialer: d})
	start := time.Now()
	ce, attempts := mustFail(t, c, context.Background(), KindUnreachable, "127.0.0.1:22")
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("got Connect taking %v, want about the 50ms timeout", elapsed)
	}
	checkOutcomes(t, attempts, Timeout)
	if !errors.Is(ce, context.DeadlineExceeded) {
		t.Errorf("got error %v, want it to wrap context.DeadlineExceeded", ce)
	}
	// A timed-out address is marked down.
	_, attempts = mustFail(t, c, context.Background(), KindUnreachable, "127.0.0.1:22")
	checkOutcomes(t, attempts, SkippedDown, Timeout)
	if got := d.calls.Load(); got != 2 {
		t.Errorf("got %d dials, want 2", got)
	}
}

func TestCanceled(t *testing.T) {
	d := &blockingDialer{}
	c := New(Params{DownTTL: time.Hour, Permit: permitAll, Dialer: d})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	ce, attempts := mustFail(t, c, ctx, KindCanceled, "127.0.0.1:22", "127.0.0.1:23")
	checkOutcomes(t, attempts, Canceled)
	if !errors.Is(ce, context.Canceled) {
		t.Errorf("got error %v, want it to wrap context.Canceled", ce)
	}
	// Cancellation is not the address's fault: it is not marked down.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	_, attempts = mustFail(t, c, ctx2, KindCanceled, "127.0.0.1:22")
	checkOutcomes(t, attempts, Canceled)
}

func TestLocalhost(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(l.addr())
	c := New(Params{Timeout: time.Second, Resolver: net.DefaultResolver, Permit: func(a netip.AddrPort) error {
		if !a.Addr().IsLoopback() {
			return errors.New("not loopback")
		}
		return nil
	}})
	target := "localhost:" + port
	attempts := mustConnect(t, c, target)
	last := attempts[len(attempts)-1]
	if last.Outcome != Connected || last.Addr.String() != l.addr() || last.Target != target {
		t.Errorf("got last attempt %+v, want Connected to %s for %s", last, l.addr(), target)
	}
	for _, a := range attempts {
		if !a.Addr.Addr().IsLoopback() {
			t.Errorf("got attempt at %s, want loopback only", a.Addr)
		}
	}
}

// staticResolver answers every lookup with the same addresses.
type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if host == "unknown.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return r, nil
}

func TestResolvedAddresses(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(l.addr())
	dead := closedPort(t)
	_, deadPort, _ := net.SplitHostPort(dead)
	loop := netip.MustParseAddr("127.0.0.1")
	// The IPv4-mapped and the plain form of one address are one candidate,
	// tried in its IPv4 form.
	r := staticResolver{netip.AddrFrom16(loop.As16()), loop}
	var permitted []netip.AddrPort
	c := New(Params{Timeout: time.Second, Resolver: r, Permit: func(a netip.AddrPort) error {
		permitted = append(permitted, a)
		return nil
	}})
	attempts := mustConnect(t, c, "unknown.test:22", "db.test:"+deadPort, "db.test:"+port)
	checkOutcomes(t, attempts, Unresolved, Refused, Connected)
	want := []netip.AddrPort{{}, netip.MustParseAddrPort(dead), netip.MustParseAddrPort(l.addr())}
	for i, a := range attempts {
		if i < len(want) && a.Addr != want[i] {
			t.Errorf("attempt %d: got addr %s, want %s", i, a.Addr, want[i])
		}
	}
	if !slices.Equal(permitted, want[1:]) {
		t.Errorf("got Permit calls %v, want %v", permitted, want[1:])
	}
	var dnsErr *net.DNSError
	if !errors.As(attempts[0].Err, &dnsErr) {
		t.Errorf("got unresolved error %v, want a *net.DNSError inside", attempts[0].Err)
	}
}

func TestMalformedTargets(t *testing.T) {
	tests := []struct {
		name    string
		targets []string
	}{
		{"none", nil},
		{"no port", []string{"127.0.0.1"}},
		{"port zero", []string{"127.0.0.1:0"}},
		{"port name", []string{"127.0.0.1:ssh"}},
		{"port signed", []string{"127.0.0.1:+22"}},
		{"port too big", []string{"127.0.0.1:65536"}},
		{"empty host", []string{":22"}},
		{"bare ipv6", []string{"::1:22"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Params{Permit: func(a netip.AddrPort) error {
				t.Errorf("got Permit(%s), want no call", a)
				return nil
			}, Resolver: staticResolver{netip.MustParseAddr("127.0.0.1")}})
			_, attempts := mustFail(t, c, context.Background(), KindUnresolved, tt.targets...)
			if len(attempts) != len(tt.targets) {
				t.Fatalf("got %d attempts, want %d", len(attempts), len(tt.targets))
			}
			for _, a := range attempts {
				if a.Outcome != Unresolved || a.Err == nil {
					t.Errorf("got attempt %+v, want Unresolved with an error", a)
				}
			}
		})
	}
}

func TestConcurrentConnect(t *testing.T) {
	dead := closedPort(t)
	l := listen(t, "127.0.0.1:0")
	c := New(Params{Timeout: time.Second, DownTTL: time.Minute, Permit: permitAll})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			conn, _, err := c.Connect(context.Background(), []string{dead, l.addr()})
			if err != nil {
				errs <- err
				return
			}
			conn.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("got error %v, want nil", err)
	}
}

func TestNewWithoutPermitPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Errorf("got no panic, want one")
		}
	}()
	New(Params{})
}

func TestStrings(t *testing.T) {
	if got, want := Denied.String(), "denied"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Outcome(99).String(), "outcome(99)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := KindDenied.String(), "denied"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Kind(-1).String(), "kind(-1)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestUnspecifiedNeverDialled: 0.0.0.0, :: and ::ffff:0.0.0.0 reach the
// gateway's own machine when dialled. They are refused before dialling,
// given as literals or by a resolver, even when Permit would allow them.
func TestUnspecifiedNeverDialled(t *testing.T) {
	l4 := listen(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(l4.addr())
	targets := []string{"0.0.0.0:" + port, "[::]:" + port, "[::ffff:0.0.0.0]:" + port, "[0:0::0]:" + port, "zero.test:" + port}
	// Where IPv6 loopback exists, listen on it too: [::] would reach it.
	var l6 *countingListener
	if ln, err := net.Listen("tcp", "[::1]:"+port); err == nil {
		ln.Close()
		l6 = listen(t, "[::1]:"+port)
	}
	permitted := 0
	c := New(Params{Timeout: time.Second, Resolver: staticResolver{netip.IPv4Unspecified(), netip.IPv6Unspecified()},
		Permit: func(netip.AddrPort) error { permitted++; return nil }})
	for _, target := range targets {
		ce, attempts := mustFail(t, c, context.Background(), KindDenied, target)
		for _, a := range attempts {
			if a.Outcome != Denied || !errors.Is(a.Err, ErrUnspecified) {
				t.Errorf("%s: got attempt %+v, want Denied with ErrUnspecified", target, a)
			}
		}
		if !errors.Is(ce, ErrUnspecified) {
			t.Errorf("%s: got %v, want ErrUnspecified", target, ce)
		}
	}
	if permitted != 0 {
		t.Errorf("got %d Permit calls, want 0: the address is refused first", permitted)
	}
	// Our own dial is accepted in order after any the chainer made.
	for _, l := range []*countingListener{l4, l6} {
		if l == nil {
			continue
		}
		conn, err := net.Dial("tcp", l.addr())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn.Close()
		deadline := time.Now().Add(5 * time.Second)
		for l.accepts.Load() < 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := l.accepts.Load(); got != 1 {
			t.Errorf("%s: got %d connections, want 1 (ours)", l.addr(), got)
		}
	}
}
