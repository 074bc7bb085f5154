package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/chainer"
	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/router"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/usercert"
	"github.com/sluice-ssh/sluice/sshsession"
)

// Texts the client is told. They are fixed and never carry internal causes;
// the audit event holds the cause. docs/operations.md lists them.
const (
	msgProhibited       = "sluice: administratively prohibited"
	msgUnavailable      = "sluice: target unavailable"
	msgNoSuchHost       = "sluice: no such host"
	msgNotPermitted     = "sluice: not permitted"
	msgDenied           = "sluice: denied by policy\r\n"
	msgConnectFailed    = "sluice: connect failed"
	msgUnknownChannel   = "sluice: unknown channel type"
	msgResourceShortage = "sluice: resource shortage"
	msgMalformed        = "sluice: malformed request"
	// msgRecordFailed ends a channel whose recording failed (fail_closed).
	msgRecordFailed = "sluice: session recording failed; channel ended\r\n"
)

// Upstream says how the gateway logs in to the target.
type Upstream struct {
	// User returns the upstream login name for a gateway user.
	User func(gatewayUser string) string
	// Signers are the injected credentials, tried in order.
	Signers []ssh.Signer
	// Password is tried after the signers when not empty.
	Password string
	// Certificates, when set, issues a certificate for each login
	// (internal/usercert), offered before Signers.
	Certificates *usercert.Authority
	// HostKeys checks the target's host key strictly; an unknown or changed
	// key ends the connection before any credential is sent.
	HostKeys *hostkey.Checker
	// Timeout bounds the upstream SSH handshake and authentication.
	Timeout time.Duration
	// Reuse keeps an upstream connection this long after its client
	// connection ended cleanly, for the next connection of the same user
	// on the same route (see conn.reusable). Zero means never.
	Reuse time.Duration
	// ReuseIdle is the most connections kept idle per user and route;
	// required when Reuse is set.
	ReuseIdle int
}

// Params configures a Proxy. Every field is required unless it says
// otherwise.
type Params struct {
	// Service names the service, for rule names and logs.
	Service string
	Router  *router.Router
	// Chainer dials the target. Its Permit hook must check the server zone.
	Chainer  *chainer.Chainer
	Upstream Upstream
	Policy   *policy.Policy
	// Session configures the client leg's session channels. Its AcceptEnv is
	// replaced by the policy's env decision.
	Session sshsession.Config
	// LoginGraceTime bounds the time from TCP accept to authenticated (as
	// OpenSSH's LoginGraceTime).
	LoginGraceTime time.Duration
	// IdleTimeout ends a connection on which no channel data has moved in
	// either direction for this long (session.ErrIdle). Zero means never.
	IdleTimeout time.Duration
	// Authenticated, when set, is called once the client has authenticated
	// and the master knows its user (service.Service.Authenticated): the
	// connection stops counting as unauthenticated and per-user limits are
	// checked. A refusal names the rule and ends the connection.
	Authenticated func(m *session.Master) (rule string, err error)
	// MaxChannels bounds the channels open at once on one connection (as
	// OpenSSH's MaxSessions). Zero means no limit.
	MaxChannels int
	// Stacked maps a subsystem name to the stacked proxy that inspects it
	// (e.g. "sftp"); a subsystem without one is relayed unchanged.
	Stacked map[string]StackedProxy
	// ExecTransfer, when set, decides exec commands that run a file
	// transfer server (scp -t/-f, sftp-server) by the subsystem policy,
	// and may stack a proxy on them (see Transfer); ok false leaves the
	// command to the exec policy alone. It is asked only about commands
	// the exec policy permits, with the session channel's st, before the
	// target is asked to run them.
	ExecTransfer func(st *session.Stacked, command string) (t Transfer, ok bool)
	// StepUp, when set, refuses the requests it names to connections
	// whose user gave no second factor (auth.Identity.SecondFactor), as a
	// key marked for automation does not; nil refuses nothing.
	StepUp *policy.StepUp
	// Record gives each master session its recording; nil records
	// nothing.
	Record RecordStart
	// Access, when set, decides each connection by identity once it is
	// routed (the config's roles): it audits its decision and returns
	// what the connection may do, or an error that refuses it. Policy,
	// Upstream.User, Stacked and ExecTransfer are then not used.
	Access func(ctx context.Context, m *session.Master, route router.Route) (Grant, error)
	// Jump, when set, answers direct-tcpip channels to inventory hosts'
	// SSH ports with inspected inner connections (see Jump); a connection
	// whose user name routes nowhere then serves such jumps only. It
	// needs Access.
	Jump *Jump
	// Transparent routes each connection to its original destination,
	// the master's OriginalDestination (Router.Transparent), with the SSH
	// user name as the upstream login.
	Transparent bool
	// TProxy says that a Transparent service's connections come from a
	// TPROXY listener, where each arrives at its original destination's
	// own address: the gateway, which leaves OriginalDestination unset for
	// one that was not intercepted, tells them apart, not the router.
	TProxy bool

	Audit  audit.Sink
	Logger *slog.Logger
}

