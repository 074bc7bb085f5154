package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
)

var _ admin.Gateway = (*Gateway)(nil)

// adminShutdownTimeout bounds the wait for admin requests in progress.
const adminShutdownTimeout = 5 * time.Second

// liveMasters returns the live master sessions of every service, retired
// ones (still finishing after a reload) included, each followed by the
// inner masters of its jumps (jump.go), so that they are listed and
// killed by their own ids.
func (g *Gateway) liveMasters() []*session.Master {
	g.mu.Lock()
	svcs := append(slices.Clone(g.services), g.retired...)
	g.mu.Unlock()
	var out []*session.Master
	for _, s := range svcs {
		for _, m := range s.Live() {
			out = append(out, m)
			out = append(out, g.inners.list(m)...)
		}
	}
	return out
}

// LiveSessions returns the live master sessions of every service, for the
// admin API.
func (g *Gateway) LiveSessions() []admin.Session {
	var out []admin.Session
	for _, m := range g.liveMasters() {
		s := admin.Session{ID: m.ID(), User: m.User(), Target: m.Target(), Start: m.Start()}
		if a := m.ClientAddr(); a.IsValid() {
			s.Client = a.String()
		}
		out = append(out, s)
	}
	return out
}

// Kill ends the live master session id with session.ErrRevoked, audited
// as a "kill" event; admin.ErrNotFound when no service has it. The id of
// a jump's inner session ends that session alone; its jump connection
// and the connection's other inner sessions go on.
func (g *Gateway) Kill(ctx context.Context, id string) error {
	return g.KillAs(ctx, id, "")
}

// KillAs is Kill on behalf of a console operator, whose name the kill
// event carries in detail.operator (rule "console"). In a fleet, a session
// this node does not hold is killed by the node that does.
func (g *Gateway) KillAs(ctx context.Context, id, operator string) error {
	err := g.killLocal(ctx, id, operator)
	if errors.Is(err, admin.ErrNotFound) && g.fleet != nil {
		return g.killFleet(ctx, id, operator)
	}
	return err
}

// killLocal is KillAs for the sessions of this node.
func (g *Gateway) killLocal(ctx context.Context, id, operator string) error {
	for _, m := range g.liveMasters() {
		if m.ID() != id {
			continue
		}
		e := m.AuditEvent("kill")
		e.Verdict, e.Rule, e.Reason = audit.Accept, "admin", "killed by operator"
		if operator != "" {
			e.Rule, e.Reason = "console", "killed by operator "+operator
			e.Detail = map[string]any{"operator": operator}
		}
		_ = g.write(ctx, e)
		g.logger.InfoContext(ctx, "session killed by operator", "session_id", id)
		m.End(fmt.Errorf("%w: by operator", session.ErrRevoked))
		return nil
	}
	return fmt.Errorf("%w: %s", admin.ErrNotFound, id)
}

// serveAdmin listens on the admin socket and serves the admin API until
// the returned stop function is called; stop waits for the server.
func (g *Gateway) serveAdmin() (stop func(), err error) {
	l, err := admin.Listen(g.cfg.Gateway.Admin.Socket)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	srv := admin.NewServer(g, g.logger)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil {
			g.logger.Error("admin socket stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			g.logger.Error("stopping the admin socket", "err", err)
		}
		<-done
	}, nil
}
