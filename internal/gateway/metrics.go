package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/fleet"
	"github.com/sluice-ssh/sluice/internal/metrics"
)

// observingSink updates the metrics from every event the gateway audits,
// before sampling and queueing, so that they count what happened even
// when the store could not keep it one by one (or at all).
type observingSink struct {
	next audit.Sink
	m    *metrics.Metrics
	// fleet, when set, learns of each session start and end, to publish
	// the live sessions.
	fleet *fleet.Member
}

func (s observingSink) Write(ctx context.Context, e audit.Event) error {
	s.m.Observe(e)
	if s.fleet != nil && (e.Type == audit.TypeSessionStart || e.Type == audit.TypeSessionEnd) {
		s.fleet.Changed()
	}
	return s.next.Write(ctx, e)
}

// Metrics returns the gateway's collectors.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// AdminAddr returns the address of the metrics and health endpoint, or nil
// when gateway.admin.listen is not set.
func (g *Gateway) AdminAddr() net.Addr {
	if g.adminListener == nil {
		return nil
	}
	return g.adminListener.Addr()
}

// serveMetrics serves /metrics and /healthz on the admin listener, if any.
func (g *Gateway) serveMetrics() (stop func()) {
	if g.adminListener == nil {
		return func() {}
	}
	return metrics.Serve(g.adminListener, g.metrics.Handler(g.health, g.ready), g.logger)
}

// ready is /readyz: not ready once draining has started (a load balancer
// sends new logins elsewhere), nor while unhealthy.
func (g *Gateway) ready() error {
	if g.draining.Load() {
		return errDraining
	}
	if err := g.health(); err != nil {
		if _, degraded := errors.AsType[*metrics.Degraded](err); !degraded {
			return err
		}
	}
	return nil
}

// errDraining is /readyz's reason while the gateway drains.
var errDraining = errors.New("draining: shutting down, new logins go to other nodes")

// health is /healthz: during an audit store outage the gateway is
// unhealthy under fail_closed (it refuses sessions) and degraded under
// best_effort (it serves, without an audit trail).
func (g *Gateway) health() error {
	err := g.queue.Healthy()
	switch {
	case err == nil:
		return nil
	case g.auditMode == audit.BestEffort:
		return &metrics.Degraded{Err: fmt.Errorf("%w (audit.on_failure best_effort: sessions go on, events are lost once the queue is full)", err)}
	}
	return fmt.Errorf("%w (audit.on_failure fail_closed: sessions refused)", err)
}
