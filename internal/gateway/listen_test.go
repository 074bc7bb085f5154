package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
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

// refusal is what a proxyListener reported about a refused peer.
type refusal struct {
	peer      netip.AddrPort
	untrusted bool
	reason    string
}

// TestProxyProtocol: a trusted peer's v1 or v2 header gives the client's
// address; every other peer is closed unanswered and reported with its own
// address and the reason, which the gateway audits (see
// TestProxyProtocolRefusalsAudited).
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	v1 := []byte("PROXY TCP4 198.51.100.7 127.0.0.1 40000 2222\r\n")
	v2UDP := v2Header(netip.MustParseAddrPort("203.0.113.9:50123"), netip.MustParseAddrPort("127.0.0.1:2222"))
	v2UDP[13] = 0x12 // family and protocol: UDP over IPv4
	tests := []struct {
		name    string
		trusted []netip.Prefix
		header  []byte
		want    string // RemoteAddr seen by the service; "" = refused
		// untrusted and reason are what the refusal reports.
		untrusted bool
		reason    string
	}{
		{"v1", loopback, v1, "198.51.100.7:40000", false, ""},
		{"v2", loopback, v2Header(netip.MustParseAddrPort("203.0.113.9:50123"), netip.MustParseAddrPort("127.0.0.1:2222")), "203.0.113.9:50123", false, ""},
		{"missing header", loopback, []byte("SSH-2.0-OpenSSH_9.6\r\n"), "", false, "no PROXY header"},
		{"malformed v1", loopback, []byte("PROXY TCP4 198.51.100.7 nonsense\r\n"), "", false, "malformed PROXY header"},
		{"v2 LOCAL", loopback, append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20, 0x00, 0, 0), "", false, ""}, // a health check: closed, not reported
		{"v1 UNKNOWN", loopback, []byte("PROXY UNKNOWN\r\n"), "", false, "without a client address"},
		{"v2 UDP", loopback, v2UDP, "", false, "other than TCP"},
		{"silent peer", loopback, nil, "", false, "no PROXY header within 2s"},
		{"untrusted peer", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, v1, "", true, "not in proxy_protocol.trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			refusals := make(chan refusal, 1)
			l := newProxyListener(raw, tt.trusted, 2*time.Second, func(peer netip.AddrPort, untrusted bool, reason string) {
				refusals <- refusal{peer, untrusted, reason}
			})
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
					t.Fatalf("got %d bytes, %v; want the connection closed (EOF or reset)", n, err)
				}
				if tt.reason == "" {
					select {
					case r := <-refusals:
						t.Fatalf("got refusal %+v, want none", r)
					case <-time.After(200 * time.Millisecond):
					}
					l.Close()
					if a := <-got; a.err == nil {
						t.Fatalf("got a connection from %v, want none", a.addr)
					}
					return
				}
				r := <-refusals
				if r.peer.String() != c.LocalAddr().String() || r.untrusted != tt.untrusted || !strings.Contains(r.reason, tt.reason) {
					t.Fatalf("got refusal %+v, want peer %v, untrusted %v, reason containing %q", r, c.LocalAddr(), tt.untrusted, tt.reason)
				}
				t.Logf("refused: %s", r.reason)
				l.Close()
				if a := <-got; a.err == nil {
					t.Fatalf("got a connection from %v, want none", a.addr)
				}
				return
			}
			a := <-got
			if a.err != nil {
				t.Fatalf("accept: %v", a.err)
			}
			if s := a.addr.String(); s != tt.want {
				t.Fatalf("got remote address %s, want %s", s, tt.want)
			}
		})
	}
}

// proxyAddr is the load balancer of TestProxyProtocolRefusalsAudited: the
// only peer trusted to send PROXY headers.
const proxyAddr = "127.0.0.3"

// dialFrom opens a TCP connection to the gateway from addr and writes
// header, with a deadline of a minute.
func (w *world) dialFrom(t *testing.T, addr string, header []byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", w.gw.Addr("ssh-in").String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	return c
}

// viaProxy logs alice in through the trusted proxy, for a client at
// client, and runs cmd.
func (w *world) viaProxy(t *testing.T, client netip.AddrPort, cmd string) string {
	t.Helper()
	header := fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 %d %d\r\n", client.Addr(), client.Port(), w.port)
	nc := w.dialFrom(t, proxyAddr, []byte(header))
	addr := w.gw.Addr("ssh-in").String()
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, w.aliceConfig(t))
	if err != nil {
		t.Fatalf("login through the proxy: %v", err)
	}
	sc := ssh.NewClient(c, chans, reqs)
	defer sc.Close()
	return runOn(t, sc, cmd)
}

