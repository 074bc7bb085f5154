package gateway

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/service"
)

// startupsParams maps the gateway's limits on unauthenticated connections.
// A source is penalised after max_auth_tries failed attempts, the number
// OpenSSH allows on one connection.
func startupsParams(cfg *config.Config) service.StartupsParams {
	gc := cfg.Gateway
	return service.StartupsParams{
		Start:        gc.MaxStartups.Start,
		Rate:         gc.MaxStartups.Rate,
		Full:         gc.MaxStartups.Full,
		PerSource:    gc.PerSourceMaxStartups,
		Penalty:      gc.AuthPenalty.Std(),
		PenaltyAfter: gc.MaxAuthTries,
	}
}

// penalise counts a failed authentication attempt against its source;
// log is the logger of the connection that failed.
func (g *Gateway) penalise(remote net.Addr, log *slog.Logger) {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return
	}
	if g.startups.Failed(ap.Addr().Unmap()) {
		log.Warn("source penalised for failed authentication", "source", ap.Addr().Unmap(), "for", g.startups.Penalty())
	}
}
