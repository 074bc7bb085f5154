package service

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Rules named by the refusals of Startups, as in the config file.
const (
	RuleMaxStartups          = "gateway.max_startups"
	RulePerSourceMaxStartups = "gateway.per_source_max_startups"
	RuleAuthPenalty          = "gateway.auth_penalty"
)

// ErrLimit is wrapped by every refusal of a limit (see LimitError).
var ErrLimit = errors.New("service: limit reached")

// LimitError is a refusal by a limit, with the config rule that decided.
// errors.Is(err, ErrLimit) holds for it.
type LimitError struct {
	Rule   string
	Reason string
}

func (e *LimitError) Error() string { return "service: " + e.Reason + " (" + e.Rule + ")" }

// Is reports whether target is ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// penaltyTrackLimit bounds the sources whose failures are remembered; beyond
// it expired entries are pruned before a new source is added, and a new
// source is not tracked when none has expired (the cap fails open rather
// than letting an attacker with many addresses grow the map without bound).
const penaltyTrackLimit = 1 << 16

// StartupsParams configures Startups. Zero values switch a limit off.
type StartupsParams struct {
	// Start, Rate and Full are OpenSSH's MaxStartups "start:rate:full":
	// with Start or more unauthenticated connections a new one is refused
	// with probability Rate% rising linearly to 100% at Full. Full = 0
	// switches the limit off.
	Start, Rate, Full int
	// PerSource limits the unauthenticated connections from one address.
	PerSource int
	// Penalty refuses every connection from a source for this long once it
	// has had PenaltyAfter failed authentication attempts (counted until a
	// success from the source, or until Penalty has passed since the last
	// failure).
	Penalty      time.Duration
	PenaltyAfter int
	// IntN returns a uniform integer in [0, n); nil means math/rand/v2.IntN.
	IntN func(n int) int
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// Startups admits unauthenticated connections, as OpenSSH's MaxStartups,
// PerSourceMaxStartups and PerSourcePenalties (authfail) do. One Startups is
// shared by every service of a gateway, because these limits protect the
// gateway's own resources. It is safe for concurrent use.
type Startups struct {
	p StartupsParams

	mu        sync.Mutex
	total     int
	perSource map[netip.Addr]int
	failures  map[netip.Addr]*failures
}

type failures struct {
	n     int
	last  time.Time // of the last failure
	until time.Time // refused until then
}

// NewStartups returns a Startups for p.
func NewStartups(p StartupsParams) *Startups {
	if p.IntN == nil {
		p.IntN = rand.IntN
	}
	if p.Clock == nil {
		p.Clock = time.Now
	}
	return &Startups{p: p, perSource: make(map[netip.Addr]int), failures: make(map[netip.Addr]*failures)}
}

// Begin admits an unauthenticated connection from src, or refuses it with a
// *LimitError. The caller must call release exactly once, when the
// connection has authenticated or ended, whichever is first.
func (s *Startups) Begin(src netip.Addr) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.p.Clock()
	if f := s.failures[src]; f != nil && now.Before(f.until) {
		return nil, &LimitError{Rule: RuleAuthPenalty, Reason: fmt.Sprintf("source %s penalised for failed authentication until %s", src, f.until.Format(time.RFC3339))}
	}
	if s.p.PerSource > 0 && s.perSource[src] >= s.p.PerSource {
		return nil, &LimitError{Rule: RulePerSourceMaxStartups, Reason: fmt.Sprintf("%d unauthenticated connections from %s, limit %d", s.perSource[src], src, s.p.PerSource)}
	}
	if s.drop() {
		return nil, &LimitError{Rule: RuleMaxStartups, Reason: fmt.Sprintf("%d unauthenticated connections, max_startups %d:%d:%d", s.total, s.p.Start, s.p.Rate, s.p.Full)}
	}
	s.total++
	s.perSource[src]++
	var once sync.Once
	return func() { once.Do(func() { s.end(src) }) }, nil
}

// drop decides random early drop as OpenSSH's drop_connection (sshd.c):
// below start never, at full or above always, in between with probability
// rate% + (100-rate)% * (total-start)/(full-start). s.mu is held.
func (s *Startups) drop() bool {
	p := s.p
	if p.Full <= 0 || s.total < p.Start {
		return false
	}
	if s.total >= p.Full {
		return true
	}
	pct := p.Rate
	if p.Full > p.Start {
		pct += (100 - p.Rate) * (s.total - p.Start) / (p.Full - p.Start)
	}
	return s.p.IntN(100) < pct
}

func (s *Startups) end(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.perSource[src]--; s.perSource[src] <= 0 {
		delete(s.perSource, src)
	}
}

// Unauthenticated returns the number of connections admitted by Begin and
// not yet released.
func (s *Startups) Unauthenticated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Failed counts one failed authentication attempt from src and reports
// whether it started a penalty.
func (s *Startups) Failed(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.Penalty <= 0 || s.p.PenaltyAfter <= 0 {
		return false
	}
	now := s.p.Clock()
	f := s.failures[src]
	if f != nil && now.Sub(f.last) > s.p.Penalty && !now.Before(f.until) {
		f.n = 0
	}
	if f == nil {
		if len(s.failures) >= penaltyTrackLimit {
			s.pruneLocked(now)
			if len(s.failures) >= penaltyTrackLimit {
				return false
			}
		}
		f = &failures{}
		s.failures[src] = f
	}
	f.n++
	f.last = now
	if f.n < s.p.PenaltyAfter {
		return false
	}
	f.n = 0
	f.until = now.Add(s.p.Penalty)
	return true
}

// Penalty returns how long a penalised source is refused.
func (s *Startups) Penalty() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p.Penalty
}

// Reconfigure replaces the limits; the connections counted so far stay
// counted and are released as before. IntN and Clock are kept when p's
// are nil.
func (s *Startups) Reconfigure(p StartupsParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.IntN == nil {
		p.IntN = s.p.IntN
	}
	if p.Clock == nil {
		p.Clock = s.p.Clock
	}
	s.p = p
}

// Succeeded forgets the failures of src after a successful authentication.
func (s *Startups) Succeeded(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.failures[src]; f != nil && !s.p.Clock().Before(f.until) {
		delete(s.failures, src)
	}
}

func (s *Startups) pruneLocked(now time.Time) {
	for a, f := range s.failures {
		if now.Sub(f.last) > s.p.Penalty && !now.Before(f.until) {
			delete(s.failures, a)
		}
	}
}
