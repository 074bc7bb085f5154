package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/chainer"
	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/router"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/thin"
	"github.com/sluice-ssh/sluice/internal/usercert"
	"github.com/sluice-ssh/sluice/sshsession"
)

// conn is one proxied connection: the authenticated client leg, the upstream
// leg once dialled, and the bookkeeping shared by its channels.
type conn struct {
	p     *Proxy
	m     *session.Master
	st    *session.Stacked // GATEWAY/SERVICE:N/ssh
	sconn *ssh.ServerConn
	log   *slog.Logger // with the master's session_id
	id    auth.Identity
	restr policy.Restrictions
	// stepUp refuses what needs a second factor the user has not given;
	// nil when given or not asked for.
	stepUp *policy.StepUp
	// grant is what the connection may do; dial sets it when the service
	// decides by identity (Params.Access).
	grant Grant
	// jump is the route of the inner connection of a jump, or nil (see
	// Proxy.handle).
	jumpRoute *router.Route

	up *upstream
	// key is what the upstream connection may be reused for.
	key reuseKey
	// released is closed when the connection is done with up.
	released chan struct{}
	// act is when channel data last moved, for IdleTimeout.
	act *activity

	// wg owns every goroutine the connection starts; serve waits for it.
	wg sync.WaitGroup
	// open counts channels open now, for MaxChannels.
	open atomic.Int32
	// numbers of channels per type, for stacked session ids ("session:0").
	mu      sync.Mutex
	numbers map[string]int
	// refusals counts refusals per audit event type and rule; see
	// auditRefusal.
	refusals thin.Counter[refusalKey, struct{}]
	// remoteForwards counts accepted tcpip-forward requests; forwarded-tcpip
	// channels from the target are relayed only while it is positive.
	remoteForwards atomic.Int32
	// forwarded is set once a tcpip-forward request was accepted: the
	// target then keeps state for the connection, which is never reused.
	forwarded atomic.Bool
	// agent and x11 are set once a session channel's request was accepted.
	agent, x11 atomic.Bool
	// sessionsClosed is set once the client sent no-more-sessions@openssh.com.
	sessionsClosed atomic.Bool
	// programs holds the session channels whose program runs, guarded by
	// mu; see farewell.
	programs map[*sshsession.Session]struct{}

	// recording records the session channels, or is nil.
	recording Recording

	// Totals for the master's session.end event, guarded by mu.
	bytesIn, bytesOut int64
	exitStatus        any // the last session channel's exit status or signal
	recorded          []RecordedFile
	cause             error // why serve ended, when the target went away
}

// account adds a session channel's end to the connection's totals.
func (c *conn) account(e channelEnd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytesIn += e.in
	c.bytesOut += e.out + e.errBytes
	_, c.exitStatus = e.exit()
}

// closeRecording closes the connection's recording, once every channel
// has ended, and keeps its files for totals.
func (c *conn) closeRecording() {
	if c.recording == nil {
		return
	}
	files := c.recording.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recorded = files
}

// totals is the detail of the master's session.end event.
func (c *conn) totals() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := map[string]any{"target": c.m.Target(), "bytes_in": c.bytesIn, "bytes_out": c.bytesOut}
	if c.exitStatus != nil {
		d["exit_status"] = c.exitStatus
	}
	if len(c.recorded) > 0 {
		// "recording" names the first file (sluice sessions reads it);
		// "recordings" lists each with its digest, for audit verify.
		d["recording"] = c.recorded[0].Path
		list := make([]any, 0, len(c.recorded))
		for _, f := range c.recorded {
			list = append(list, map[string]any{"path": f.Path, "sha256": f.SHA256})
		}
		d["recordings"] = list
	}
	if r := c.refusals.Count(refusalKey{"channel", c.maxChannelsRule()}); r > 0 {
		d["channels_refused"] = r
	}
	return d
}

// endReason says why the connection ended.
func (c *conn) endReason(ctx context.Context) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		// Ended from outside (shutdown, kill, idle, reload).
		return context.Cause(ctx).Error()
	case c.cause != nil:
		return c.cause.Error()
	}
	return errClientClosed.Error()
}

// next returns the next channel number of a type.
func (c *conn) next(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.numbers == nil {
		c.numbers = make(map[string]int)
	}
	n := c.numbers[typ]
	c.numbers[typ] = n + 1
	return n
}

