package gateway

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST
// (linux/netfilter_ipv6/ip6_tables.h), which x/sys/unix does not define.
const ip6tSoOriginalDst = 80

// originalDst returns where a connection redirected to the gateway by the
// host's firewall (iptables/nftables REDIRECT or DNAT) was going: the
// netfilter conntrack entry's original destination, SO_ORIGINAL_DST for
// IPv4 and IP6T_SO_ORIGINAL_DST for IPv6 (linux/netfilter_ipv4.h,
// linux/netfilter_ipv6/ip6_tables.h). A connection that was not
// redirected reports its own local address.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("gateway: original destination of a %T", c)
	}
	local, _ := netip.ParseAddrPort(tc.LocalAddr().String())
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("gateway: original destination: %w", err)
	}
	var dst netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		if local.Addr().Unmap().Is4() {
			// A struct sockaddr_in fits the 20 bytes of an ipv6_mreq,
			// the socket option x/sys reads that size with.
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				serr = err
				return
			}
			dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Multiaddr[4:8])), binary.BigEndian.Uint16(m.Multiaddr[2:4]))
			return
		}
		// A struct sockaddr_in6 is the first member of ip6_mtuinfo.
		info, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSoOriginalDst)
		if err != nil {
			serr = err
			return
		}
		port := (*[2]byte)(unsafe.Pointer(&info.Addr.Port)) // network byte order in memory
		dst = netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr).Unmap(), binary.BigEndian.Uint16(port[:]))
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("gateway: original destination: %w", err)
	}
	return dst, nil
}

// listenTransparent is the net.ListenConfig.Control of a TPROXY listener
// (router.tproxy): IP_TRANSPARENT, or IPV6_TRANSPARENT on an IPv6 socket
// (the same flag, which also covers its IPv4-mapped connections), lets it
// accept connections addressed to any address (ip(7), ipv6(7)). Setting
// it needs CAP_NET_ADMIN.
func listenTransparent(network, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if network == "tcp4" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("gateway: IP_TRANSPARENT (router.tproxy needs CAP_NET_ADMIN): %w", err)
	}
	return nil
}
