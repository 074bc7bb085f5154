package sshproxy

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
)

// activity is when channel data last moved, in either direction, on any
// channel of a connection. Only channel data counts: keepalives and other
// global or channel requests do not, as with OpenSSH's ChannelTimeout.
type activity struct {
	start time.Time
	last  atomic.Int64 // nanoseconds since start (monotonic)
}

func newActivity() *activity { return &activity{start: time.Now()} }

func (a *activity) touch() { a.last.Store(int64(time.Since(a.start))) }

// idleFor returns how long no channel data has moved.
func (a *activity) idleFor() time.Duration {
	return time.Since(a.start) - time.Duration(a.last.Load())
}

// channel wraps ch so that its data, stdout and stderr, counts as activity.
func (a *activity) channel(ch ssh.Channel) ssh.Channel { return activeChannel{ch, a} }

type activeChannel struct {
	ssh.Channel
	a *activity
}

func (c activeChannel) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	if n > 0 {
		c.a.touch()
	}
	return n, err
}

// WriteTo keeps the channel's io.WriterTo (see copyStream).
func (c activeChannel) WriteTo(w io.Writer) (int64, error) {
	return copyStream(activeWriter{w, c.a}, c.Channel)
}

func (c activeChannel) Write(p []byte) (int, error) {
	return activeWriter{c.Channel, c.a}.Write(p)
}

func (c activeChannel) Stderr() io.ReadWriter { return activeRW{c.Channel.Stderr(), c.a} }

type activeRW struct {
	io.ReadWriter
	a *activity
}

func (c activeRW) Read(p []byte) (int, error) {
	n, err := c.ReadWriter.Read(p)
	if n > 0 {
		c.a.touch()
	}
	return n, err
}

// WriteTo keeps the stream's io.WriterTo (see copyStream).
func (c activeRW) WriteTo(w io.Writer) (int64, error) {
	return copyStream(activeWriter{w, c.a}, c.ReadWriter)
}

func (c activeRW) Write(p []byte) (int, error) {
	return activeWriter{c.ReadWriter, c.a}.Write(p)
}

// activeWriter counts what is written to w as activity.
type activeWriter struct {
	w io.Writer
	a *activity
}

func (c activeWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.a.touch()
	}
	return n, err
}

// watchIdle ends the connection when no channel data has moved for
// timeout: it records session.ErrIdle as the cause, audits an "idle" event
// and closes both legs. It runs from a timer, not a goroutine of its own.
// Once the returned stop has returned, the connection is not ended for
// idleness, and an ending that had begun has finished.
func (c *conn) watchIdle(ctx context.Context, timeout time.Duration, end context.CancelCauseFunc) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(timeout, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		idle := c.act.idleFor()
		if idle < timeout {
			t.Reset(timeout - idle)
			return
		}
		cause := fmt.Errorf("%w: no channel data for %s", session.ErrIdle, idle.Round(time.Second))
		c.mu.Lock()
		if c.cause == nil {
			c.cause = cause
		}
		c.mu.Unlock()
		e := c.m.AuditEvent("idle")
		e.Verdict, e.Rule, e.Reason = audit.Reject, "services["+c.p.p.Service+"].idle_timeout", cause.Error()
		c.audit(ctx, e)
		c.log.InfoContext(ctx, "ending idle connection", "idle", idle)
		end(cause)
		c.m.End(cause)
		c.sconn.Close()
		if c.up != nil { // nil on a connection that serves jumps only
			c.up.Close()
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
