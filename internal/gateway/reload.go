package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/service"
	"github.com/sluice-ssh/sluice/internal/session"
)

// EventReload is the audit event type of a live session's fate in a reload
// that no longer allows it.
const EventReload = "reload"

// ErrNotRunning is returned by Reload before Run or after it has returned.
var ErrNotRunning = errors.New("gateway: not running")

// serving marks the gateway running and returns the services to serve.
func (g *Gateway) serving() []*service.Service {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = true
	return slices.Clone(g.services)
}

// stopServing marks the gateway stopping and returns every service, the
// retired ones still finishing included.
func (g *Gateway) stopServing() []*service.Service {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = false
	return append(slices.Clone(g.services), g.retired...)
}

// drainTimeout is the configured drain timeout, which a reload may change.
func (g *Gateway) drainTimeout() config.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg.Gateway.DrainTimeout
}

// drainDelay is the configured drain delay, which a reload may change.
func (g *Gateway) drainDelay() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg.Gateway.DrainDelay.Std()
}

// Reload applies cfg to new connections while live sessions carry on. It
// builds every part from cfg first; if any fails, the running gateway is
// left as it was and the error (every failure, joined) is returned. Then:
//
//   - a service whose listen address is unchanged keeps its listener and
//     serves new connections with the new zones, policy, router, upstream
//     and limits;
//   - a new service, or one whose listen address changed, gets a new
//     listener; the old listener of a changed one is closed;
//   - a removed service's listener is closed.
//
// A live session the new config no longer allows (its service was removed
// or moved, its client zone is no longer in client_zones, or the roles no
// longer grant its user the host and login, see recheck) is ended with
// session.ErrRevoked if the service's on_reload is "end" (the old config's
// for a removed service), or left to finish under its old settings if it
// is "finish"; either way an audit event of type "reload" records it. The
// sessions of a user the new config removes end whatever on_reload says.
// gateway.name, state_dir, host_key_types, log, admin, fleet and audit
// are read at start only: a change to them needs a restart (see docs/operations.md).
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	g.mu.Lock()
	running, old := g.running, g.cfg
	g.mu.Unlock()
	if !running {
		return ErrNotRunning
	}
	type built struct {
		sc  *config.Service
		p   service.Params
		svc *service.Service // the running service kept, or nil
	}
	var (
		plan  []built
		errs  []error
		fresh []*service.Service // opened by this reload, closed on failure
	)
	zones, err := buildZones(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	authn, err := g.authenticator(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	acc, err := g.buildAccess(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	// Nothing reads cfg through g.cfg before the commit below: a config
	// that fails to build is never seen by the running gateway.
	if len(errs) == 0 {
		for i := range cfg.Services {
			sc := &cfg.Services[i]
			p, err := g.buildService(cfg, sc, zones, g.hostKeys, authn, acc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			plan = append(plan, built{sc: sc, p: p, svc: g.keep(sc)})
		}
	}
	if len(errs) == 0 {
		for i := range plan {
			b := &plan[i]
			if b.svc != nil {
				continue
			}
			l, err := g.listen(b.sc)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			b.p.Listener = l
			b.svc = service.New(b.p)
			fresh = append(fresh, b.svc)
		}
	}
	if len(errs) > 0 {
		for _, s := range fresh {
			_ = s.Close()
		}
		err := errors.Join(errs...)
		g.logger.Error("reload failed; the running config is kept", "err", err)
		return fmt.Errorf("gateway: reload: %w", err)
	}

	// Commit.
	g.setConfig(cfg)
	g.startups.Reconfigure(startupsParams(cfg))
	next := make([]*service.Service, 0, len(plan))
	addrs := make(map[string]string, len(plan))
	var revise []built
	for _, b := range plan {
		if slices.Contains(fresh, b.svc) {
			svc := b.svc
			g.wg.Go(func() {
				if err := svc.Serve(); err != nil && !errors.Is(err, service.ErrServerClosed) {
					g.logger.Error("service stopped", "service", b.sc.Name, "err", err)
				}
			})
		} else {
			b.svc.Reconfigure(b.p)
			revise = append(revise, b)
		}
		next = append(next, b.svc)
		addrs[b.sc.Name] = b.sc.Listen
	}
	g.mu.Lock()
	prev := g.services
	g.services = next
	g.listens = addrs
	for _, b := range plan {
		g.addrs[b.sc.Name] = b.svc.Addr()
	}
	var gone []*service.Service
	for _, s := range prev {
		if !slices.Contains(next, s) {
			gone = append(gone, s)
			g.retired = append(g.retired, s)
			if _, ok := addrs[s.Name()]; !ok {
				delete(g.addrs, s.Name())
			}
		}
	}
	g.mu.Unlock()

	for _, s := range gone {
		if err := s.Retire(); err != nil {
			g.logger.Warn("closing a retired listener", "service", s.Name(), "err", err)
		}
		mode := config.OnReloadFinish
		if sc := findService(old, s.Name()); sc != nil {
			mode = sc.OnReload
		}
		for _, m := range s.Live() {
			g.revoke(ctx, m, mode, "service removed or moved by reload")
		}
	}
	for _, b := range revise {
		for _, m := range b.svc.Live() {
			if m.ClientZone() != nil && !b.svc.ClientPermitted(m) {
				g.revoke(ctx, m, b.sc.OnReload, "client zone no longer in client_zones")
				continue
			}
			g.recheck(ctx, m, old, cfg, acc, b.sc.OnReload)
			for _, in := range g.inners.list(m) {
				g.recheck(ctx, in, old, cfg, acc, b.sc.OnReload)
			}
		}
	}
	g.logger.Info("config reloaded", "services", len(next), "retired", len(gone))
	return nil
}

// setConfig replaces the config the gateway reads.
func (g *Gateway) setConfig(cfg *config.Config) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = cfg
}

// keep returns the running service sc can keep: same name, same listen
// address. g.mu is not held.
func (g *Gateway) keep(sc *config.Service) *service.Service {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.listens[sc.Name] != sc.Listen {
		return nil
	}
	for _, s := range g.services {
		if s.Name() == sc.Name {
			return s
		}
	}
	return nil
}

func findService(cfg *config.Config, name string) *config.Service {
	for i := range cfg.Services {
		if cfg.Services[i].Name == name {
			return &cfg.Services[i]
		}
	}
	return nil
}

// revoke applies on_reload to a live session the new config does not allow
// and audits the decision.
func (g *Gateway) revoke(ctx context.Context, m *session.Master, mode config.OnReload, why string) {
	g.revokeBy(ctx, m, mode, fmt.Sprintf("services[%s].on_reload", m.Service()), nil, why)
}

// revokeBy is revoke with the rule that withdrew the permission and more
// detail for the audit event.
func (g *Gateway) revokeBy(ctx context.Context, m *session.Master, mode config.OnReload, rule string, detail map[string]any, why string) {
	e := m.AuditEvent(EventReload)
	e.Verdict, e.Rule = audit.Reject, rule
	e.Detail = map[string]any{"on_reload": string(mode)}
	maps.Copy(e.Detail, detail)
	if mode == config.OnReloadEnd {
		e.Reason = why + "; session ended"
	} else {
		e.Reason = why + "; session left to finish"
	}
	_ = g.write(ctx, e)
	g.logger.Info("reload: session no longer allowed", "session_id", m.ID(), "on_reload", string(mode), "reason", why)
	if mode == config.OnReloadEnd {
		m.End(fmt.Errorf("%w: %s", session.ErrRevoked, why))
	}
}
