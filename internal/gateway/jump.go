package gateway

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/hostcert"
	"github.com/sluice-ssh/sluice/internal/router"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
	"github.com/sluice-ssh/sluice/internal/zone"
)

// jump returns the sshproxy.Params.Jump of service sc (router.jump): the
// inventory hosts are rt's; each inner connection gets a master session
// stacked as "ssh" in its channel, a host certificate of the gateway's
// host keys for the host's name and address signed by the host CA in the
// state directory, and the users' authentication as the outer
// connection's user, asked for the service's second factor (second) only
// where the outer login passed none to carry.
func (g *Gateway) jump(cfg *config.Config, sc *config.Service, zones *zone.Tree, hostKeys []ssh.Signer, authn *auth.Authenticator, second auth.SecondFactor, rt *router.Router) (*sshproxy.Jump, error) {
	ca, err := hostcert.Load(cfg.Gateway.StateDir)
	if err != nil {
		return nil, fmt.Errorf("gateway: services[%s].router.jump: %w", sc.Name, err)
	}
	return &sshproxy.Jump{
		Host: rt.InventoryHost,
		Begin: func(st *session.Stacked, outer auth.Identity, name, address string) (*session.Master, *ssh.ServerConfig, func(), error) {
			inner := session.NewInner(st, "ssh", session.MasterParams{
				Gateway:     cfg.Gateway.Name,
				Service:     sc.Name,
				Instance:    st.InstanceID(),
				Zones:       zones,
				ClientZones: sc.ClientZones,
				ServerZones: sc.ServerZones,
			})
			scfg, err := certifiedConfig(ca, hostKeys, hostcert.Principals(name, address), name+" "+inner.ID())
			if err != nil {
				inner.Destroy()
				return nil, nil, nil, err
			}
			l := &login{m: inner}
			authn.As(outer.User).Callbacks(scfg, auth.Login{
				Refused:      func(r auth.Refusal) { g.refused(l, r) },
				SecondFactor: second,
				Carried:      outer.SecondFactor,
				Owed:         l.owe,
			})
			forget := g.inners.add(st.Master(), inner)
			return inner, scfg, func() { forget(); g.loginDone(l) }, nil
		},
	}, nil
}

// certifiedConfig returns a server configuration presenting each of
// hostKeys under a fresh host certificate of ca for principals, with
// keyID: how the gateway answers in a target's place (jumps, transparent
// routing). Authentication is the caller's to add.
func certifiedConfig(ca *hostcert.Authority, hostKeys []ssh.Signer, principals []string, keyID string) (*ssh.ServerConfig, error) {
	cfg := &ssh.ServerConfig{ServerVersion: "SSH-2.0-Sluice"}
	cfg.SetDefaults()
	serverAlgorithms(cfg)
	for _, k := range hostKeys {
		s, _, err := ca.Certify(k, principals, keyID, time.Now())
		if err != nil {
			return nil, err
		}
		cfg.AddHostKey(s)
	}
	return cfg, nil
}

// innerSessions are the live inner masters of jumps, by their outer
// master, so that a reload decides them again (Reload, recheck), and the
// admin API lists and kills them (liveMasters), like the masters the
// services list.
type innerSessions struct {
	mu sync.Mutex
	of map[*session.Master]map[*session.Master]struct{}
}

// add notes inner as running in outer until forget is called.
func (s *innerSessions) add(outer, inner *session.Master) (forget func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.of == nil {
		s.of = map[*session.Master]map[*session.Master]struct{}{}
	}
	if s.of[outer] == nil {
		s.of[outer] = map[*session.Master]struct{}{}
	}
	s.of[outer][inner] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.of[outer], inner)
		if len(s.of[outer]) == 0 {
			delete(s.of, outer)
		}
	}
}

// list returns the inner masters live in outer, by id.
func (s *innerSessions) list(outer *session.Master) []*session.Master {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session.Master, 0, len(s.of[outer]))
	for m := range s.of[outer] {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *session.Master) int { return strings.Compare(a.ID(), b.ID()) })
	return out
}
