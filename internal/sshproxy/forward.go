package sshproxy

import (
	"context"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sniff"
)

// directTCPIP proxies "direct-tcpip" (ssh -L, ssh -W, ssh -J through the
// gateway) as a stacked plug session: checked against forward_local, then
// opened through the target, so the target's own policy applies as well.
// With Params.Jump, a channel to an inventory host's SSH port is a jump
// instead, unless the connection is itself a jump's inner one.
func (c *conn) directTCPIP(ctx context.Context, nc ssh.NewChannel, dt *session.Stacked) {
	st := dt.Stack("plug", -1)
	m, err := parseDirectTCPIP(nc.ExtraData())
	if err != nil {
		e := st.AuditEvent("forward.local")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "protocol", err.Error()
		c.auditRefusal(ctx, e)
		_ = nc.Reject(ssh.ConnectionFailed, msgMalformed)
		return
	}
	if j := c.p.p.Jump; j != nil && c.jumpRoute == nil {
		if name, address, ok := j.Host(m.Host, m.Port); ok {
			st.Destroy()
			c.jump(ctx, nc, dt, m, name, address)
			return
		}
	}
	if c.up == nil {
		c.refuseNoTarget(ctx, st, nc, fmt.Sprintf("%s:%d is not the SSH port of an inventory host", m.Host, m.Port))
		return
	}
	detail := map[string]any{"host": m.Host, "port": m.Port, "origin": fmt.Sprintf("%s:%d", m.OriginHost, m.OriginPort)}
	if !c.decide(ctx, st, "forward.local", c.stepUp.Decide(c.grant.Policy.ForwardLocal(m.Host, m.Port, c.restr), policy.KindForwardLocal), detail) {
		_ = nc.Reject(ssh.Prohibited, msgProhibited)
		return
	}
	upCh, upReqs, err := c.up.OpenChannel("direct-tcpip", nc.ExtraData())
	if err != nil {
		e := st.AuditEvent("forward.local.end")
		e.Reason = "target refused: " + err.Error()
		c.audit(ctx, e)
		rejectLike(nc, err)
		return
	}
	c.plugSniffed(ctx, st, nc, upCh, upReqs, m)
}

// plugSniffed accepts a direct-tcpip channel whose twin is open upstream
// and relays the two once forward_local's per-stream rules accept what the
// first bytes say the stream carries (internal/sniff); a refused stream is
// closed before any of the client's bytes reach the target. Each decision
// is a "forward.stream" event; the end event carries the protocol too.
func (c *conn) plugSniffed(ctx context.Context, st *session.Stacked, nc ssh.NewChannel, twin ssh.Channel, twinReqs <-chan *ssh.Request, m directTCPIP) {
	ch, ok := c.acceptTwin(nc, twin, twinReqs)
	if !ok {
		return
	}
	var v policy.Verdict // the stream's decision, once made
	s := &sniffer{wait: sniffWait, decide: func(r sniff.Result) bool {
		// Every stream decision is audited, refusals too: each cost
		// the target a connection, unlike the refusals auditRefusal
		// thins out.
		v = c.grant.Policy.ForwardStream(m.Host, m.Port, r)
		e := st.AuditEvent("forward.stream")
		e.Verdict, e.Rule, e.Reason = audit.Reject, v.Rule, v.Reason
		if v.Accept {
			e.Verdict = audit.Accept
		}
		e.Detail = streamDetail(r)
		e.Detail["host"], e.Detail["port"] = m.Host, m.Port
		c.audit(ctx, e)
		return v.Accept
	}}
	r, accepted, in, out := s.pipe(c.act.channel(ch), twin)
	e := st.AuditEvent("forward.local.end")
	e.Detail = streamDetail(r)
	e.Detail["bytes_in"], e.Detail["bytes_out"] = in, out
	if !accepted {
		// The end of a refused stream carries the refusal, not the
		// forward_local acceptance that opened the channel, so that a
		// reader of the end event alone sees why the stream stopped.
		e.Verdict, e.Rule, e.Reason = audit.Reject, v.Rule, "stream refused"
		if v.Reason != "" {
			e.Reason += ": " + v.Reason
		}
	}
	c.audit(ctx, e)
}

// streamDetail is what the audit says about a stream's first bytes.
func streamDetail(r sniff.Result) map[string]any {
	d := map[string]any{"protocol": string(r.Protocol)}
	add := func(k, v string) {
		if v != "" {
			d[k] = v
		}
	}
	add("sni", r.SNI)
	add("http_host", r.Host)
	add("http_method", r.Method)
	add("pg_user", r.User)
	add("pg_database", r.Database)
	add("malformed", r.Malformed)
	add("partial", string(r.Partial))
	if r.Encrypted {
		d["encrypted"] = true
	}
	return d
}