func (c *conn) audit(ctx context.Context, e audit.Event) { c.p.write(ctx, e) }

// decide writes the audit event for a policy verdict and reports whether it
// accepted.
func (c *conn) decide(ctx context.Context, s session.Session, typ string, v policy.Verdict, detail map[string]any) bool {
	e := s.AuditEvent(typ)
	e.Rule, e.Reason, e.Detail = v.Rule, v.Reason, detail
	if v.Accept {
		e.Verdict = audit.Accept
		c.audit(ctx, e)
		return true
	}
	e.Verdict = audit.Reject
	c.auditRefusal(ctx, e)
	return false
}

// auditRefusal writes a refusal's audit event unless it is part of a flood.
// A refusal costs the gateway no upstream work, so a client repeating one at
// wire speed would fill the audit queue (under fail_closed, stopping every
// session): the 1st, 2nd, 4th, 8th... refusal of one event type and rule on
// the connection is audited, with the running count in detail "refused"
// (thin.Counter).
func (c *conn) auditRefusal(ctx context.Context, e audit.Event) {
	n, kept := c.refusals.Add(refusalKey{e.Type, e.Rule}, struct{}{})
	if !kept {
		return
	}
	c.log.DebugContext(ctx, "refused", "type", e.Type, "rule", e.Rule, "count", n)
	if n > 1 {
		d := make(map[string]any, len(e.Detail)+1)
		maps.Copy(d, e.Detail)
		d["refused"] = n
		e.Detail = d
	}
	c.audit(ctx, e)
}

// refusalKey is what auditRefusal counts refusals by: the event type and
// the rule.
type refusalKey struct{ typ, rule string }

// maxChannelsRule names the rule behind a max_channels refusal.
func (c *conn) maxChannelsRule() string { return "services[" + c.p.p.Service + "].max_channels" }

