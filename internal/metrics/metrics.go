package metrics

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// Audit event types Observe reads (written by internal/service and
// internal/sshproxy).
const (
	eventConnection    = "connection"
	eventConnectionEnd = "connection.end"
	eventAuth          = "auth"
	eventSessionStart  = "session.start"
	eventSessionEnd    = "session.end"
	eventRecord        = "record"
)

// limitRules maps the last part of a rule name to the limit it names.
var limitRules = map[string]bool{
	"max_startups": true, "per_source_max_startups": true, "auth_penalty": true,
	"max_sessions": true, "max_sessions_per_user": true, "max_channels": true,
	"idle_timeout": true,
}

// latencyBuckets span 1 ms to about 16 s, doubling: handshakes on loopback
// take milliseconds, logins through slow upstreams seconds.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// Metrics is the set of collectors of one gateway.
type Metrics struct {
	Registry *prometheus.Registry

	Connections  *prometheus.CounterVec   // service, verdict
	Sessions     *prometheus.CounterVec   // service, verdict
	AuthFailures *prometheus.CounterVec   // service
	Bytes        *prometheus.CounterVec   // service, direction (in = from the client)
	LimitsHit    *prometheus.CounterVec   // service, limit
	Handshake    *prometheus.HistogramVec // service: accept to authenticated
	SessionSetup *prometheus.HistogramVec // service: accept to session start
	Live         *prometheus.GaugeVec     // service: admitted connections not yet ended
	// RecordingFailures counts session channels whose recording could not
	// be made or stopped early (record events with verdict reject).
	RecordingFailures *prometheus.CounterVec // service

	mu       sync.Mutex
	accepted map[string]time.Time // master session id -> accept time, while live
}

// New returns Metrics with every collector registered on a new registry,
// with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_connections_total", Help: "Accepted TCP connections by service and admission verdict.",
		}, []string{"service", "verdict"}),
		Sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sessions_total", Help: "Proxied sessions by service and verdict (session.start events).",
		}, []string{"service", "verdict"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_auth_failures_total", Help: "Refused authentication attempts and failed handshakes.",
		}, []string{"service"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_relayed_bytes_total", Help: "Channel bytes relayed, counted when a session ends; in = from the client.",
		}, []string{"service", "direction"}),
		LimitsHit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_limits_hit_total", Help: "Connections, sessions or channels refused or ended by a limit.",
		}, []string{"service", "limit"}),
		Handshake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_handshake_seconds", Help: "From TCP accept to the client authenticated.", Buckets: latencyBuckets,
		}, []string{"service"}),
		SessionSetup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_session_setup_seconds", Help: "From TCP accept to the upstream session started.", Buckets: latencyBuckets,
		}, []string{"service"}),
		Live: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_live_connections", Help: "Admitted connections not yet ended.",
		}, []string{"service"}),
		RecordingFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_recording_failures_total", Help: "Session channels whose recording could not be made, or is incomplete because a write failed.",
		}, []string{"service"}),
		accepted: make(map[string]time.Time),
	}
	m.Registry.MustRegister(m.Connections, m.Sessions, m.AuthFailures, m.Bytes, m.LimitsHit,
		m.Handshake, m.SessionSetup, m.Live, m.RecordingFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchAudit registers the audit trail's own metrics, read at each scrape:
// sluice_audit_store_up (1 while healthy returns nil, 0 during a store
// outage), sluice_audit_events_dropped_total (dropped: events lost) and
// sluice_audit_events_summarised_total (summarised: refusals counted in a
// summary instead of audited one by one).
func (m *Metrics) WatchAudit(healthy func() error, dropped, summarised func() uint64) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_audit_store_up", Help: "1 while the audit store takes writes, 0 during an outage.",
		}, func() float64 {
			if healthy() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_audit_events_dropped_total", Help: "Audit events lost (queue full past the wait bound, store outage with a full queue, shutdown).",
		}, func() float64 { return float64(dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_audit_events_summarised_total", Help: "Refusals of unauthenticated clients counted in an audit.sampled summary instead of audited one by one.",
		}, func() float64 { return float64(summarised()) }),
	)
}

// Observe updates the collectors from one audit event.
func (m *Metrics) Observe(e audit.Event) {
	svc := e.Service
	if e.Verdict == audit.Reject && limitRules[lastPart(e.Rule)] {
		m.LimitsHit.WithLabelValues(svc, lastPart(e.Rule)).Add(sampledCount(e))
	}
	switch e.Type {
	case eventConnection:
		m.Connections.WithLabelValues(svc, string(e.Verdict)).Inc()
		if e.Verdict == audit.Accept {
			m.Live.WithLabelValues(svc).Inc()
			m.mu.Lock()
			m.accepted[e.SessionID] = e.Time
			m.mu.Unlock()
		}
	case eventConnectionEnd:
		m.Live.WithLabelValues(svc).Dec()
		m.mu.Lock()
		delete(m.accepted, e.SessionID)
		m.mu.Unlock()
	case eventAuth:
		if e.Verdict == audit.Reject {
			m.AuthFailures.WithLabelValues(svc).Inc()
		} else if d, ok := m.since(e); ok {
			m.Handshake.WithLabelValues(svc).Observe(d.Seconds())
		}
	case eventSessionStart:
		verdict := e.Verdict
		if verdict == "" {
			verdict = audit.Accept
		}
		m.Sessions.WithLabelValues(svc, string(verdict)).Inc()
		if verdict == audit.Accept {
			if d, ok := m.since(e); ok {
				m.SessionSetup.WithLabelValues(svc).Observe(d.Seconds())
			}
		}
	case eventRecord:
		if e.Verdict == audit.Reject {
			m.RecordingFailures.WithLabelValues(svc).Inc()
		}
	case eventSessionEnd:
		if n, ok := e.Detail["bytes_in"].(int64); ok {
			m.Bytes.WithLabelValues(svc, "in").Add(float64(n))
		}
		if n, ok := e.Detail["bytes_out"].(int64); ok {
			m.Bytes.WithLabelValues(svc, "out").Add(float64(n))
		}
	}
}

// since returns the time from the accept of e's master session to e.
func (m *Metrics) since(e audit.Event) (time.Duration, bool) {
	m.mu.Lock()
	t, ok := m.accepted[e.SessionID]
	m.mu.Unlock()
	if !ok {
		return 0, false
	}
	return e.Time.Sub(t), true
}

func lastPart(rule string) string {
	if i := strings.LastIndexByte(rule, '.'); i >= 0 {
		return rule[i+1:]
	}
	return rule
}

// sampledCount is how many refusals an audited refusal stands for. The proxy
// audits the 1st, 2nd, 4th, 8th... refusal of a kind on a connection with
// the running count in detail "refused" (see sshproxy's auditRefusal), so
// the event carrying count n stands for the n/2 refusals since the previous
// one.
func sampledCount(e audit.Event) float64 {
	var n float64
	switch v := e.Detail["refused"].(type) {
	case int64:
		n = float64(v)
	case float64: // read back from a JSON store
		n = v
	}
	if n < 2 {
		return 1
	}
	return n / 2
}
