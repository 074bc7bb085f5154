package session

import (
	"context"
	"io"
	"strconv"
	"sync"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// Session is a master or a stacked session. It is implemented only by
// *Master and *Stacked.
type Session interface {
	// ID returns the session id, e.g. "gw1/ssh-in:42/ssh/session:0".
	ID() string
	// Owner returns the session this one is stacked in, nil for a master.
	Owner() Session
	// Master returns the master session at the top of the owner chain.
	Master() *Master
	// Context is cancelled when the session ends; context.Cause says why.
	Context() context.Context
	// End ends the session with cause (nil means ErrClosed); the first
	// cause wins. It cancels the context, closes what the session holds and,
	// through context propagation, ends every session stacked on it.
	End(cause error)
	// Hold makes the session close c when it ends. If it has already ended,
	// c is closed at once.
	Hold(c io.Closer)
	// Destroy is the owner's last call: it ends the session (ErrClosed
	// unless it already ended), closes what it holds, and waits until that
	// is done. For a master it then reports the end to OnEnd, once.
	Destroy()
	// Stack creates a session for proxy stacked in this one; n >= 0 numbers
	// it (the Nth channel of its kind), n < 0 leaves it unnumbered.
	Stack(proxy string, n int) *Stacked
	// AuditEvent returns an audit event of type typ filled from the session.
	AuditEvent(typ string) audit.Event

	base() *core
}

var (
	_ Session = (*Master)(nil)
	_ Session = (*Stacked)(nil)
)

// core is what every session has: an id, an owner, a lifetime and its own
// attributes.
type core struct {
	id     string
	owner  Session
	ctx    context.Context
	cancel context.CancelCauseFunc
	// stopAfter unregisters the context.AfterFunc that ends the session
	// when its context is cancelled from above; afterDone is closed when
	// that function has run.
	stopAfter func() bool
	afterDone chan struct{}

	// mu guards the fields below. Lock order: a session's mu is never held
	// while another session's mu is taken, nor while closers, OnEnd or the
	// clock run.
	mu      sync.Mutex
	ended   bool
	vals    map[*keyID]any
	closers []io.Closer
}

// init sets c up with a context derived from parent. It must be called on
// the core inside its final (heap) location.
func (c *core) init(parent context.Context, id string, owner Session) {
	c.id = id
	c.owner = owner
	c.ctx, c.cancel = context.WithCancelCause(parent)
	c.afterDone = make(chan struct{})
	c.stopAfter = context.AfterFunc(c.ctx, func() {
		defer close(c.afterDone)
		c.end(context.Cause(c.ctx))
	})
}

func (c *core) base() *core { return c }

// ID returns the session id.
func (c *core) ID() string { return c.id }

// Context returns the session's context; it is done when the session ends.
func (c *core) Context() context.Context { return c.ctx }

// End ends the session with cause; see Session.End.
func (c *core) End(cause error) { c.end(cause) }

func (c *core) end(cause error) {
	if cause == nil {
		cause = ErrClosed
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.cancel(cause)
	closers := c.closers
	c.closers = nil
	c.mu.Unlock()
	for _, cl := range closers {
		// The session is over; a failing Close has nobody to tell.
		_ = cl.Close()
	}
}

// Hold makes the session close cl when it ends; see Session.Hold.
func (c *core) Hold(cl io.Closer) {
	c.mu.Lock()
	if !c.ended {
		c.closers = append(c.closers, cl)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = cl.Close()
}

// destroy ends the session and waits until its closers have been closed.
func (c *core) destroy() {
	c.end(ErrClosed)
	if !c.stopAfter() {
		<-c.afterDone
	}
}

func (c *core) get(k *keyID) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vals[k]
	return v, ok
}

func (c *core) set(k *keyID, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vals == nil {
		c.vals = make(map[*keyID]any)
	}
	c.vals[k] = v
}

// Stacked is a session of a proxy stacked inside another session. It holds
// its proxy name, channel number and own attributes; everything else it reads
// from its owner chain. It is safe for concurrent use.
type Stacked struct {
	core
	proxy  string
	n      int
	master *Master
}

func newStacked(owner Session, proxy string, n int) *Stacked {
	id := owner.ID() + "/" + proxy
	if n >= 0 {
		id += ":" + strconv.Itoa(n)
	} else {
		n = -1
	}
	s := &Stacked{proxy: proxy, n: n, master: owner.Master()}
	s.init(owner.Context(), id, owner)
	return s
}

// Proxy returns the name of the proxy this session belongs to.
func (s *Stacked) Proxy() string { return s.proxy }

// Channel returns the session's number, or -1 when it is unnumbered.
func (s *Stacked) Channel() int { return s.n }

// Owner returns the session s is stacked in.
func (s *Stacked) Owner() Session { return s.owner }

// Master returns the master session at the top of the chain.
func (s *Stacked) Master() *Master { return s.master }

// Stack creates a session stacked in s.
func (s *Stacked) Stack(proxy string, n int) *Stacked { return newStacked(s, proxy, n) }

// Destroy ends s and waits for what it holds to be closed.
func (s *Stacked) Destroy() { s.destroy() }

// AuditEvent returns the master's audit event with s's session id.
func (s *Stacked) AuditEvent(typ string) audit.Event {
	e := s.master.AuditEvent(typ)
	e.SessionID = s.id
	return e
}
