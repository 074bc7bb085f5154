package audit

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ssh/sluice/internal/thin"
)

// TypeSampled is the type of the summary a Sampler writes for the events
// of one key it did not pass on one by one in an interval. Its Service,
// Rule, ClientZone and Verdict are the key's; ClientAddr is the key's
// address prefix; Detail holds "type" (the events' type), "count", "since"
// and "until" (the interval, RFC 3339).
const TypeSampled = "audit.sampled"

// Sampler defaults: at most defaultSampleBurst + defaultSampleKeys + 1
// writes per defaultSampleInterval, 16.5 per second.
const (
	defaultSampleInterval = 10 * time.Second
	defaultSampleBurst    = 100
	defaultSampleKeys     = 64
)

// Address prefixes a Sampler counts by: an IPv4 /24 or an IPv6 /64 is what
// one network (one attacker) usually holds.
const (
	samplePrefix4 = 24
	samplePrefix6 = 64
)

// SamplerParams configures NewSampler.
type SamplerParams struct {
	// Sampled selects the events to sample; the others pass on unchanged.
	Sampled func(Event) bool
	// Interval is the sampling period (default 10 s).
	Interval time.Duration
	// Burst is how many sampled events of an interval pass on one by one
	// (default 100).
	Burst int
	// Keys bounds the summaries of an interval (default 64); the events
	// of further keys share one summary with empty key fields.
	Keys int
	// Logger receives a report of each interval that summarised events
	// (default: discarded).
	Logger *slog.Logger
}

// sampleKey is what a Sampler counts events by.
type sampleKey struct {
	service, typ, rule, zone, prefix string
	verdict                          Verdict
}

// Sampler is a Sink that bounds what a flood of selected events (refusals
// of clients that have not authenticated, which cost the client nothing)
// costs the store: in each Interval the first Burst selected events pass
// on to the next Sink one by one, and the rest are counted by service,
// type, rule, client zone, verdict and client address prefix; at the end
// of the interval one TypeSampled event per key (at most Keys, plus one
// for the rest) is written. A flood thus costs at most Burst + Keys + 1
// writes per Interval (a thin.Burst whose windows the intervals end). A
// goroutine started by NewSampler and ended by Close writes the summaries.
type Sampler struct {
	next Sink
	p    SamplerParams
	log  *slog.Logger

	// mu orders Write against flush and Close; it is taken before
	// burst's own lock.
	mu     sync.Mutex
	closed bool
	since  time.Time             // start of the current interval
	burst  thin.Burst[sampleKey] // passes p.Burst per interval, counts the rest by key

	summarised atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

var _ Sink = (*Sampler)(nil)

// NewSampler starts the goroutine that writes the summaries to next; call
// Close to stop it.
func NewSampler(next Sink, p SamplerParams) *Sampler {
	if p.Interval <= 0 {
		p.Interval = defaultSampleInterval
	}
	if p.Burst <= 0 {
		p.Burst = defaultSampleBurst
	}
	if p.Keys <= 0 {
		p.Keys = defaultSampleKeys
	}
	s := &Sampler{next: next, p: p, log: p.Logger, since: time.Now(), burst: thin.Burst[sampleKey]{Burst: p.Burst, Keys: p.Keys}, stop: make(chan struct{}), done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	go s.run()
	return s
}

// Write passes e on, unless it is selected and past the interval's burst,
// in which case it only counts it. After Close every event passes on.
func (s *Sampler) Write(ctx context.Context, e Event) error {
	if s.p.Sampled == nil || !s.p.Sampled(e) {
		return s.next.Write(ctx, e)
	}
	k := sampleKey{service: e.Service, typ: e.Type, rule: e.Rule, zone: e.ClientZone, prefix: addrPrefix(e.ClientAddr), verdict: e.Verdict}
	s.mu.Lock()
	pass := s.closed || s.burst.Allow(k)
	if !pass {
		s.summarised.Add(1)
	}
	s.mu.Unlock()
	if pass {
		return s.next.Write(ctx, e)
	}
	return nil
}

// Summarised is the number of events counted in summaries instead of
// passed on one by one, so far.
func (s *Sampler) Summarised() uint64 { return s.summarised.Load() }

// addrPrefix is the prefix of a client address ("ip:port" or "ip") that
// the Sampler counts by, or "" when it is not an IP address.
func addrPrefix(addr string) string {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		ip = ap.Addr()
	} else if ip, err = netip.ParseAddr(addr); err != nil {
		return ""
	}
	ip = ip.Unmap()
	bits := samplePrefix6
	if ip.Is4() {
		bits = samplePrefix4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

func (s *Sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.p.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.flush()
			return
		case <-t.C:
			s.flush()
		}
	}
}

// flush ends the interval: it writes its summaries and starts the next.
func (s *Sampler) flush() {
	now := time.Now()
	s.mu.Lock()
	since := s.since
	s.since = now
	counts, rest := s.burst.Next()
	s.mu.Unlock()
	if len(counts) == 0 && rest == 0 {
		return
	}
	var total int64
	summary := func(k sampleKey, n int64) Event {
		total += n
		return Event{
			Time: now, Type: TypeSampled, Service: k.service, Verdict: k.verdict, Rule: k.rule,
			ClientZone: k.zone, ClientAddr: k.prefix,
			Reason: fmt.Sprintf("%d %s events in %s not audited one by one", n, k.typ, now.Sub(since).Round(time.Millisecond)),
			Detail: map[string]any{
				"type": k.typ, "count": n,
				"since": since.UTC().Format(time.RFC3339Nano), "until": now.UTC().Format(time.RFC3339Nano),
			},
		}
	}
	ctx := context.Background()
	for k, n := range counts {
		_ = s.next.Write(ctx, summary(k, n)) // the next sink counts its own losses
	}
	if rest > 0 {
		_ = s.next.Write(ctx, summary(sampleKey{typ: "*"}, rest))
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "audit events summarised", slog.Int64("events", total), slog.Int("keys", len(counts)), slog.Duration("interval", now.Sub(since)))
}

// Close writes the summaries of the current interval and stops the
// goroutine; later events pass on one by one. It does not close next.
func (s *Sampler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
}