// OriginalDestination is the master's attribute holding where a
// connection redirected to the gateway was going, for Params.Transparent.
var OriginalDestination = session.NewKey[netip.AddrPort]("original destination")

// Grant is what one connection may do: the policy its requests are
// decided by and the upstream login. Without Params.Access every
// connection of a service has the service's.
type Grant struct {
	Policy       *policy.Policy
	Login        string
	Stacked      map[string]StackedProxy
	ExecTransfer func(st *session.Stacked, command string) (t Transfer, ok bool)
	// Release, when set, is called once when the connection ends.
	Release func()
}

// Proxy is the SSH proxy: it serves one accepted client connection at a time
// per Handle call, relaying every channel to the target under policy.
type Proxy struct {
	p   Params
	log *slog.Logger // p.Logger with the service
	// upstreams keeps upstream connections for reuse; nil when
	// Upstream.Reuse is zero.
	upstreams *upstreamPool
}

// New returns a Proxy for p.
func New(p Params) *Proxy {
	px := &Proxy{p: p, log: p.Logger.With("service", p.Service)}
	if p.Upstream.Reuse > 0 {
		px.upstreams = newUpstreamPool(p.Upstream.Reuse, p.Upstream.ReuseIdle)
	}
	return px
}

// Close closes the upstream connections kept for reuse, and keeps no more.
// Connections being served carry on.
func (p *Proxy) Close() {
	if p.upstreams != nil {
		p.upstreams.close()
	}
}

// Handle serves one accepted connection for its master session; cfg is the
// client leg's SSH configuration for this connection: host keys and the
// authentication callbacks (see internal/auth). It returns when both legs
// are closed and every goroutine it started has exited.
func (p *Proxy) Handle(ctx context.Context, m *session.Master, c net.Conn, cfg *ssh.ServerConfig) {
	p.handle(ctx, m, c, cfg, nil)
}

