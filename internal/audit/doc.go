// Package audit defines Sluice's audit events and the sinks they are written
// to. An Event records one decision or happening with the session id it
// belongs to; its JSON shape is a contract (see DESIGN.md).
package audit
