package chainer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name; net.DefaultResolver
// satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer opens a connection; *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Params configures a Chainer.
type Params struct {
	// Timeout bounds the resolution of one target and the dialling of one
	// address; zero means only ctx bounds them.
	Timeout time.Duration
	// DownTTL is how long an address that failed stays in the down-host
	// cache; zero disables the cache.
	DownTTL time.Duration
	// Resolver resolves target host names; nil means net.DefaultResolver.
	Resolver Resolver
	// Permit is the server-zone check. It is called with each address about
	// to be dialled, before dialling; an error refuses that address, which
	// is then recorded as Denied and never dialled. It must not be nil, and
	// like Resolver, Dialer and Clock it is called from every session's
	// goroutine, so it must be safe for concurrent use.
	Permit func(addr netip.AddrPort) error
	// Dialer dials TCP; nil means a zero net.Dialer.
	Dialer Dialer
	// Clock tells the time for the down-host cache; nil means time.Now.
	Clock func() time.Time
}

// ErrUnspecified is an Attempt's error when the address is unspecified
// (0.0.0.0, ::, or ::ffff:0.0.0.0): it is never dialled.
var ErrUnspecified = errors.New("chainer: unspecified address (0.0.0.0 or ::) refused")

// Outcome is what became of one Attempt.
type Outcome int

// Outcomes of an Attempt.
const (
	// Connected: the address answered; Connect returned its conn.
	Connected Outcome = iota
	// Unresolved: the target was malformed or its host did not resolve;
	// Addr is zero.
	Unresolved
	// SkippedDown: the address was in the down-host cache and not tried.
	SkippedDown
	// Denied: the address is unspecified (ErrUnspecified) or Permit
	// refused it; it was not dialled.
	Denied
	// Refused: the address answered with a TCP reset (ECONNREFUSED).
	Refused
	// Timeout: dialling did not finish within Params.Timeout.
	Timeout
	// Unreachable: dialling failed otherwise (no route, host down, ...).
	Unreachable
	// Canceled: the caller's ctx ended while dialling or resolving.
	Canceled
)

var outcomeNames = [...]string{
	Connected:   "connected",
	Unresolved:  "unresolved",
	SkippedDown: "skipped-down",
	Denied:      "denied",
	Refused:     "refused",
	Timeout:     "timeout",
	Unreachable: "unreachable",
	Canceled:    "canceled",
}

func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Attempt records one try.
type Attempt struct {
	// Target is the "host:port" target as given to Connect.
	Target string
	// Addr is the resolved address tried; zero when Outcome is Unresolved.
	Addr    netip.AddrPort
	Outcome Outcome
	// Err is why the try failed (Permit's error for Denied); nil for
	// Connected and SkippedDown.
	Err error
}

// Kind says why Connect failed as a whole.
type Kind int

// Kinds of Error.
const (
	// KindUnreachable: at least one address was dialled and none answered.
	KindUnreachable Kind = iota
	// KindDenied: nothing was dialled because Permit refused every address
	// that was not skipped (the server-zone check, a policy decision).
	KindDenied
	// KindUnresolved: no target gave an address to try.
	KindUnresolved
	// KindCanceled: the caller's ctx ended.
	KindCanceled
)

