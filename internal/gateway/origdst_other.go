//go:build !linux

package gateway

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// originalDst is Linux's only (netfilter's SO_ORIGINAL_DST).
func originalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("gateway: transparent routing needs Linux (SO_ORIGINAL_DST)")
}

// listenTransparent is Linux's only (IP_TRANSPARENT).
func listenTransparent(string, string, syscall.RawConn) error {
	return errors.New("gateway: router.tproxy needs Linux (IP_TRANSPARENT)")
}