// dial routes, chains and logs in upstream.
func (c *conn) dial(ctx context.Context) (*upstream, error) {
	pp := c.p.p
	var route router.Route
	var err error
	switch {
	case c.jumpRoute != nil:
		route = *c.jumpRoute
		route.Login = c.sconn.User()
	case pp.Transparent:
		dst, _ := session.Lookup(c.m, OriginalDestination)
		arrived := c.m.ClientLocal()
		if pp.TProxy {
			arrived = netip.AddrPort{}
		}
		route, err = pp.Router.Transparent(c.id.User, dst, arrived, c.sconn.User())
		if err == nil && pp.Access == nil {
			c.grant.Login = route.Login
		}
	default:
		if route, err = pp.Router.Route(c.id.User, c.sconn.User()); errors.Is(err, router.ErrNoRoute) && pp.Jump != nil {
			return nil, errJumpOnly
		}
	}
	if err != nil {
		e := c.m.AuditEvent("route")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "services["+pp.Service+"].router", err.Error()
		if re, ok := errors.AsType[*router.RouteError](err); ok {
			e.Rule = re.Rule
		}
		c.audit(ctx, e)
		return nil, err
	}
	if pp.Access != nil {
		g, err := pp.Access(ctx, c.m, route)
		if err != nil {
			return nil, err
		}
		c.grant = g
	}
	e := c.m.AuditEvent("connect")
	e.Rule = route.Rule
	// reject audits a failed connect; a zone refusal names its own rule.
	reject := func(err error) error {
		e.Verdict, e.Reason = audit.Reject, err.Error()
		var d *session.DeniedError
		if errors.As(err, &d) {
			e.Rule = d.Rule
		}
		c.audit(ctx, e)
		return err
	}
	up := pp.Upstream
	login := c.login()
	c.key = reuseKey{user: c.id.User, upstreamUser: login, route: route.Rule + "\x00" + strings.Join(route.Targets, "\x00")}
	if up.Certificates != nil {
		c.key.grants = c.grants().String()
	}
	upstreamRule := "services[" + pp.Service + "].upstream"
	if c.p.upstreams != nil {
		if u := c.p.upstreams.get(c.key); u != nil {
			e.Detail = map[string]any{"targets": route.Targets, "reused": true}
			// The server zone is checked again, under the current policy.
			if err := c.m.SetServer(u.remote, u.local); err != nil {
				u.shut()
				return nil, reject(err)
			}
			c.m.SetTarget(u.target)
			e.Verdict, e.Target = audit.Accept, u.target
			c.audit(ctx, e)
			e := c.m.AuditEvent("upstream")
			e.Verdict, e.Rule, e.Target = audit.Accept, upstreamRule, u.target
			e.Detail = map[string]any{"upstream_user": c.key.upstreamUser, "server_version": string(u.ServerVersion()),
				"reused": true, "uses": u.uses, "age": time.Since(u.dialled).Round(time.Millisecond).String()}
			certDetail(e.Detail, u.cert)
			c.audit(ctx, e)
			return u, nil
		}
	}
	nc, attempts, err := pp.Chainer.Connect(ctx, route.Targets)
	tried := describeAttempts(attempts)
	e.Detail = map[string]any{"targets": route.Targets, "attempts": tried}
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			c.log.WarnContext(ctx, "upstream connect failed", "targets", route.Targets, "attempts", tried)
		}
		return nil, reject(err)
	}
	target := attempts[len(attempts)-1].Target
	if len(attempts) > 1 {
		c.log.InfoContext(ctx, "failover", "target", target, "attempts", tried)
	}
	remote, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	local, _ := netip.ParseAddrPort(nc.LocalAddr().String())
	if err := c.m.SetServer(remote, local); err != nil {
		nc.Close()
		return nil, reject(err)
	}
	c.m.SetTarget(target)
	e = c.m.AuditEvent("connect")
	e.Verdict, e.Rule, e.Target = audit.Accept, route.Rule, target
	c.audit(ctx, e)
	// failed logs and audits a failed login.
	failed := func(err error) error {
		nc.Close()
		c.logUpstreamFailure(ctx, target, login, err)
		e := c.m.AuditEvent("upstream")
		e.Verdict, e.Rule, e.Target, e.Reason = audit.Reject, upstreamRule, target, err.Error()
		c.audit(ctx, e)
		return err
	}

	signers := up.Signers
	var cred usercert.Credential
	if up.Certificates != nil {
		cred, err = up.Certificates.Issue(usercert.Request{
			Login:    login,
			KeyID:    usercert.KeyID(c.id.User, c.m.ID()),
			Source:   local.Addr(),
			Grants:   c.grants(),
			Now:      time.Now(),
			Lifetime: up.Timeout,
		})
		if err != nil {
			return nil, failed(err)
		}
		// One publickey method for all: x/crypto tries each method once.
		signers = append([]ssh.Signer{cred.Signer}, signers...)
	}
	var methods []ssh.AuthMethod
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if up.Password != "" {
		methods = append(methods, ssh.Password(up.Password))
	}
	cfg := &ssh.ClientConfig{
		User:              login,
		Auth:              methods,
		HostKeyCallback:   up.HostKeys.HostKeyCallback(),
		HostKeyAlgorithms: up.HostKeys.HostKeyAlgorithms(target),
		Timeout:           up.Timeout,
	}
	if up.Timeout > 0 {
		_ = nc.SetDeadline(time.Now().Add(up.Timeout))
	}
	uc, chans, reqs, err := ssh.NewClientConn(nc, target, cfg)
	if err != nil {
		return nil, failed(err)
	}
	_ = nc.SetDeadline(time.Time{})
	var cert *ssh.Certificate
	if cred.Cert != nil && cred.Used() {
		cert = cred.Cert
	}
	e = c.m.AuditEvent("upstream")
	e.Verdict, e.Rule, e.Target = audit.Accept, upstreamRule, target
	e.Detail = map[string]any{"upstream_user": cfg.User, "server_version": string(uc.ServerVersion())}
	certDetail(e.Detail, cert)
	if cred.Cert != nil && cert == nil {
		// The target did not take the certificate; a static credential
		// logged in.
		e.Detail["cert_refused"] = true
	}
	c.audit(ctx, e)
	return newUpstream(uc, chans, reqs, target, remote, local, cert), nil
}

// login is the login name on the target for this connection.
func (c *conn) login() string { return c.grant.Login }