// handle is Handle; jump, when not nil, makes the connection the inner
// connection of a jump (see Jump) whose route it is: its SSH user name is
// the login, it is not counted by Params.Authenticated, and its own
// direct-tcpip channels are plain forwards.
func (p *Proxy) handle(ctx context.Context, m *session.Master, c net.Conn, cfg *ssh.ServerConfig, jump *router.Route) {
	log := p.log.With("session_id", m.ID())
	if p.p.LoginGraceTime > 0 {
		_ = c.SetDeadline(time.Now().Add(p.p.LoginGraceTime))
	}
	sconn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		e := m.AuditEvent("auth")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "authentication", fmt.Sprintf("handshake or authentication failed: %v", err)
		p.write(ctx, e)
		return
	}
	defer sconn.Close()
	_ = c.SetDeadline(time.Time{})

	id, err := auth.IdentityOf(sconn.Permissions)
	if err != nil {
		log.ErrorContext(ctx, "authenticated connection without identity", "err", err)
		return
	}
	m.SetUser(id.User, id.Groups, id.Method)
	session.Set(m, ClientVersion, string(sconn.ClientVersion()))
	log.DebugContext(ctx, "client authenticated", "user", id.User, "method", id.Method)
	e := m.AuditEvent("auth")
	e.Verdict, e.Rule = audit.Accept, "authentication"
	e.Detail = map[string]any{"method": id.Method, "key": id.KeyFingerprint, "ssh_user": sconn.User()}
	if id.Subject != "" {
		e.Detail["subject"] = id.Subject
	}
	if id.SecondFactor != "" {
		e.Detail["second_factor"] = id.SecondFactor
	}
	if id.Carried {
		e.Detail["second_factor_carried"] = true
	}
	if id.Restrictions.Automation {
		e.Detail["automation"] = true
	}
	p.write(ctx, e)
	if p.p.Authenticated != nil && jump == nil {
		if rule, err := p.p.Authenticated(m); err != nil {
			e := m.AuditEvent("session.start")
			e.Verdict, e.Rule, e.Reason = audit.Reject, rule, err.Error()
			p.write(ctx, e)
			go ssh.DiscardRequests(reqs)
			if nc, ok := <-chans; ok {
				_ = nc.Reject(ssh.ResourceShortage, msgProhibited)
			}
			m.End(err)
			return
		}
	}

	cn := &conn{p: p, m: m, st: m.Stack("ssh", -1), sconn: sconn, log: log, id: id, restr: restrictions(id.Restrictions), act: newActivity(), jumpRoute: jump}
	if id.SecondFactor == "" {
		cn.stepUp = p.p.StepUp
	}
	cn.grant = Grant{Policy: p.p.Policy, Login: p.p.Upstream.User(id.User), Stacked: p.p.Stacked, ExecTransfer: p.p.ExecTransfer}
	session.Set(m, connKey, cn)
	up, err := cn.dial(ctx)
	if cn.grant.Release != nil {
		defer cn.grant.Release()
	}
	jumpOnly := errors.Is(err, errJumpOnly)
	if err != nil && !jumpOnly {
		// The client has authenticated but there is nothing to relay to:
		// answer every channel open with a fixed text, then close.
		go ssh.DiscardRequests(reqs)
		if nc, ok := <-chans; ok {
			_ = nc.Reject(ssh.ConnectionFailed, dialFailureText(err))
		}
		return
	}
	start := m.AuditEvent("session.start")
	start.Target = m.Target()
	start.Detail = map[string]any{"target": m.Target(), "ssh_user": sconn.User()}
	if jumpOnly {
		start.Rule = cn.jumpRule()
		start.Detail["jump_only"] = true
	} else {
		session.Set(m, ServerVersion, string(up.ServerVersion()))
	}
	p.write(ctx, start)
	log.DebugContext(ctx, "session started", "target", m.Target())
	switch {
	case jumpOnly:
		cn.serveJumps(ctx, chans, reqs)
	default:
		if p.p.Record != nil {
			cn.recording = p.p.Record(m)
		}
		cn.serve(ctx, up, chans, reqs)
	}
	cn.closeRecording()
	end := m.AuditEvent("session.end")
	end.Target = m.Target()
	end.Reason = cn.endReason(ctx)
	end.Detail = cn.totals()
	p.write(ctx, end)
	log.DebugContext(ctx, "session ended", "reason", end.Reason)
}

func (p *Proxy) write(ctx context.Context, e audit.Event) {
	if err := p.p.Audit.Write(ctx, e); err != nil {
		p.log.ErrorContext(ctx, "audit write failed", "session_id", e.SessionID, "err", err)
	}
}

func restrictions(r auth.Restrictions) policy.Restrictions {
	return policy.Restrictions{
		NoPty:             r.NoPty,
		NoPortForwarding:  r.NoPortForwarding,
		NoAgentForwarding: r.NoAgentForwarding,
		NoX11Forwarding:   r.NoX11Forwarding,
		ForcedCommand:     r.ForcedCommand,
		ForcedCommandRule: r.ForcedCommandRule,
		PermitOpen:        r.PermitOpen,
	}
}
