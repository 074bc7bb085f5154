//go:build !linux

package gateway

import (
	"errors"
	"net"
	"net/netip"
)

// originalDst is Linux's only (netfilter's SO_ORIGINAL_DST).
func originalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("gateway: transparent routing needs Linux (SO_ORIGINAL_DST)")
}
