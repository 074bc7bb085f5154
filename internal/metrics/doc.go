// Package metrics holds Sluice's Prometheus collectors and the loopback
// admin HTTP endpoint that serves them.
//
// The collectors are registered on a private prometheus.Registry held by
// Metrics, never on the default registry, and Metrics is injected where it
// is used. Most figures are derived from the audit events as the gateway
// writes them, before they are sampled or queued (Observe): connections and
// sessions by service and verdict, authentication failures, bytes relayed,
// limits hit, and the latencies from accept to authenticated and from
// accept to session start, measured between the events' own timestamps.
// WatchAudit adds the audit store's health and its lost and summarised
// events. /healthz answers 503 while the gateway is unhealthy and 200
// "degraded: ..." for a *Degraded error.
package metrics
