package audit

import (
	"context"
	"log/slog"
)

// Sink receives audit events. Write must not block the data path for long;
// stores that can be slow sit behind a bounded queue (see the store issue).
type Sink interface {
	Write(ctx context.Context, e Event) error
}

// LogSink writes each event as one structured log record at Info level.
type LogSink struct{ Logger *slog.Logger }

// Write logs e.
func (l LogSink) Write(ctx context.Context, e Event) error {
	attrs := []slog.Attr{
		slog.String("type", e.Type),
		slog.String("session_id", e.SessionID),
		slog.String("user", e.User),
		slog.String("client_addr", e.ClientAddr),
		slog.String("client_zone", e.ClientZone),
	}
	if e.Verdict != "" {
		attrs = append(attrs, slog.String("verdict", string(e.Verdict)), slog.String("rule", e.Rule))
	}
	for k, v := range map[string]string{"service": e.Service, "server_addr": e.ServerAddr, "server_zone": e.ServerZone, "target": e.Target, "reason": e.Reason} {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	if len(e.Detail) > 0 {
		attrs = append(attrs, slog.Any("detail", e.Detail))
	}
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
	return nil
}
