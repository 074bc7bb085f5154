package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// v2Header hand-writes a PROXY protocol v2 PROXY TCP4 header (the spec's
// section 2.2): signature, version/command 0x21, family 0x11, length 12,
// source and destination addresses and ports.
func v2Header(src, dst netip.AddrPort) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n")
	h = append(h, 0x21, 0x11, 0, 12)
	s, d := src.Addr().As4(), dst.Addr().As4()
	h = append(h, s[:]...)
	h = append(h, d[:]...)
	h = binary.BigEndian.AppendUint16(h, src.Port())
	return binary.BigEndian.AppendUint16(h, dst.Port())
}

func TestProxyProtocol(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		header  []byte
		want    string // RemoteAddr seen by the service; "" = connection refused
	}{
		{"v1", loopback, []byte("PROXY TCP4 198.51.100.7 127.0.0.1 40000 2222\r\n"), "198.51.100.7:40000"},
		{"v2", loopback, v2Header(netip.MustParseAddrPort("203.0.113.9:50123"), netip.MustParseAddrPort("127.0.0.1:2222")), "203.0.113.9:50123"},
		{"missing header", loopback, []byte("SSH-2.0-OpenSSH_9.6\r\n"), "unix"},
		{"v2 LOCAL", loopback, append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20, 0x00, 0, 0), "unix"},
		{"untrusted peer", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, []byte("PROXY TCP4 198.51.100.7 127.0.0.1 40000 2222\r\n"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := proxyListener(raw, tt.trusted, 2*time.Second)
			defer l.Close()
			type accepted struct {
				addr net.Addr
				err  error
			}
			got := make(chan accepted, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					got <- accepted{err: err}
					return
				}
				defer c.Close()
				got <- accepted{addr: c.RemoteAddr()}
			}()
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tt.header); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				// Closed unread, the header may make the kernel answer with a
				// reset rather than a FIN: either way nothing was said.
				if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("untrusted peer: got %d bytes, %v; want the connection closed (EOF or reset)", n, err)
				}
				l.Close()
				if a := <-got; a.err == nil {
					t.Fatalf("untrusted peer: got a connection from %v, want none", a.addr)
				}
				return
			}
			a := <-got
			if a.err != nil {
				t.Fatalf("accept: %v", a.err)
			}
			if s := a.addr.String(); s != tt.want && a.addr.Network() != tt.want {
				t.Fatalf("got remote address %s (%s), want %s", s, a.addr.Network(), tt.want)
			}
		})
	}
}
