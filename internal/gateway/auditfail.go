package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/service"
	"github.com/sluice-ssh/sluice/internal/session"
)

// ErrAuditUnavailable is the cause of sessions refused or ended because
// audit events can no longer be stored under audit.on_failure fail_closed.
var ErrAuditUnavailable = errors.New("gateway: audit store unavailable")

// ruleAuditFailure names the setting that refuses and ends sessions.
const ruleAuditFailure = "audit.on_failure"

// Audit event types written for unauthenticated clients (besides
// service.EventConnection).
const eventAuth = "auth"

// unauthenticatedRefusal selects the audit events that the Sampler bounds:
// refusals of clients that have not authenticated, which cost the client
// one TCP connection: a connection refused (client zones, limits, the
// audit store down), a failed authentication attempt or handshake, a peer
// refused by a PROXY protocol listener.
func unauthenticatedRefusal(e audit.Event) bool {
	if e.Verdict != audit.Reject {
		return false
	}
	switch e.Type {
	case service.EventConnection, eventAuth, eventProxyProtocol:
		return true
	}
	return false
}

// write stores e, whatever becomes of the connection that caused it
// (an ended client cancels its context, not the record of what was
// decided), and logs a write that failed. It returns the failure, which
// the caller may act on under fail_closed.
func (g *Gateway) write(ctx context.Context, e audit.Event) error {
	err := g.audit.Write(context.WithoutCancel(ctx), e)
	if err != nil {
		g.logger.ErrorContext(ctx, "audit write failed", "session_id", e.SessionID, "type", e.Type, "err", err)
	}
	return err
}

// admit is every service's Admit hook: under fail_closed no session is
// admitted during an audit store outage.
func (g *Gateway) admit(*session.Master) (string, error) {
	if g.auditMode != audit.FailClosed {
		return "", nil
	}
	if err := g.queue.Healthy(); err != nil {
		return ruleAuditFailure, fmt.Errorf("%w: %w: %w", session.ErrDenied, ErrAuditUnavailable, err)
	}
	return "", nil
}

// auditUnhealthy is the audit queue's OnUnhealthy under fail_closed, called
// once per outage on the queue's writer goroutine: it only wakes
// endOnAuditFailure, which ends the live sessions.
func (g *Gateway) auditUnhealthy(cause error) {
	g.logger.Error("audit store unavailable: refusing new sessions and ending live ones until it recovers", "err", cause)
	select {
	case g.ops.auditFailed <- struct{}{}:
	default: // a sweep is already due
	}
}

// endOnAuditFailure ends every live session each time an audit store
// outage begins under fail_closed, until stop is closed. Sessions admitted
// during the outage are refused by admit; once the store is back, new
// sessions are admitted again.
func (g *Gateway) endOnAuditFailure(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-g.ops.auditFailed:
		}
		err := g.queue.Healthy()
		if err == nil {
			continue // recovered before the sweep
		}
		cause := fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
		for _, m := range g.liveMasters() {
			g.logger.Warn("ending session: audit store unavailable", "session_id", m.ID())
			m.End(cause)
		}
	}
}
