package gateway

import (
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/service"
	"github.com/sluice-ssh/sluice/internal/session"
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

// penalise counts a failed authentication attempt against the source of
// m's connection, and logs it with m's session id when that penalises the
// source.
func (g *Gateway) penalise(m *session.Master) {
	src := m.ClientAddr().Addr().Unmap()
	if g.startups.Failed(src) {
		g.logger.Warn("source penalised for failed authentication", "service", m.Service(), "session_id", m.ID(), "source", src, "for", g.startups.Penalty())
	}
}
