package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/thin"
)

// proxyHeaderTimeout bounds the wait for a PROXY protocol header, as
// go-proxyproto's DefaultReadHeaderTimeout does.
const proxyHeaderTimeout = 10 * time.Second

// proxyHeaderBuffer is the read buffer for a PROXY header: a v1 header is
// at most 107 bytes and must fit (go-proxyproto's NewConn uses 256).
const proxyHeaderBuffer = 256

// listen opens a service's listener, with IP_TRANSPARENT for
// router.tproxy. With proxy_protocol.trusted set it is a proxyListener
// whose refusals are audited (see proxyRefusals).
func (g *Gateway) listen(sc *config.Service) (net.Listener, error) {
	var lc net.ListenConfig
	if sc.Router.TProxy {
		lc.Control = listenTransparent
	}
	l, err := lc.Listen(context.Background(), "tcp", sc.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: services[%s]: listen %s: %w%s", sc.Name, sc.Listen, err, listenHint(err))
	}
	if len(sc.ProxyProtocol.Trusted) == 0 {
		return l, nil
	}
	r := &proxyRefusals{g: g, service: sc.Name, counts: thin.Counter[netip.Addr, struct{}]{Keys: proxyRefusalSources, Window: proxyRefusalWindow}}
	return newProxyListener(l, sc.ProxyProtocol.Trusted, proxyHeaderTimeout, r.refused), nil
}

// listenHint says what an operator can do about a failed listen, for the
// two causes that are not typos.
func listenHint(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return " (another process listens there: stop it or pick another address)"
	case errors.Is(err, syscall.EACCES):
		return " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return ""
}

// proxyListener is a listener for the PROXY protocol v1 and v2. Accept
// returns only connections from a trusted network that began with a PROXY
// header (read within the header timeout); their RemoteAddr is the header's
// source, which then stands for the client everywhere (zones, limits,
// audit), and their LocalAddr its destination. Every other connection is
// reported to refused with the peer's address, then closed unanswered: one
// from outside the trusted networks at once, one whose header is missing,
// malformed, without a client address (a LOCAL command, as a load
// balancer's health check sends, or v1 UNKNOWN) or for another protocol
// than TCP once it has been read. A v2 LOCAL header is a trusted load
// balancer's health check (HAProxy's check-send-proxy): it is closed
// without a report, so that checks every few seconds leave no audit trail.
//
// Each header is read in its own goroutine, so that a slow peer does not
// hold up the others; the listener owns those goroutines and its accept
// loop, and Close ends them and waits for them.
type proxyListener struct {
	l       net.Listener
	trusted []netip.Prefix
	timeout time.Duration
	refused func(peer netip.AddrPort, untrusted bool, reason string)

	ready     chan accepted // to Accept; unbuffered
	ctx       context.Context
	cancel    context.CancelFunc // called by Close
	wg        sync.WaitGroup     // the accept loop and the header reads
	closeOnce sync.Once
	closeErr  error
}

// accepted is a connection ready for Accept, or the error Accept returns.
type accepted struct {
	c   net.Conn
	err error
}

func newProxyListener(l net.Listener, trusted []netip.Prefix, timeout time.Duration, refused func(peer netip.AddrPort, untrusted bool, reason string)) *proxyListener {
	pl := &proxyListener{l: l, trusted: trusted, timeout: timeout, refused: refused, ready: make(chan accepted)}
	pl.ctx, pl.cancel = context.WithCancel(context.Background())
	pl.wg.Go(pl.acceptLoop)
	return pl
}

// Accept returns the next connection with a valid PROXY header.
func (l *proxyListener) Accept() (net.Conn, error) {
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close closes the listener and the connections whose header is still
// being read, and waits for its goroutines.
func (l *proxyListener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.closeErr = l.l.Close()
		l.wg.Wait()
	})
	return l.closeErr
}

func (l *proxyListener) Addr() net.Addr { return l.l.Addr() }

// acceptLoop accepts until the listener fails; a temporary error is passed
// to Accept (whose caller backs off) and accepting goes on.
func (l *proxyListener) acceptLoop() {
	for {
		c, err := l.l.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if !l.deliver(accepted{err: err}) || !errors.As(err, &te) || !te.Temporary() {
				return
			}
			continue
		}
		peer := addrPortOf(c.RemoteAddr())
		if !l.isTrusted(peer.Addr()) {
			l.refused(peer, true, "peer not in proxy_protocol.trusted")
			c.Close()
			continue
		}
		l.wg.Go(func() { l.readHeader(c, peer) })
	}
}