// grants are what a certificate issued for this connection's login
// permits: what the service's policy and the user's key options could
// accept, so that the target refuses the rest even were the gateway's own
// checks bypassed. permit-user-rc is never granted.
func (c *conn) grants() usercert.Grants {
	pol, r := c.grant.Policy, c.restr
	return usercert.Grants{
		PTY:             c.stepUp.Decide(pol.Pty(r), policy.KindPty).Accept,
		PortForwarding:  c.stepUp.Decide(policy.Verdict{Accept: pol.ForwardLocalPossible(r)}, policy.KindForwardLocal).Accept || c.stepUp.Decide(pol.ForwardRemote(r), policy.KindForwardRemote).Accept,
		AgentForwarding: c.stepUp.Decide(pol.Agent(r), policy.KindAgent).Accept,
		X11Forwarding:   c.stepUp.Decide(pol.X11(r), policy.KindX11).Accept,
	}
}

// certDetail adds what identifies cert, when not nil, to an upstream
// audit event's detail: its serial (as decimal text: a uint64 does not
// survive JSON readers that use doubles), key id, CA, expiry and
// extensions.
func certDetail(d map[string]any, cert *ssh.Certificate) {
	if cert == nil {
		return
	}
	d["cert_serial"] = strconv.FormatUint(cert.Serial, 10)
	d["cert_key_id"] = cert.KeyId
	d["cert_ca"] = ssh.FingerprintSHA256(cert.SignatureKey)
	d["cert_valid_before"] = time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339)
	var ext []string
	for k := range cert.Extensions {
		ext = append(ext, k)
	}
	slices.Sort(ext)
	d["cert_extensions"] = ext
}

// logUpstreamFailure writes the WARN line of a failed upstream login: a
// host key that is not the one on record (changed, revoked or unknown)
// says so, as it may be an attack in the middle; anything else is a login
// failure.
func (c *conn) logUpstreamFailure(ctx context.Context, target, user string, err error) {
	if ce, ok := errors.AsType[*hostkey.ChangedKeyError](err); ok {
		c.log.WarnContext(ctx, "upstream host key mismatch: the target offered a key other than the one on record",
			"target", target, "offered", ce.KeyType+" "+ce.Fingerprint, "known", ce.Known)
		return
	}
	if re, ok := errors.AsType[*hostkey.RevokedKeyError](err); ok {
		c.log.WarnContext(ctx, "upstream host key revoked", "target", target, "offered", re.KeyType+" "+re.Fingerprint, "where", re.Where)
		return
	}
	if ue, ok := errors.AsType[*hostkey.UnknownKeyError](err); ok {
		c.log.WarnContext(ctx, "upstream host key unknown: add it with sluice known-hosts add", "target", target, "offered", ue.KeyType+" "+ue.Fingerprint)
		return
	}
	c.log.WarnContext(ctx, "upstream login failed", "target", target, "upstream_user", user, "err", err)
}

// dialFailureText is the fixed text a client reads when its session
// cannot be set up: whether the destination does not exist, is not
// permitted, or cannot be reached now, without the internals (addresses,
// errors) that the audit event keeps.
func dialFailureText(err error) string {
	if _, ok := errors.AsType[*session.DeniedError](err); ok || errors.Is(err, session.ErrDenied) {
		return msgNotPermitted
	}
	if errors.Is(err, router.ErrInbandDisabled) || errors.Is(err, router.ErrUserMismatch) || errors.Is(err, router.ErrLoginNotAllowed) || errors.Is(err, chainer.ErrUnspecified) {
		return msgNotPermitted
	}
	if _, ok := errors.AsType[*router.RouteError](err); ok {
		return msgNoSuchHost
	}
	return msgUnavailable
}

func describeAttempts(as []chainer.Attempt) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		s := a.Target + " " + a.Addr.String() + " " + a.Outcome.String()
		if a.Err != nil {
			s += ": " + a.Err.Error()
		}
		out = append(out, s)
	}
	return out
}

// serve relays the connection until either leg closes.
func (c *conn) serve(ctx context.Context, up *upstream, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	c.up = up
	c.released = make(chan struct{})
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watchUpstream(ctx, cancel)
	}()
	stopIdle := func() {}
	if d := c.p.p.IdleTimeout; d > 0 {
		stopIdle = c.watchIdle(ctx, d, cancel)
	}
	c.dispatch(ctx, chans, reqs, func(req *ssh.Request) {
		if req.Type == reqNoMoreSessions {
			c.noMoreSessions(ctx, chans)
		}
		c.globalRequest(ctx, req)
	})
	// The client's connection ended first (unless the target's did and
	// closed it): that is why the session ends.
	c.setCause(clientEnd(c.sconn.Wait()))
	stopIdle()
	reuse := c.reusable(ctx)
	close(c.released)
	<-watched // nothing serves the upstream connection now but this goroutine
	if !reuse {
		up.shut()
	}
	c.wg.Wait()
	if reuse && !c.p.upstreams.put(c.key, up) {
		up.shut()
	}
}

