package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/router"
	"github.com/sluice-ssh/sluice/internal/service"
	"github.com/sluice-ssh/sluice/internal/session"
)

// Jump answers ProxyJump itself: a direct-tcpip channel to the SSH port
// of an inventory host (ssh -J, ssh -W) is not forwarded as an opaque
// stream but served by an SSH server inside the channel, which presents
// a host certificate for that host, authenticates the user again, and
// proxies the inner connection like any other, under its own master
// session stacked in the channel's (session.NewInner).
type Jump struct {
	// Host returns the inventory host whose SSH port host:port is, and
	// its address; ok false leaves the channel to forward_local.
	Host func(host string, port uint32) (name, address string, ok bool)
	// Begin makes the inner connection's master session (inside st) and
	// its SSH server configuration for outer, the identity of the jump
	// connection's login, reaching the inventory host name at address:
	// the host certificate, and authentication as outer.User whatever SSH
	// user name the client sends, carrying outer.SecondFactor
	// (auth.Login.Carried). done is called once the inner connection has
	// ended.
	Begin func(st *session.Stacked, outer auth.Identity, name, address string) (inner *session.Master, cfg *ssh.ServerConfig, done func(), err error)
}

// errJumpOnly is dial's answer for a connection that names no target on
// a service with Params.Jump: it serves jumps only.
var errJumpOnly = errors.New("sshproxy: no target; the connection serves jumps only")

// jumpRule names the rule that answers jumps.
func (c *conn) jumpRule() string { return "services[" + c.p.p.Service + "].router.jump" }

// serveJumps serves a connection without a target: its direct-tcpip
// channels to inventory hosts' SSH ports (jump), nothing else. The
// service's idle_timeout ends it when no data has moved through any of
// its jumps for that long, as it ends a connection with a target.
func (c *conn) serveJumps(ctx context.Context, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopIdle := func() {}
	if d := c.p.p.IdleTimeout; d > 0 {
		stopIdle = c.watchIdle(ctx, d, cancel)
	}
	c.dispatch(ctx, chans, reqs, func(req *ssh.Request) {
		if req.WantReply {
			// no-more-sessions@openssh.com is honoured (every session
			// channel is refused here); nothing else is served.
			_ = req.Reply(req.Type == reqNoMoreSessions, nil)
		}
	})
	c.setCause(clientEnd(c.sconn.Wait()))
	stopIdle()
	c.wg.Wait()
}

// refuseNoTarget refuses a channel of a connection that serves jumps only.
func (c *conn) refuseNoTarget(ctx context.Context, st session.Session, nc ssh.NewChannel, reason string) {
	e := st.AuditEvent("channel")
	e.Verdict, e.Rule, e.Reason = audit.Reject, c.jumpRule(), reason
	c.auditRefusal(ctx, e)
	_ = nc.Reject(ssh.Prohibited, msgNotPermitted)
}

// jump serves nc, a direct-tcpip channel to the SSH port of the inventory
// host name at address, as an inner SSH connection (see Jump).
func (c *conn) jump(ctx context.Context, nc ssh.NewChannel, st *session.Stacked, m directTCPIP, name, address string) {
	e := st.AuditEvent("forward.jump")
	e.Verdict, e.Rule = audit.Accept, c.jumpRule()
	e.Detail = map[string]any{"host": m.Host, "port": m.Port, "inventory_host": name}
	inner, cfg, done, err := c.p.p.Jump.Begin(st, c.id, name, address)
	if err != nil {
		e.Verdict, e.Reason = audit.Reject, err.Error()
		c.audit(ctx, e)
		c.log.ErrorContext(ctx, "jump refused", "host", name, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, msgUnavailable)
		return
	}
	defer inner.Destroy()
	defer done()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	c.wg.Go(func() { ssh.DiscardRequests(reqs) })
	c.audit(ctx, e)
	nconn := newChannelConn(c.act.channel(ch), c.m.ClientLocal(), c.m.ClientAddr())
	inner.Hold(nconn)
	if err := inner.SetClient(c.m.ClientAddr(), c.m.ClientLocal()); err != nil {
		e := inner.AuditEvent(service.EventConnection)
		e.Verdict, e.Reason = audit.Reject, err.Error()
		if de, ok := errors.AsType[*session.DeniedError](err); ok {
			e.Rule = de.Rule
		}
		c.audit(ctx, e)
		return
	}
	route := router.Route{User: c.id.User, Targets: []string{address}, Rule: c.jumpRule(), Host: name}
	c.p.handle(inner.Context(), inner, nconn, cfg, &route)
}

// channelConn is a net.Conn over an SSH channel, for the SSH server of an
// inner connection: its addresses are the outer connection's.
type channelConn struct {
	ssh.Channel
	local, remote net.Addr

	mu    sync.Mutex
	timer *time.Timer // closes the channel at the deadline, or nil
}

func newChannelConn(ch ssh.Channel, local, remote netip.AddrPort) *channelConn {
	return &channelConn{Channel: ch, local: addr(local.String()), remote: addr(remote.String())}
}

// addr is a net.Addr of a TCP address in its text form.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

func (c *channelConn) LocalAddr() net.Addr  { return c.local }
func (c *channelConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline closes the channel at t (the zero time cancels): the only
// deadline the inner connection sets is LoginGraceTime, which ends it.
func (c *channelConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() { c.Channel.Close() })
	}
	return nil
}

// SetReadDeadline and SetWriteDeadline are not supported.
func (c *channelConn) SetReadDeadline(time.Time) error {
	return fmt.Errorf("sshproxy: read deadline on a channel: %w", errors.ErrUnsupported)
}

func (c *channelConn) SetWriteDeadline(time.Time) error {
	return fmt.Errorf("sshproxy: write deadline on a channel: %w", errors.ErrUnsupported)
}

// Close stops the deadline and closes the channel.
func (c *channelConn) Close() error {
	_ = c.SetDeadline(time.Time{})
	return c.Channel.Close()
}

var _ net.Conn = (*channelConn)(nil)
