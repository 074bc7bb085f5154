package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// wildcard is the host or port that matches anything in a permit-open entry
// (sshd_config(5) PermitOpen).
const wildcard = "*"

// hostPort is one parsed permit-open entry.
type hostPort struct {
	anyHost bool
	addr    netip.Addr // valid when the host is an IP literal
	name    string     // lower-cased host name otherwise
	anyPort bool
	port    uint32
}

// parseHostPort parses "host:port" where host or port may be "*" and an
// IPv6 literal must be in brackets.
func parseHostPort(s string) (hostPort, error) {
	var hp hostPort
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return hp, fmt.Errorf("missing port in %q", s)
	}
	host, port := s[:i], s[i+1:]
	switch {
	case port == wildcard:
		hp.anyPort = true
	case port == "" || strings.TrimLeft(port, "0123456789") != "":
		return hp, fmt.Errorf("malformed port in %q", s)
	default:
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return hp, fmt.Errorf("port out of range in %q", s)
		}
		hp.port = uint32(n)
	}
	switch {
	case host == wildcard:
		hp.anyHost = true
	case strings.HasPrefix(host, "["):
		if !strings.HasSuffix(host, "]") {
			return hp, fmt.Errorf("unterminated bracket in %q", s)
		}
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() {
			return hp, fmt.Errorf("malformed IPv6 literal in %q", s)
		}
		hp.addr = a.Unmap()
	case host == "":
		return hp, errors.New("empty host")
	case strings.ContainsAny(host, "[]:"):
		return hp, fmt.Errorf("malformed host in %q (IPv6 literals go in brackets)", s)
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			hp.addr = a.Unmap()
		} else {
			hp.name = strings.ToLower(host)
		}
	}
	return hp, nil
}

// match reports whether a request for host:port matches the entry. host is
// as the client sent it: a name, or an IP literal without brackets.
func (hp hostPort) match(host string, port uint32) bool {
	if !hp.anyPort && hp.port != port {
		return false
	}
	if hp.anyHost {
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return hp.addr.IsValid() && hp.addr == a.Unmap()
	}
	return hp.name != "" && hp.name == strings.ToLower(host)
}

// unspecifiedHost reports whether host, as a direct-tcpip request names it,
// is an unspecified address: 0.0.0.0, :: or ::ffff:0.0.0.0, in brackets or
// with a zone, or an inet_aton(3) form the target's resolver reads as
// 0.0.0.0 ("0", "0.0", "0x0", "00.0.0.0"). The target would connect to its
// own loopback.
func unspecifiedHost(host string) bool {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if i := strings.IndexByte(h, '%'); i >= 0 {
		h = h[:i]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().IsUnspecified()
	}
	parts := strings.Split(strings.TrimSuffix(h, "."), ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		// Zero in decimal, octal (leading 0) or hex (0x): "0", "000",
		// "0x", "0x00".
		if p == "" || p[0] != '0' {
			return false
		}
		rest := p[1:]
		if rest != "" && (rest[0] == 'x' || rest[0] == 'X') {
			rest = rest[1:]
		}
		if strings.Trim(rest, "0") != "" {
			return false
		}
	}
	return true
}