// dispatch serves the client's channel opens (accept) and hands its
// global requests to global, on one goroutine, until x/crypto closes both
// as the connection ends.
func (c *conn) dispatch(ctx context.Context, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, global func(*ssh.Request)) {
	for chans != nil || reqs != nil {
		select {
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			c.accept(ctx, nc)
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			global(req)
		}
	}
}

// accept serves a channel the client opened on a goroutine of its own,
// unless max_channels are open.
func (c *conn) accept(ctx context.Context, nc ssh.NewChannel) {
	n := c.open.Add(1)
	if max := c.p.p.MaxChannels; max > 0 && int(n) > max {
		c.open.Add(-1)
		// Sampled like every refusal; the total goes into session.end.
		e := c.st.AuditEvent("channel")
		e.Verdict, e.Rule, e.Reason = audit.Reject, c.maxChannelsRule(), fmt.Sprintf("%d channels open", max)
		c.auditRefusal(ctx, e)
		_ = nc.Reject(ssh.ResourceShortage, msgProhibited)
		return
	}
	c.wg.Go(func() {
		defer c.open.Add(-1)
		c.channel(ctx, nc)
	})
}

// watchUpstream serves the target's side of the connection: it relays
// the channels the target opens (upstreamChannel), and when the target
// goes away it ends the client leg too. It returns then, or once the
// connection is done with the target (c.released).
func (c *conn) watchUpstream(ctx context.Context, cancel context.CancelCauseFunc) {
	if !c.up.serve(c.released, func(nc ssh.NewChannel) { c.upstreamChannel(ctx, nc) }) {
		return // the upstream connection may live on, reused
	}
	cause := fmt.Errorf("%w: %v", session.ErrUpstreamClosed, c.up.err)
	if ctx.Err() == nil && c.setCause(cause) {
		// Let the relays pass the end of each channel on (EOF, close,
		// no exit status) before the client leg goes: closing it at once
		// would reset a client that still has data in flight.
		c.drainChannels(ctx, upstreamGoneGrace)
	}
	cancel(cause)
	c.sconn.Close()
}

// reusable reports whether the upstream connection may serve another client
// connection once this one is done: the service reuses connections, the
// client closed its connection (nothing else ended it), and the target
// holds no state for it (no remote forwarding, agent or X11).
func (c *conn) reusable(ctx context.Context) bool {
	if c.p.upstreams == nil || ctx.Err() != nil || c.forwarded.Load() || c.agent.Load() || c.x11.Load() || !c.up.alive() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause == errClientClosed
}

// errClientClosed is the end cause when the client closed its connection.
var errClientClosed = fmt.Errorf("%w: client closed the connection", session.ErrClosed)

// clientEnd is the end cause when the client's leg ended first, from the
// error x/crypto/ssh ended it with. EOF, or a disconnect message (whose
// type x/crypto/ssh does not export; its text starts "ssh: disconnect"),
// is the client closing the connection. Anything else is a failure the
// cause names: a reset, or a protocol violation x/crypto/ssh ends the
// whole connection for, such as a window adjust that overflows 2^32
// (RFC 4254 §5.2) or data for a channel that was never opened.
func clientEnd(err error) error {
	if errors.Is(err, io.EOF) || strings.HasPrefix(err.Error(), "ssh: disconnect") {
		return errClientClosed
	}
	return fmt.Errorf("%w: client connection failed: %v", session.ErrClosed, err)
}

// setCause records why the connection ends, unless a cause is already
// recorded; it reports whether cause was recorded.
func (c *conn) setCause(cause error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return false
	}
	c.cause = cause
	return true
}

// upstreamGoneGrace bounds how long the client leg stays open after the
// target's connection ended, for its channels to close cleanly.
const upstreamGoneGrace = 5 * time.Second