var kindNames = [...]string{
	KindUnreachable: "unreachable",
	KindDenied:      "denied",
	KindUnresolved:  "unresolved",
	KindCanceled:    "canceled",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a failed Connect.
type Error struct {
	Kind     Kind
	Attempts []Attempt
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("chainer: connect failed (%s) after %d attempts", e.Kind, len(e.Attempts))
	if err := e.Unwrap(); err != nil {
		msg += ": " + err.Error()
	}
	return msg
}

// Unwrap returns the error of the last attempt that has one.
func (e *Error) Unwrap() error {
	for i := len(e.Attempts) - 1; i >= 0; i-- {
		if e.Attempts[i].Err != nil {
			return e.Attempts[i].Err
		}
	}
	return nil
}

// Chainer connects to targets. It is safe for concurrent use.
type Chainer struct {
	timeout  time.Duration
	downTTL  time.Duration
	resolver Resolver
	permit   func(netip.AddrPort) error
	dialer   Dialer
	clock    func() time.Time

	mu   sync.Mutex
	down map[netip.AddrPort]time.Time // address -> when it stops being down; guarded by mu
}

// New returns a Chainer for p. It panics if p.Permit is nil: a chainer
// without a server-zone check is a wiring mistake.
func New(p Params) *Chainer {
	if p.Permit == nil {
		panic("chainer: Params.Permit is nil")
	}
	c := &Chainer{
		timeout:  p.Timeout,
		downTTL:  p.DownTTL,
		resolver: p.Resolver,
		permit:   p.Permit,
		dialer:   p.Dialer,
		clock:    p.Clock,
		down:     make(map[netip.AddrPort]time.Time),
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.dialer == nil {
		c.dialer = &net.Dialer{}
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	return c
}

type candidate struct {
	target string
	addr   netip.AddrPort
}

// Connect dials the first address of targets that is permitted and
// answers, trying targets in order and each target's addresses in resolver
// order. Addresses in the down-host cache are skipped, unless every
// candidate is down, in which case they are tried anyway. The returned
// attempts record every try, also on success. On failure the error is an
// *Error; the caller owns the returned conn.
func (c *Chainer) Connect(ctx context.Context, targets []string) (net.Conn, []Attempt, error) {
	var attempts []Attempt
	var skipped []candidate
	considered := false // some candidate passed the down-host check
	for _, target := range targets {
		addrs, err := c.resolve(ctx, target)
		if err != nil {
			if ctx.Err() != nil {
				attempts = append(attempts, Attempt{Target: target, Outcome: Canceled, Err: err})
				return nil, attempts, &Error{Kind: KindCanceled, Attempts: attempts}
			}
			attempts = append(attempts, Attempt{Target: target, Outcome: Unresolved, Err: err})
			continue
		}
		for _, addr := range addrs {
			cand := candidate{target: target, addr: addr}
			if c.isDown(addr) {
				attempts = append(attempts, Attempt{Target: target, Addr: addr, Outcome: SkippedDown})
				skipped = append(skipped, cand)
				continue
			}
			considered = true
			conn, a := c.try(ctx, cand)
			attempts = append(attempts, a)
			if conn != nil {
				return conn, attempts, nil
			}
			if a.Outcome == Canceled {
				return nil, attempts, &Error{Kind: KindCanceled, Attempts: attempts}
			}
		}
	}
	if !considered {
		// Every candidate is down: try them anyway, the cache may be stale.
		for _, cand := range skipped {
			conn, a := c.try(ctx, cand)
			attempts = append(attempts, a)
			if conn != nil {
				return conn, attempts, nil
			}
			if a.Outcome == Canceled {
				return nil, attempts, &Error{Kind: KindCanceled, Attempts: attempts}
			}
		}
	}
	return nil, attempts, &Error{Kind: kindOf(attempts), Attempts: attempts}
}

// try asks Permit about one candidate and dials it if permitted. It marks
// the address down when dialling fails for a reason of the address's own.
func (c *Chainer) try(ctx context.Context, cand candidate) (net.Conn, Attempt) {
	a := Attempt{Target: cand.target, Addr: cand.addr}
	if cand.addr.Addr().IsUnspecified() {
		// 0.0.0.0 and :: name no host: connecting to them reaches the
		// gateway's own machine (Linux and BSD treat them as loopback),
		// whatever zone they fall in.
		a.Outcome, a.Err = Denied, ErrUnspecified
		return nil, a
	}
	if err := c.permit(cand.addr); err != nil {
		a.Outcome, a.Err = Denied, err
		return nil, a
	}
	dctx, cancel := c.withTimeout(ctx)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, "tcp", cand.addr.String())
	if err != nil {
		a.Outcome, a.Err = outcomeOf(ctx, err, Unreachable), err
		if a.Outcome != Canceled {
			c.markDown(cand.addr)
		}
		return nil, a
	}
	c.markUp(cand.addr)
	a.Outcome = Connected
	return conn, a
}

// resolve parses target as "host:port" and returns its addresses, in
// resolver order, IPv4-mapped IPv6 addresses unmapped, duplicates removed.
func (c *Chainer) resolve(ctx context.Context, target string) ([]netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("chainer: malformed target %q: %w", target, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("chainer: malformed port in target %q", target)
	}
	if host == "" {
		return nil, fmt.Errorf("chainer: empty host in target %q", target)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		rctx, cancel := c.withTimeout(ctx)
		defer cancel()
		ips, err = c.resolver.LookupNetIP(rctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("chainer: resolve %q: %w", host, err)
		}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	seen := make(map[netip.AddrPort]bool, len(ips))
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
		if !seen[ap] {
			seen[ap] = true
			out = append(out, ap)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("chainer: resolve %q: no addresses", host)
	}
	return out, nil
}

func (c *Chainer) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

func (c *Chainer) isDown(addr netip.AddrPort) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.down[addr]
	if !ok {
		return false
	}
	if !c.clock().Before(until) {
		delete(c.down, addr)
		return false
	}
	return true
}

func (c *Chainer) markDown(addr netip.AddrPort) {
	if c.downTTL <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down[addr] = c.clock().Add(c.downTTL)
}

func (c *Chainer) markUp(addr netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.down, addr)
}

// outcomeOf classifies a failure: Canceled when the caller's ctx ended,
// Refused for ECONNREFUSED, Timeout for a deadline, otherwise fallback.
func outcomeOf(ctx context.Context, err error, fallback Outcome) Outcome {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return Canceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	default:
		return fallback
	}
}

// kindOf summarises the attempts of a failed Connect that was not
// canceled.
func kindOf(attempts []Attempt) Kind {
	denied := false
	for _, a := range attempts {
		switch a.Outcome {
		case Refused, Timeout, Unreachable:
			return KindUnreachable
		case Denied:
			denied = true
		}
	}
	if denied {
		return KindDenied
	}
	return KindUnresolved
}