// refusedPeer sends a PROXY header to the gateway at addr from the
// untrusted client address and checks that the gateway closes the
// connection without a word.
func refusedPeer(addr string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("PROXY TCP4 198.51.100.7 127.0.0.1 40000 2222\r\n")); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return err
	}
	// Closed unread, the header may make the kernel answer with a reset.
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("got %d bytes, %v; want the connection closed", n, err)
	}
	return nil
}

// limitsHit returns sluice_limits_hit_total for a service and limit.
func limitsHit(t *testing.T, g *Gateway, service, limit string) float64 {
	t.Helper()
	mfs, err := g.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_limits_hit_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == service && labels["limit"] == limit {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestProxyProtocolRefusalsAudited: behind a trusted proxy, a client's
// session works with the header's address; a malformed header from the
// proxy, and a flood of PROXY headers from an untrusted peer, are closed
// and audited with the peer's address and the reason — the flood on a
// power-of-two sample, so that the audit queue stays healthy — and all of
// them are counted in sluice_limits_hit_total. The gateway goes on serving.
func TestProxyProtocolRefusalsAudited(t *testing.T) {
	t.Parallel()
	const flood, workers = 2000, 4
	w := newWorld(t, worldOptions{service: "    proxy_protocol: {trusted: [\"" + proxyAddr + "/32\"]}\n"})
	client := netip.MustParseAddrPort(clientAddr + ":5555")
	if out := w.viaProxy(t, client, "echo proxied"); out != "proxied\n" {
		t.Fatalf("session through the proxy: got %q, want %q", out, "proxied\n")
	}
	if evs := w.waitEvents(t, "session.start", 1, nil); len(evs) != 1 || evs[0].ClientAddr != client.String() {
		t.Fatalf("got session.start %+v, want one from %v", evs, client)
	}

	bad := w.dialFrom(t, proxyAddr, []byte("PROXY TCP4 nonsense\r\n"))
	closedWithin(t, bad, 5*time.Second)
	isBad := func(e audit.Event) bool { return e.ClientAddr == bad.LocalAddr().String() }
	evs := w.waitEvents(t, "proxy_protocol", 1, isBad)
	if len(evs) != 1 || evs[0].Verdict != audit.Reject || evs[0].Rule != "services[ssh-in].proxy_protocol" || !strings.Contains(evs[0].Reason, "malformed PROXY header") {
		t.Fatalf("got %+v, want one reject by services[ssh-in].proxy_protocol for a malformed header from %v", evs, bad.LocalAddr())
	}
	t.Logf("malformed header: %s", evs[0].Reason)

	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	var firstErr atomic.Value
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= flood {
				if err := refusedPeer(w.gw.Addr("ssh-in").String()); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		t.Fatalf("untrusted peer: %v", err)
	}
	t.Logf("%d untrusted PROXY peers refused in %v", flood, time.Since(start))
	if got := limitsHit(t, w.gw, "ssh-in", "proxy_protocol"); got != flood+1 {
		t.Fatalf("got sluice_limits_hit_total{limit=proxy_protocol} %v, want %d", got, flood+1)
	}
	isFlood := func(e audit.Event) bool {
		return strings.HasPrefix(e.ClientAddr, clientAddr+":") && e.Rule == "services[ssh-in].proxy_protocol.trusted"
	}
	want := bits.Len(flood) // the 1st, 2nd, 4th... 1024th
	evs = w.waitEvents(t, "proxy_protocol", want, isFlood)
	if len(evs) != want || !strings.Contains(evs[0].Reason, "not in proxy_protocol.trusted") {
		t.Fatalf("got untrusted-peer events %+v, want %d saying the peer is not trusted", evs, want)
	}
	if last := evs[len(evs)-1].Detail["refused"]; fmt.Sprint(last) != strconv.Itoa(1<<(want-1)) {
		t.Fatalf("got the last audited refusal's count %v, want %d", last, 1<<(want-1))
	}
	if err := w.gw.queue.Healthy(); err != nil {
		t.Fatalf("audit queue after the flood: got %v, want healthy", err)
	}
	if out := w.viaProxy(t, client, "echo still"); out != "still\n" {
		t.Fatalf("session through the proxy after the flood: got %q, want %q", out, "still\n")
	}
}