// drainChannels waits until no channel is open, ctx is done, or grace has
// passed.
func (c *conn) drainChannels(ctx context.Context, grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.open.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// reqNoMoreSessions is OpenSSH's global request that no further session
// channel will be opened on the connection (PROTOCOL §2.2).
const reqNoMoreSessions = "no-more-sessions@openssh.com"

// errNoMoreSessions ends a connection that opened a session after
// no-more-sessions@openssh.com.
var errNoMoreSessions = fmt.Errorf("%w: session channel opened after %s", session.ErrDenied, reqNoMoreSessions)

// noMoreSessions honours no-more-sessions@openssh.com. x/crypto/ssh hands
// channel opens and global requests over on two Go channels, so a session
// open the client sent just before the request (as ssh(1) does: it opens
// its session, then sends the request) may still wait in chans: those
// queued now are served first, then every later session open is refused.
func (c *conn) noMoreSessions(ctx context.Context, chans <-chan ssh.NewChannel) {
	for n := len(chans); n > 0; n-- {
		if nc, ok := <-chans; ok {
			c.accept(ctx, nc)
		}
	}
	c.sessionsClosed.Store(true)
}

// channel dispatches one channel the client opened.
func (c *conn) channel(ctx context.Context, nc ssh.NewChannel) {
	switch typ := nc.ChannelType(); typ {
	case "session":
		if c.sessionsClosed.Load() {
			// As sshd(8) (serverloop.c): the open is refused and the
			// connection ended, since a client that promised no more
			// sessions and opens one is not the client it was.
			e := c.st.AuditEvent("channel")
			e.Verdict, e.Rule, e.Reason = audit.Reject, reqNoMoreSessions, "session channel after "+reqNoMoreSessions
			c.audit(ctx, e)
			_ = nc.Reject(ssh.Prohibited, msgProhibited)
			c.setCause(errNoMoreSessions)
			c.sconn.Close()
			return
		}
		st := c.st.Stack("session", c.next(typ))
		if c.up == nil {
			c.refuseNoTarget(ctx, st, nc, "session channel on a connection that serves jumps only")
			return
		}
		c.session(ctx, nc, st)
	case "direct-tcpip":
		c.directTCPIP(ctx, nc, c.st.Stack("direct-tcpip", c.next(typ)))
	default:
		e := c.st.AuditEvent("channel")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "channel types", "unknown channel type "+fmt.Sprintf("%q", typ)
		c.auditRefusal(ctx, e)
		_ = nc.Reject(ssh.UnknownChannelType, msgUnknownChannel)
	}
}

// rejectLike refuses nc the way the target refused its twin: with the
// target's reason code and the fixed text for that code (refusalText),
// never the target's own text, which may name its internal hosts and
// addresses; the audit event keeps that.
func rejectLike(nc ssh.NewChannel, err error) {
	var oe *ssh.OpenChannelError
	if errors.As(err, &oe) {
		_ = nc.Reject(oe.Reason, refusalText(oe.Reason))
		return
	}
	_ = nc.Reject(ssh.ConnectionFailed, msgUnavailable)
}

// refusalText is the fixed text of a channel refusal passed on from the
// target, by its reason code (RFC 4254 §5.1). docs/operations.md lists
// them.
func refusalText(r ssh.RejectionReason) string {
	switch r {
	case ssh.Prohibited:
		return msgProhibited
	case ssh.ConnectionFailed:
		return msgConnectFailed
	case ssh.UnknownChannelType:
		return msgUnknownChannel
	case ssh.ResourceShortage:
		return msgResourceShortage
	}
	return msgUnavailable
}

// pipe relays two channels until both directions have ended, passing EOF
// along, then closes both. It is the plug proxy's data path.
func (p *Proxy) pipe(a, b ssh.Channel) (aToB, bToA int64) {
	var wg sync.WaitGroup
	half := func(dst, src ssh.Channel) int64 {
		n, err := copyStream(dst, src)
		if err != nil {
			// One side is gone: nothing more can flow either way.
			a.Close()
			b.Close()
		}
		_ = dst.CloseWrite()
		return n
	}
	wg.Go(func() { aToB = half(b, a) })
	bToA = half(a, b)
	wg.Wait()
	a.Close()
	b.Close()
	return aToB, bToA
}
