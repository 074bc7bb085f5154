package sshproxy

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// upstream is an authenticated connection to a target. It outlives the
// client connection that dialled it when the service reuses upstream
// connections (Params.Reuse). At any time one goroutine serves the
// target's side of it (serve): the owning client connection's
// watchUpstream, the pool's while it is idle, or its last owner's once it
// is shut.
type upstream struct {
	ssh.Conn
	// chans and reqs are the target's channel opens and global requests;
	// only the goroutine serving the connection touches them, and sets
	// each to nil once x/crypto has closed it.
	chans         <-chan ssh.NewChannel
	reqs          <-chan *ssh.Request
	target        string
	remote, local netip.AddrPort
	dialled       time.Time
	// done is closed once serve has seen the connection end; err is then
	// why.
	done chan struct{}
	err  error
	// uses counts the client connections served, the current one included.
	// Only the owner touches it.
	uses int
	// cert is the certificate the connection logged in with, or nil; a
	// reuse names it in its audit.
	cert *ssh.Certificate
}

// newUpstream wraps a connection just logged in to.
func newUpstream(uc ssh.Conn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, target string, remote, local netip.AddrPort, cert *ssh.Certificate) *upstream {
	return &upstream{Conn: uc, chans: chans, reqs: reqs, target: target, remote: remote, local: local, dialled: time.Now(), done: make(chan struct{}), uses: 1, cert: cert}
}

// serve serves the target's side of the connection until stop is closed
// (it returns false) or the connection has ended (it returns true, with
// u.done closed): it refuses the target's global requests and hands its
// channel opens to open, or refuses them when open is nil. x/crypto stalls
// the whole connection when either goes unread, so the connection must be
// served from the moment it is dialled until it ends.
func (u *upstream) serve(stop <-chan struct{}, open func(ssh.NewChannel)) (ended bool) {
	if !u.alive() {
		return true
	}
	for u.chans != nil || u.reqs != nil {
		select {
		case req, ok := <-u.reqs:
			if !ok {
				u.reqs = nil
				continue
			}
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		case nc, ok := <-u.chans:
			if !ok {
				u.chans = nil
				continue
			}
			if open == nil {
				_ = nc.Reject(ssh.Prohibited, "prohibited")
				continue
			}
			open(nc)
		case <-stop:
			return false
		}
	}
	u.err = u.Wait()
	close(u.done)
	return true
}

// shut closes the connection and serves it until it has ended: what the
// goroutine serving it does when nothing is to serve it any more.
func (u *upstream) shut() {
	u.Close()
	u.serve(nil, nil)
}

// alive reports whether the connection has not ended.
func (u *upstream) alive() bool {
	select {
	case <-u.done:
		return false
	default:
		return true
	}
}

// ping checks with a keepalive request that the target still answers
// within d: an idle connection may have died silently.
func (u *upstream) ping(d time.Duration) bool {
	answered := make(chan bool, 1)
	go func() {
		_, _, err := u.SendRequest("keepalive@openssh.com", true, nil)
		answered <- err == nil
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ok := <-answered:
		return ok
	case <-t.C:
		return false
	case <-u.done:
		return false
	}
}

// Limits of the idle upstream connections a service keeps (the limit per
// key is the service's Upstream.ReuseIdle).
const (
	reuseMax = 256
	// reusePing bounds the liveness check of an idle connection.
	reusePing = 2 * time.Second
)

// reuseKey is what an upstream connection may be reused for: never another
// gateway user, another login name on the target, or another route; and
// when it logged in with a certificate, never a connection its
// certificate's extensions (grants) do not fit.
type reuseKey struct {
	user, upstreamUser, route, grants string
}

// idleUpstream is an upstream connection in the pool.
type idleUpstream struct {
	u     *upstream
	timer *time.Timer
	stop  chan struct{} // ends the goroutine serving u while idle
	gone  chan struct{} // closed when that goroutine has returned
}

// upstreamPool keeps upstream connections whose client left cleanly, for
// the next connection with the same key, each for at most ttl. A pooled
// connection belongs to one client connection at a time.
type upstreamPool struct {
	ttl    time.Duration
	perKey int // the most idle connections per key
	mu     sync.Mutex
	idle   map[reuseKey][]*idleUpstream
	n      int
	closed bool
}

func newUpstreamPool(ttl time.Duration, perKey int) *upstreamPool {
	return &upstreamPool{ttl: ttl, perKey: perKey, idle: make(map[reuseKey][]*idleUpstream)}
}

// put keeps u for k. It returns false, and the caller closes u, when the
// pool is closed or full.
func (p *upstreamPool) put(k reuseKey, u *upstream) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.n >= reuseMax || len(p.idle[k]) >= p.perKey || !u.alive() {
		return false
	}
	iu := &idleUpstream{u: u, stop: make(chan struct{}), gone: make(chan struct{})}
	p.idle[k] = append(p.idle[k], iu)
	p.n++
	iu.timer = time.AfterFunc(p.ttl, func() {
		if p.remove(k, iu) {
			u.Close()
		}
	})
	// While idle, nobody may open a channel through the connection: the
	// target's channel opens are refused, and its end takes it out.
	go func() {
		defer close(iu.gone)
		if u.serve(iu.stop, nil) {
			p.remove(k, iu)
		}
	}()
	return true
}

// remove takes iu out of the pool; it reports whether iu was in it.
func (p *upstreamPool) remove(k reuseKey, iu *idleUpstream) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[k]
	for i, x := range l {
		if x == iu {
			p.idle[k] = append(l[:i], l[i+1:]...)
			if len(p.idle[k]) == 0 {
				delete(p.idle, k)
			}
			p.n--
			return true
		}
	}
	return false
}

// get hands out the most recently kept live connection for k, or nil.
func (p *upstreamPool) get(k reuseKey) *upstream {
	for {
		p.mu.Lock()
		l := p.idle[k]
		if len(l) == 0 {
			p.mu.Unlock()
			return nil
		}
		iu := l[len(l)-1]
		p.mu.Unlock()
		if !p.remove(k, iu) {
			continue // its timer or its end took it meanwhile
		}
		iu.timer.Stop()
		close(iu.stop)
		<-iu.gone
		if iu.u.alive() && iu.u.ping(reusePing) {
			iu.u.uses++
			return iu.u
		}
		iu.u.shut()
	}
}

// close closes every idle connection, and makes put refuse from now on.
func (p *upstreamPool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*idleUpstream
	for _, l := range p.idle {
		all = append(all, l...)
	}
	p.mu.Unlock()
	for _, iu := range all {
		iu.u.Close()
		<-iu.gone
	}
}