// acceptTwin accepts the client's side of a channel whose twin is open
// upstream and discards both sides' channel requests. If the accept fails
// the twin is closed and false returned.
func (c *conn) acceptTwin(nc ssh.NewChannel, twin ssh.Channel, twinReqs <-chan *ssh.Request) (ssh.Channel, bool) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		twin.Close()
		go ssh.DiscardRequests(twinReqs)
		return nil, false
	}
	c.wg.Go(func() { ssh.DiscardRequests(reqs) })
	c.wg.Go(func() { ssh.DiscardRequests(twinReqs) })
	return ch, true
}

// plug accepts the client's side of a channel whose twin is open upstream
// and relays the two until both ends are done.
func (c *conn) plug(ctx context.Context, st *session.Stacked, endType string, nc ssh.NewChannel, twin ssh.Channel, twinReqs <-chan *ssh.Request) {
	ch, ok := c.acceptTwin(nc, twin, twinReqs)
	if !ok {
		return
	}
	in, out := c.p.pipe(c.act.channel(ch), twin)
	e := st.AuditEvent(endType)
	e.Detail = map[string]any{"bytes_in": in, "bytes_out": out}
	c.audit(ctx, e)
}

// globalRequest decides one of the client's connection-level requests.
// They are answered in order, as RFC 4254 §4 requires: the client matches
// each reply to its oldest unanswered request.
func (c *conn) globalRequest(ctx context.Context, req *ssh.Request) {
	switch req.Type {
	case "tcpip-forward", "cancel-tcpip-forward":
		c.remoteForward(ctx, req)
	case reqNoMoreSessions:
		// serve has honoured it; sshd answers success.
		if req.WantReply {
			_ = req.Reply(true, nil)
		}
	default:
		// keepalive@openssh.com is answered false, which OpenSSH takes
		// as alive.
		if req.WantReply {
			_ = req.Reply(false, nil)
		}
	}
}

// remoteForward handles ssh -R: decided by forward_remote, then asked of the
// target, whose answer (with the port it bound) goes back to the client.
func (c *conn) remoteForward(ctx context.Context, req *ssh.Request) {
	st := c.st.Stack("tcpip-forward", -1)
	m, err := parseTCPIPForward(req.Payload)
	if err != nil {
		e := st.AuditEvent("forward.remote")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "protocol", req.Type+": "+err.Error()
		c.auditRefusal(ctx, e)
		_ = req.Reply(false, nil)
		return
	}
	if req.Type == "tcpip-forward" && !c.decide(ctx, st, "forward.remote", c.stepUp.Decide(c.grant.Policy.ForwardRemote(c.restr), policy.KindForwardRemote), map[string]any{"host": m.Host, "port": m.Port}) {
		_ = req.Reply(false, nil)
		return
	}
	ok, payload, err := c.up.SendRequest(req.Type, true, req.Payload)
	if err != nil {
		ok = false
	}
	if ok && req.Type == "tcpip-forward" {
		c.remoteForwards.Add(1)
		c.forwarded.Store(true)
	}
	if ok && req.Type == "cancel-tcpip-forward" {
		c.remoteForwards.Add(-1)
	}
	_ = req.Reply(ok, payload)
}

// upstreamChannel relays a channel the target opens towards the client:
// forwarded-tcpip for an accepted ssh -R, agent and X11 channels once the
// client's request for them was accepted. Everything else is refused. It
// does not wait for the client.
func (c *conn) upstreamChannel(ctx context.Context, nc ssh.NewChannel) {
	typ := nc.ChannelType()
	var allowed bool
	switch typ {
	case "forwarded-tcpip":
		allowed = c.remoteForwards.Load() > 0
	case "auth-agent@openssh.com":
		allowed = c.agent.Load()
	case "x11":
		allowed = c.x11.Load()
	}
	st := c.st.Stack(typ, c.next(typ))
	if !allowed {
		e := st.AuditEvent("channel.upstream")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "channel types", "target opened an unrequested channel"
		c.auditRefusal(ctx, e)
		_ = nc.Reject(ssh.Prohibited, "prohibited")
		return
	}
	c.wg.Go(func() {
		ch, reqs, err := c.sconn.OpenChannel(typ, nc.ExtraData())
		if err != nil {
			rejectLike(nc, err)
			return
		}
		e := st.AuditEvent("channel.upstream")
		e.Verdict, e.Rule = audit.Accept, "channel types"
		e.Detail = map[string]any{"channel": typ}
		c.audit(ctx, e)
		c.plug(ctx, st, "channel.upstream.end", nc, ch, reqs)
	})
}
