package service

import (
	"net"
	"slices"

	"github.com/sluice-ssh/sluice/internal/session"
)

// Name returns the service's name.
func (s *Service) Name() string { return s.p.Name }

// Addr returns the listener's address.
func (s *Service) Addr() net.Addr { return s.p.Listener.Addr() }

// current returns the parameters new connections are served with.
func (s *Service) current() Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// Reconfigure replaces the parameters new connections are served with: the
// zones and the client and server zones, the limits, Admit, Startups and the
// Handler. Live sessions keep the ones they started with. The listener, the
// name, the audit sink and the logger cannot change; p's are ignored. The
// Release of the parameters replaced is called.
func (s *Service) Reconfigure(p Params) {
	s.mu.Lock()
	release := s.p.Release
	defer func() {
		s.mu.Unlock()
		if release != nil {
			release()
		}
	}()
	s.p.Release = p.Release
	s.p.Gateway = p.Gateway
	s.p.Zones = p.Zones
	s.p.ClientZones = slices.Clone(p.ClientZones)
	s.p.ServerZones = slices.Clone(p.ServerZones)
	s.p.MaxSessions = p.MaxSessions
	s.p.MaxSessionsPerUser = p.MaxSessionsPerUser
	s.p.Admit = p.Admit
	s.p.Startups = p.Startups
	s.p.Handler = p.Handler
	if p.Clock != nil {
		s.p.Clock = p.Clock
	}
}

// Retire stops accepting without waiting: the listener is closed and the
// live sessions go on until they end (or Shutdown or Close end them).
func (s *Service) Retire() error { return s.stop() }

// ClientPermitted reports whether m's client zone is one the service
// admits now (after a Reconfigure, it may no longer be).
func (s *Service) ClientPermitted(m *session.Master) bool {
	z := m.ClientZone()
	if z == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range s.p.ClientZones {
		if z.Within(name) {
			return true
		}
	}
	return false
}
