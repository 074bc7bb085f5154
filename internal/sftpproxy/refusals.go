package sftpproxy

import (
	"fmt"
	"maps"
	"sync"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// refusalsAudited is how many refusals of one operation by one rule a
// channel's audit records one by one. A refusal costs the client one
// packet and the gateway no work upstream, so a client looping on a
// denied request (100,000 OPENs of a denied path) would otherwise write a
// row for each: past this many, only every power of two is written, with
// the running count in detail "refused", and the channel's end writes the
// total (see refusals.summary). A flood of n refusals thus costs at most
// refusalsAudited + log2(n) rows per operation and rule.
const refusalsAudited = 16

// refusalKey is what refusals are counted by: the event type and the rule.
// Both come from a fixed set (the operations, the service's config), so
// the counts stay small whatever the client sends.
type refusalKey struct{ typ, rule string }

// refusals thins one channel's refusal events. Both of the relay's
// goroutines refuse (requests, and answers hidden from the client).
type refusals struct {
	mu     sync.Mutex
	counts map[refusalKey]int64
	last   map[refusalKey]audit.Event // the last refusal of each key not written
}

// admit counts e and returns the event to write, or false when it is
// thinned out.
func (f *refusals) admit(e audit.Event) (audit.Event, bool) {
	k := refusalKey{e.Type, e.Rule}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = make(map[refusalKey]int64)
		f.last = make(map[refusalKey]audit.Event)
	}
	f.counts[k]++
	n := f.counts[k]
	if n <= refusalsAudited {
		return e, true
	}
	if n&(n-1) != 0 {
		f.last[k] = e
		return e, false
	}
	delete(f.last, k)
	return withRefused(e, n), true
}

// summary returns, for each key whose last refusal was thinned out, that
// refusal with the total count, so that the audit ends with the number
// of refusals the channel saw.
func (f *refusals) summary() []audit.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var evs []audit.Event
	for k, e := range f.last {
		n := f.counts[k]
		e = withRefused(e, n)
		e.Reason = fmt.Sprintf("%s (refused %d times on this channel; the first %d and each power of two audited one by one)", e.Reason, n, refusalsAudited)
		evs = append(evs, e)
	}
	f.last = nil
	return evs
}

// withRefused returns e with detail "refused" set to n, on a copy of its
// detail.
func withRefused(e audit.Event, n int64) audit.Event {
	d := make(map[string]any, len(e.Detail)+1)
	maps.Copy(d, e.Detail)
	d["refused"] = n
	e.Detail = d
	return e
}
