package gateway

import (
	"errors"
	"fmt"
	"sync"

	"github.com/sluice-ssh/sluice/internal/session"
)

// ErrAuditUnavailable is the cause of sessions refused or ended because
// audit events can no longer be stored under audit.on_failure fail_closed.
var ErrAuditUnavailable = errors.New("gateway: audit store unavailable")

// ruleAuditFailure names the setting that refuses and ends sessions.
const ruleAuditFailure = "audit.on_failure"

// auditDown is set once when the audit queue becomes unhealthy. The zero
// value is ready to use.
type auditDown struct {
	mu    sync.Mutex
	ch    chan struct{} // closed when cause is set
	cause error
}

func (a *auditDown) chanLocked() chan struct{} {
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}

// set records cause, the first time only, and wakes done's waiters.
func (a *auditDown) set(cause error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.chanLocked()
	if a.cause == nil {
		a.cause = cause
		close(ch)
	}
}

// done is closed once set was called.
func (a *auditDown) done() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.chanLocked()
}

func (a *auditDown) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cause
}

// admit is every service's Admit hook: under fail_closed no session is
// admitted once the audit queue is unhealthy (best_effort queues never are).
func (g *Gateway) admit(*session.Master) (string, error) {
	if err := g.queue.Healthy(); err != nil {
		return ruleAuditFailure, fmt.Errorf("%w: %w: %w", session.ErrDenied, ErrAuditUnavailable, err)
	}
	return "", nil
}

// auditUnhealthy is the audit queue's OnUnhealthy under fail_closed. The
// queue may call it from a Write made under any lock, so it only wakes
// endOnAuditFailure, which ends the live sessions.
func (g *Gateway) auditUnhealthy(cause error) {
	g.logger.Error("audit store unavailable: refusing new sessions and ending live ones", "err", cause)
	g.ops.auditDown.set(cause)
}

// endOnAuditFailure waits until the audit queue is unhealthy, then ends
// every live session, or returns when stop is closed.
func (g *Gateway) endOnAuditFailure(stop <-chan struct{}) {
	select {
	case <-stop:
		return
	case <-g.ops.auditDown.done():
	}
	cause := fmt.Errorf("%w: %w", ErrAuditUnavailable, g.ops.auditDown.err())
	for _, m := range g.liveMasters() {
		g.logger.Warn("ending session: audit store unavailable", "session_id", m.ID())
		m.End(cause)
	}
}
