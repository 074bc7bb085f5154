package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/console"
	"github.com/sluice-ssh/sluice/internal/fleet"
	"github.com/sluice-ssh/sluice/internal/mfa"
)

var _ console.FleetGateway = (*Gateway)(nil)

// fleetLeaveTimeout bounds the store writes that free the name at stop.
const fleetLeaveTimeout = 10 * time.Second

// joinFleet claims the gateway name in the fleet registry when
// gateway.fleet is set, and keeps the TOTP codes accepted in the store:
// before the crashed sessions of the name are ended,
// so that a second node started with a live node's name ends nothing.
func (g *Gateway) joinFleet(ctx context.Context) error {
	lease := g.cfg.Gateway.Fleet.Lease.Std()
	if lease == 0 {
		return nil
	}
	node := fleet.Node{Name: g.cfg.Gateway.Name, Version: buildVersion(), ConfigHash: fileHash(g.cfg.Path)}
	m, err := fleet.Join(ctx, g.cfg.Audit.Sink, node, lease)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.fleet, g.fleetLease = m, lease
	// A TOTP code accepted by any node is refused by every other, and
	// after a restart.
	g.codes = mfa.NewSharedVerifier(nil, m.Steps())
	return nil
}

// startFleet runs the fleet membership until the returned stop, which
// waits for it and frees the name.
func (g *Gateway) startFleet() (stop func()) {
	if g.fleet == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		g.fleet.Run(ctx, fleet.Params{
			Lease:  g.fleetLease,
			Live:   g.fleetLive,
			Kill:   g.killLocal,
			Lost:   g.endLost,
			Logger: g.logger,
		})
	})
	return func() {
		cancel()
		wg.Wait()
		lctx, lcancel := context.WithTimeout(context.Background(), fleetLeaveTimeout)
		defer lcancel()
		if err := g.fleet.Leave(lctx); err != nil {
			g.logger.Error("leaving the fleet", "err", err)
		}
	}
}

// fleetLive is the node's authenticated live sessions, for the registry.
func (g *Gateway) fleetLive() []fleet.Session {
	var out []fleet.Session
	for _, s := range g.LiveSessions() {
		if s.User != "" {
			out = append(out, fleet.Session{ID: s.ID, User: s.User, Client: s.Client, Target: s.Target, Start: s.Start})
		}
	}
	return out
}

// fleetListTimeout bounds the registry queries of FleetSessions and
// FleetHolds.
const fleetListTimeout = 5 * time.Second

// FleetSessions returns this node's live sessions and, in a fleet, the
// other nodes' from the registry (only this node's when the store does
// not answer), for the console's list.
func (g *Gateway) FleetSessions() []admin.Session {
	out := g.LiveSessions()
	if g.fleet == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetListTimeout)
	defer cancel()
	others, err := g.fleet.Sessions(ctx)
	if err != nil {
		g.logger.Warn("fleet: listing the other nodes' sessions failed", "err", err)
		return out
	}
	for _, s := range others {
		if s.Gateway != g.fleet.Name() {
			out = append(out, admin.Session{ID: s.ID, User: s.User, Client: s.Client, Target: s.Target, Start: s.Start})
		}
	}
	return out
}

// FleetHolds reports whether another node of the fleet holds live master
// session id, for the console's live view of it.
func (g *Gateway) FleetHolds(ctx context.Context, id string) (bool, error) {
	if g.fleet == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, fleetListTimeout)
	defer cancel()
	gw, err := g.fleet.Holder(ctx, id)
	return gw != "" && gw != g.fleet.Name(), err
}

// endLost closes in the audit store the sessions of a fleet node whose
// lease expired.
func (g *Gateway) endLost(ctx context.Context, gateway string) error {
	ended, err := audit.EndLost(ctx, g.store, gateway, time.Now())
	if len(ended) > 0 {
		g.logger.Warn("sessions of a lost fleet node ended in the audit store", "gateway", gateway, "count", len(ended), "session_ids", ended)
	}
	return err
}

// killFleet asks the fleet node holding id to end it.
func (g *Gateway) killFleet(ctx context.Context, id, operator string) error {
	err := g.fleet.Kill(ctx, id, operator)
	if errors.Is(err, fleet.ErrNotFound) {
		return fmt.Errorf("%w: %s", admin.ErrNotFound, id)
	}
	return err
}

// buildVersion is the module version of the running binary.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}

// fileHash is the SHA-256 of the file at path in hex, or "" when it
// cannot be read (a config given as text).
func fileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
