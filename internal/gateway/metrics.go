package gateway

import (
	"context"
	"net"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/metrics"
)

// observed returns store with every event written also observed by m, so
// that the metrics follow the audit trail. It keeps store's batching.
func observed(store audit.Store, m *metrics.Metrics) audit.Store {
	o := observedStore{store, m}
	if bw, ok := store.(audit.BatchWriter); ok {
		return observedBatchStore{o, bw}
	}
	return o
}

type observedStore struct {
	audit.Store
	m *metrics.Metrics
}

func (s observedStore) Write(ctx context.Context, e audit.Event) error {
	s.m.Observe(e)
	return s.Store.Write(ctx, e)
}

type observedBatchStore struct {
	observedStore
	bw audit.BatchWriter
}

func (s observedBatchStore) WriteBatch(ctx context.Context, es []audit.Event) error {
	for _, e := range es {
		s.m.Observe(e)
	}
	return s.bw.WriteBatch(ctx, es)
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
// /healthz fails while the audit queue is unhealthy.
func (g *Gateway) serveMetrics() (stop func()) {
	if g.adminListener == nil {
		return func() {}
	}
	return metrics.Serve(g.adminListener, g.metrics.Handler(g.queue.Healthy), g.logger)
}
