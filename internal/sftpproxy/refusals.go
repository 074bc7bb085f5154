package sftpproxy

import (
	"fmt"
	"maps"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// refusalsAudited is how many refusals of one operation by one rule a
// channel's audit records one by one. A refusal costs the client one
// packet and the gateway no work upstream, so a client looping on a
// denied request (100,000 OPENs of a denied path) would otherwise write a
// row for each: past this many, only every power of two is written, with
// the running count in detail "refused", and the channel's end writes the
// total (see relay.refusalSummary). A flood of n refusals thus costs at
// most refusalsAudited + log2(n) rows per operation and rule. The relay's
// thin.Counter (relay.refused) counts them; both of the relay's goroutines
// refuse (requests, and answers hidden from the client).
const refusalsAudited = 16

// refusalKey is what refusals are counted by: the event type and the rule.
// Both come from a fixed set (the operations, the service's config), so
// the counts stay small whatever the client sends.
type refusalKey struct{ typ, rule string }

// auditRefusal writes a refusal's event unless the channel's refusals
// thin it out (see refusalsAudited).
func (r *relay) auditRefusal(e audit.Event) {
	n, kept := r.refused.Add(refusalKey{e.Type, e.Rule}, e)
	if !kept {
		return
	}
	if n > refusalsAudited {
		e = withRefused(e, n)
	}
	r.audit(e)
}

// refusalSummary returns, for each key whose last refusal was thinned
// out, that refusal with the total count, so that the audit ends with the
// number of refusals the channel saw.
func (r *relay) refusalSummary() []audit.Event {
	var evs []audit.Event
	for _, h := range r.refused.Held() {
		e := withRefused(h.Value, h.Count)
		e.Reason = fmt.Sprintf("%s (refused %d times on this channel; the first %d and each power of two audited one by one)", e.Reason, h.Count, refusalsAudited)
		evs = append(evs, e)
	}
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