// deliver hands a to Accept; it reports false when the listener is closed
// first.
func (l *proxyListener) deliver(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func (l *proxyListener) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// readHeader reads c's PROXY header and hands c to Accept, or refuses it.
func (l *proxyListener) readHeader(c net.Conn, peer netip.AddrPort) {
	stop := context.AfterFunc(l.ctx, func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	r := bufio.NewReaderSize(c, proxyHeaderBuffer)
	src, dst, reason := readProxyHeader(r, l.timeout)
	if !stop() {
		return // closed by Close
	}
	if reason != "" {
		l.refused(peer, false, reason)
		c.Close()
		return
	}
	if src == nil { // a health check
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if !l.deliver(accepted{c: proxiedConn{Conn: c, r: r, remote: src, local: dst}}) {
		c.Close()
	}
}

// readProxyHeader reads a PROXY header from r and returns the client's and
// the gateway's addresses, or why the connection is refused; for a v2
// LOCAL header (a health check) all three are empty.
func readProxyHeader(r *bufio.Reader, timeout time.Duration) (src, dst *net.TCPAddr, reason string) {
	h, err := proxyproto.Read(r)
	switch {
	case err != nil:
		return nil, nil, headerError(err, timeout)
	case h.Version == 2 && h.Command.IsLocal():
		return nil, nil, ""
	case !h.Command.IsProxy():
		// go-proxyproto reads v1 UNKNOWN as LOCAL as well.
		return nil, nil, "PROXY header without a client address (LOCAL or UNKNOWN)"
	}
	src, dst, ok := h.TCPAddrs()
	if !ok {
		return nil, nil, "PROXY header for a protocol other than TCP"
	}
	return src, dst, ""
}

// headerError says why a PROXY header could not be read.
func headerError(err error, timeout time.Duration) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no PROXY header within %v", timeout)
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		return "no PROXY header"
	}
	return "malformed PROXY header: " + err.Error()
}

// proxiedConn is a connection after its PROXY header: reads go on from the
// buffer the header was read with.
type proxiedConn struct {
	net.Conn
	r             io.Reader
	remote, local net.Addr
}

func (c proxiedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c proxiedConn) RemoteAddr() net.Addr       { return c.remote }
func (c proxiedConn) LocalAddr() net.Addr        { return c.local }

// addrPortOf converts a TCP address; it is invalid for any other.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// Audit event type and limits metric label of a peer refused by a PROXY
// protocol listener.
const (
	eventProxyProtocol = "proxy_protocol"
	limitProxyProtocol = "proxy_protocol"
)

// Sampling of refused PROXY peers (see proxyRefusals).
const (
	proxyRefusalWindow  = time.Minute
	proxyRefusalSources = 64
)

// proxyRefusals audits the peers a service's PROXY protocol listener
// refuses, as events of type "proxy_protocol" with the peer's address as
// client_addr; no session exists for them, so session_id is empty. A
// refusal costs the peer only a TCP connection, so a flood must not fill
// the audit queue: per source address the 1st, 2nd, 4th, 8th... refusal in
// a minute is audited, with the running count in detail "refused" (a
// thin.Counter, as sshproxy has for refusals on a connection), and past
// proxyRefusalSources sources in a minute further sources share one count
// (the zero Addr's). Every refusal counts in
// sluice_limits_hit_total{limit="proxy_protocol"}.
type proxyRefusals struct {
	g       *Gateway
	service string
	counts  thin.Counter[netip.Addr, struct{}] // refusals per source, in the window
}

func (r *proxyRefusals) refused(peer netip.AddrPort, untrusted bool, reason string) {
	r.g.metrics.LimitsHit.WithLabelValues(r.service, limitProxyProtocol).Inc()
	now := time.Now()
	n, kept := r.counts.Add(peer.Addr().Unmap(), struct{}{})
	if !kept {
		return
	}
	rule := "services[" + r.service + "].proxy_protocol"
	if untrusted {
		rule += ".trusted"
	}
	e := audit.Event{Time: now, Type: eventProxyProtocol, Service: r.service, Verdict: audit.Reject, Rule: rule, Reason: reason}
	if peer.IsValid() {
		e.ClientAddr = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port()).String()
	}
	if n > 1 {
		e.Detail = map[string]any{"refused": n}
	}
	_ = r.g.write(context.Background(), e)
}
