package gateway

import (
	"net"
	"net/netip"
	"testing"
)

// localConn is a net.Conn that only knows its local address.
type localConn struct {
	net.Conn
	local net.Addr
}

func (c localConn) LocalAddr() net.Addr { return c.local }

// TestInterceptedDst: a TPROXY connection's destination is its own local
// address (IPv4-mapped addresses unmapped); one that arrived at the
// listen port came straight to the gateway, whatever address it used.
func TestInterceptedDst(t *testing.T) {
	for _, c := range []struct {
		local, listen string
		want          string
		intercepted   bool
	}{
		{"10.0.0.5:22", "0.0.0.0:2222", "10.0.0.5:22", true},
		{"[::ffff:10.0.0.5]:22", "[::]:2222", "10.0.0.5:22", true},
		{"[fd00::5]:22", "[::]:2222", "[fd00::5]:22", true},
		{"10.0.0.1:2222", "0.0.0.0:2222", "10.0.0.1:2222", false},
		{"10.0.0.9:2222", "10.0.0.1:2222", "10.0.0.9:2222", false},
	} {
		dst, intercepted, err := interceptedDst(localConn{local: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.local))}, c.listen)
		if err != nil || dst.String() != c.want || intercepted != c.intercepted {
			t.Errorf("%s on %s: got %s, %v, %v, want %s, %v", c.local, c.listen, dst, intercepted, err, c.want, c.intercepted)
		}
	}
	if _, _, err := interceptedDst(localConn{local: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.5:22"))}, "no port"); err == nil {
		t.Error("a listen address without a port: got no error")
	}
}
