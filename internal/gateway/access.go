package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-ssh/sluice/internal/access"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/router"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
)

// EventAccess is the audit event type of a session's access decision by
// the config's roles.
const EventAccess = "access"

// errAccessDenied ends a connection the roles refuse; its client is told
// "not permitted".
var errAccessDenied = fmt.Errorf("gateway: access denied by the roles (%w)", session.ErrDenied)

// accessFacts are what a session was granted, kept on its master for the
// re-check on reload.
type accessFacts struct {
	host, login, role string
}

var accessKey = session.NewKey[accessFacts]("access")

// accessRules are a config's roles, compiled, with each role's stacked
// proxies built once.
type accessRules struct {
	rules *access.Rules
	roles map[string]roleProxies
}

type roleProxies struct {
	stacked      map[string]sshproxy.StackedProxy
	execTransfer func(st *session.Stacked, command string) (sshproxy.Transfer, bool)
}

// CompileAccess compiles cfg's hosts and roles with the gateway's policy
// conversion: the rules the gateway decides sessions by, which `sluice
// explain` prints.
func CompileAccess(cfg *config.Config) (*access.Rules, error) {
	return access.Compile(cfg, policySpec)
}

// buildAccess compiles cfg's roles; nil when it has none.
func (g *Gateway) buildAccess(cfg *config.Config) (*accessRules, error) {
	if len(cfg.Roles) == 0 {
		return nil, nil
	}
	rules, err := CompileAccess(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	a := &accessRules{rules: rules, roles: make(map[string]roleProxies, len(cfg.Roles))}
	for _, r := range cfg.Roles {
		owner := "roles[" + r.Name + "]"
		a.roles[r.Name] = roleProxies{stacked: g.stackedProxies(owner, r.Policy), execTransfer: g.execTransfer(owner, r.Policy)}
	}
	return a, nil
}

// hosts is the inventory for the router; nil without roles.
func (a *accessRules) hosts() map[string]string {
	if a == nil {
		return nil
	}
	return a.rules.Hosts()
}

// decideAccess returns the sshproxy.Params.Access of a service under a's
// roles, or nil without roles. It audits every decision (event "access",
// with the role, the rule and the login), applies the role's limits, and
// remembers the grant for the re-check on reload.
func (g *Gateway) decideAccess(a *accessRules) func(context.Context, *session.Master, router.Route) (sshproxy.Grant, error) {
	if a == nil {
		return nil
	}
	return func(ctx context.Context, m *session.Master, route router.Route) (sshproxy.Grant, error) {
		d := a.rules.Decide(access.Request{User: m.User(), Groups: m.Groups(), Host: route.Host, Login: route.Login, Time: time.Now()})
		e := m.AuditEvent(EventAccess)
		e.Rule, e.Reason = d.Rule, d.Reason
		e.Detail = map[string]any{"role": d.Role, "host": route.Host, "login": d.Login, "login_rule": d.LoginRule}
		if route.Login != "" {
			e.Detail["login_asked"] = route.Login
		}
		release := func() {}
		if d.Accept {
			var ok bool
			if release, ok = g.held.hold(d.Role, m.User(), d.MaxSessionsPerUser); !ok {
				d.Accept = false
				e.Rule = "roles[" + d.Role + "].max_sessions_per_user"
				e.Reason = fmt.Sprintf("%s has %d live sessions under role %s already", m.User(), d.MaxSessionsPerUser, d.Role)
			}
		}
		if !d.Accept {
			e.Verdict = audit.Reject
			_ = g.write(ctx, e)
			return sshproxy.Grant{}, fmt.Errorf("%w: %s (%s)", errAccessDenied, e.Reason, e.Rule)
		}
		e.Verdict = audit.Accept
		if err := g.write(ctx, e); err != nil && g.auditMode == audit.FailClosed {
			release()
			return sshproxy.Grant{}, fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
		}
		session.Set(m, accessKey, accessFacts{host: d.Host, login: d.Login, role: d.Role})
		stop := func() bool { return false }
		if d.MaxSessionLength > 0 {
			rule := "roles[" + d.Role + "].max_session_length"
			t := time.AfterFunc(d.MaxSessionLength, func() {
				e := m.AuditEvent(EventAccess)
				e.Verdict, e.Rule, e.Reason = audit.Reject, rule, "session reached the role's max_session_length "+d.MaxSessionLength.String()
				_ = g.write(context.Background(), e)
				m.End(fmt.Errorf("%w: max_session_length %s of role %s", session.ErrRevoked, d.MaxSessionLength, d.Role))
			})
			stop = t.Stop
		}
		rp := a.roles[d.Role]
		return sshproxy.Grant{
			Policy:       d.Policy,
			Login:        d.Login,
			Stacked:      rp.stacked,
			ExecTransfer: rp.execTransfer,
			Release:      func() { stop(); release() },
		}, nil
	}
}

// recheck decides a live session of a kept service again under the new
// config cfg (old is the config it started under): the sessions of a user
// cfg removes end; a session that cfg's roles (acc) do not grant, with the
// user's groups as cfg gives them, meets mode, and so does a session that
// started before the config had roles.
func (g *Gateway) recheck(ctx context.Context, m *session.Master, old, cfg *config.Config, acc *accessRules, mode config.OnReload) {
	user := m.User()
	if user == "" {
		return
	}
	if old.User(user) != nil && cfg.User(user) == nil {
		g.revokeBy(ctx, m, config.OnReloadEnd, "users", map[string]any{"user": user}, "user "+user+" removed by reload")
		return
	}
	if acc == nil {
		return
	}
	f, ok := session.Lookup(m, accessKey)
	if !ok {
		if m.Target() != "" {
			g.revokeBy(ctx, m, mode, "roles", nil, "session started before roles decided access")
		}
		return
	}
	groups := m.Groups()
	if u := cfg.User(user); u != nil {
		groups = u.Groups
	}
	d := acc.rules.Decide(access.Request{User: user, Groups: groups, Host: f.host, Login: f.login, Time: time.Now()})
	if d.Accept {
		return
	}
	g.revokeBy(ctx, m, mode, d.Rule, map[string]any{"role": f.role, "host": f.host, "login": f.login}, d.Reason)
}

// roleSessions counts live sessions per role and user, for the roles'
// max_sessions_per_user. It outlives reloads: a role keeps its count.
type roleSessions struct {
	mu sync.Mutex
	n  map[[2]string]int
}

// hold counts one more session of user under role unless max (0 = no
// limit) are live already; release undoes it once.
func (r *roleSessions) hold(role, user string, max int) (release func(), ok bool) {
	k := [2]string{role, user}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[[2]string]int{}
	}
	if max > 0 && r.n[k] >= max {
		return nil, false
	}
	r.n[k]++
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.n[k]--; r.n[k] == 0 {
				delete(r.n, k)
			}
		})
	}, true
}
