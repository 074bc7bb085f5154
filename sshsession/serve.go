package sshsession

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// channelTypeSession is the channel type this package serves (RFC 4254 §6.1).
const channelTypeSession = "session"

// Serve accepts nc, a "session" channel of conn, and serves it with h until
// the channel closes. conn may be nil (the Session then reports no
// addresses, user or permissions).
//
// Serve uses the calling goroutine to run h.HandleRequest, one goroutine
// to service x/crypto's request channel (which must never stall: x/crypto
// hangs the whole connection otherwise), and one goroutine for h.Serve
// once a program has started. It returns when all of them have exited.
//
// When ctx is cancelled the channel is closed; Serve then returns once the
// client acknowledges the close or the connection ends, and once h.Serve
// has returned (it should watch s.Context()). Serve returns nil when the
// channel ended normally (the client closed it or the program exited), the
// cause otherwise: the cause of ctx, or ErrTooManyRequests.
func Serve(ctx context.Context, conn *ssh.ServerConn, nc ssh.NewChannel, h Handler, cfg *Config) error {
	if nc.ChannelType() != channelTypeSession {
		nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		return fmt.Errorf("sshsession: channel type %q is not %q", nc.ChannelType(), channelTypeSession)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return fmt.Errorf("sshsession: accept channel: %w", err)
	}
	d := &dispatcher{
		s:            newSession(ctx, conn, ch),
		h:            h,
		acceptEnv:    cfg.AcceptEnv,
		lim:          cfg.Limits.withDefaults(),
		closeTimeout: cfg.CloseTimeout,
	}
	if d.closeTimeout <= 0 {
		d.closeTimeout = DefaultCloseTimeout
	}
	queue := make(chan *ssh.Request, d.lim.MaxPending)
	d.wg.Go(func() { d.pump(reqs, queue) })
	d.run(queue)
	d.wg.Wait()
	d.s.end(ErrChannelClosed)
	cause := context.Cause(d.s.ctx)
	if errors.Is(cause, ErrChannelClosed) || errors.Is(cause, ErrProgramExited) {
		return nil
	}
	return cause
}

// dispatcher runs the requests of one session channel.
type dispatcher struct {
	s            *Session
	h            Handler
	acceptEnv    func(name, value string) bool
	lim          Limits
	closeTimeout time.Duration
	wg           sync.WaitGroup // the pump and the Handler's Serve
}

// pump services x/crypto's request channel until it is closed (the channel
// closed), queueing requests for run. Past MaxPending queued requests the
// client is flooding a busy handler: the channel is closed.
func (d *dispatcher) pump(reqs <-chan *ssh.Request, queue chan<- *ssh.Request) {
	defer close(queue)
	overflow := false
	for r := range reqs {
		if !overflow {
			select {
			case queue <- r:
				continue
			default:
				overflow = true
				d.s.end(ErrTooManyRequests)
				d.s.ch.Close()
			}
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
	d.s.end(ErrChannelClosed)
}

// run answers queued requests in order until the queue is closed, and
// closes the channel when the session's context ends.
func (d *dispatcher) run(queue <-chan *ssh.Request) {
	done := d.s.ctx.Done()
	for {
		select {
		case r, ok := <-queue:
			if !ok {
				return
			}
			ok, start := d.handle(r)
			switch {
			case r.WantReply:
				r.Reply(ok, nil) // fails only once the channel is closed
			case !ok && d.programRefused(r.Type):
				// The client asked for no answer: it would wait for a
				// program that never starts, and is told by the close.
				d.s.ch.Close()
			}
			if start {
				// Only after the reply: a Serve that returns at once
				// closes the channel, and x/crypto drops a reply sent
				// after that, so the client would see its shell or exec
				// request fail with EOF instead of succeed.
				d.wg.Go(func() {
					d.h.Serve(d.s)
					d.s.finish(d.closeTimeout)
				})
			}
		case <-done:
			d.s.ch.Close()
			done = nil
		}
	}
}

// handle parses r, applies the library's checks and asks the Handler. It
// reports whether r was accepted, and whether it started the program: the
// caller then runs the Handler's Serve once r is answered.
func (d *dispatcher) handle(raw *ssh.Request) (ok, start bool) {
	if d.s.ctx.Err() != nil {
		return false, false
	}
	r, err := ParseRequest(raw.Type, raw.Payload, d.lim)
	var unknown *UnknownRequestError
	if errors.As(err, &unknown) {
		r, err = &OtherRequest{Name: raw.Type, Payload: raw.Payload}, nil
	}
	if err != nil || !d.admit(r) {
		return false, false
	}
	if d.h.HandleRequest(d.s, r) != nil {
		return false, false
	}
	s := d.s
	s.mu.Lock()
	switch r := r.(type) {
	case *PtyRequest:
		s.pty = r
		s.window = WindowChange{Columns: r.Columns, Rows: r.Rows, WidthPixels: r.WidthPixels, HeightPixels: r.HeightPixels}
	case *EnvRequest:
		s.env = append(s.env, *r)
	case *WindowChange:
		s.window = *r
	case *ShellRequest, *ExecRequest, *SubsystemRequest:
		s.program = r
		start = true
	}
	s.mu.Unlock()
	return true, start
}

// programRefused reports whether a refused request of type typ was the
// channel's shell, exec or subsystem request, with no program running.
func (d *dispatcher) programRefused(typ string) bool {
	switch typ {
	case "shell", "exec", "subsystem":
	default:
		return false
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.s.program == nil
}

// admit applies the checks the library makes before the Handler sees r.
func (d *dispatcher) admit(r Request) bool {
	s := d.s
	s.mu.Lock()
	started, hasPty := s.program != nil, s.pty != nil
	s.mu.Unlock()
	switch r := r.(type) {
	case *PtyRequest:
		return !started && !hasPty
	case *EnvRequest:
		return !started && d.acceptEnv != nil && d.acceptEnv(r.Name, r.Value)
	case *ShellRequest, *ExecRequest, *SubsystemRequest:
		return !started
	case *WindowChange:
		return hasPty && r.Columns != 0 && r.Rows != 0
	}
	return true
}

// ServeConn serves every "session" channel of conn with a Handler from
// newHandler (a nil Handler refuses the channel), rejects other channel
// types with ssh.UnknownChannelType and answers every global request
// false. It returns when chans is closed (the connection ended) and every
// channel has been served.
//
// When ctx is cancelled ServeConn closes conn (when not nil) and returns
// the cause of ctx once everything has ended; otherwise it returns nil.
func ServeConn(ctx context.Context, conn *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, newHandler func(*ssh.ServerConn) Handler, cfg *Config) error {
	var wg sync.WaitGroup
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	done := ctx.Done()
	cancelled := false
	for {
		select {
		case nc, ok := <-chans:
			if !ok {
				wg.Wait()
				if cancelled {
					return context.Cause(ctx)
				}
				return nil
			}
			if cancelled {
				nc.Reject(ssh.ConnectionFailed, "shutting down")
				continue
			}
			if nc.ChannelType() != channelTypeSession {
				nc.Reject(ssh.UnknownChannelType, "unknown channel type")
				continue
			}
			h := newHandler(conn)
			if h == nil {
				nc.Reject(ssh.Prohibited, "session refused")
				continue
			}
			wg.Go(func() { Serve(ctx, conn, nc, h, cfg) })
		case <-done:
			cancelled = true
			done = nil
			if conn != nil {
				conn.Close()
			}
		}
	}
}
