package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/sluice-ssh/sluice/internal/config"
)

// proxyHeaderTimeout bounds the wait for a PROXY protocol header, as
// go-proxyproto's DefaultReadHeaderTimeout does.
const proxyHeaderTimeout = 10 * time.Second

// listen opens a service's listener. With proxy_protocol.trusted set, every
// connection must come from a trusted network (others are closed at once)
// and must start with a PROXY protocol v1 or v2 header, whose source
// address then stands for the client everywhere: zones, limits, audit.
func listen(sc *config.Service) (net.Listener, error) {
	l, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: services[%s]: listen: %w", sc.Name, err)
	}
	if len(sc.ProxyProtocol.Trusted) == 0 {
		return l, nil
	}
	return proxyListener(l, sc.ProxyProtocol.Trusted, proxyHeaderTimeout), nil
}

// proxyListener wraps l for the PROXY protocol from the trusted networks.
func proxyListener(l net.Listener, trusted []netip.Prefix, timeout time.Duration) net.Listener {
	return proxyAddrListener{&proxyproto.Listener{
		Listener:          l,
		ReadHeaderTimeout: timeout,
		Policy: func(upstream net.Addr) (proxyproto.Policy, error) {
			ap, err := netip.ParseAddrPort(upstream.String())
			if err == nil {
				for _, p := range trusted {
					if p.Contains(ap.Addr().Unmap()) {
						return proxyproto.REQUIRE, nil
					}
				}
			}
			// go-proxyproto closes the connection and keeps accepting.
			return proxyproto.REJECT, proxyproto.ErrInvalidUpstream
		},
	}}
}

// proxyAddrListener returns connections whose RemoteAddr is the PROXY
// header's source, or an address in no zone (so that the service refuses
// the connection) when the header is missing, malformed or a LOCAL command:
// go-proxyproto would fall back to the proxy's own address.
type proxyAddrListener struct{ *proxyproto.Listener }

func (l proxyAddrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		return proxiedConn{pc}, nil
	}
	return c, nil
}

type proxiedConn struct{ *proxyproto.Conn }

// RemoteAddr blocks until the header is read (at most the header timeout).
func (c proxiedConn) RemoteAddr() net.Addr {
	h := c.ProxyHeader()
	if h == nil || !h.Command.IsProxy() || h.SourceAddr == nil {
		// In no zone: the zone tree holds IP addresses only.
		return &net.UnixAddr{Name: "proxy-protocol-header-missing", Net: "unix"}
	}
	return h.SourceAddr
}
