package sshproxy

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// maxHostLen bounds a host name in a forwarding request: RFC 1035 §2.3.4
// limits a domain name to 255 octets.
const maxHostLen = 255

// directTCPIP is the "direct-tcpip" channel-open payload (RFC 4254 §7.2).
// "forwarded-tcpip" (§7.2) has the same layout: connected address and port,
// then originator address and port.
type directTCPIP struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// tcpipForward is the "tcpip-forward" and "cancel-tcpip-forward" global
// request payload (RFC 4254 §7.1).
type tcpipForward struct {
	Host string
	Port uint32
}

var errMalformed = errors.New("sshproxy: malformed payload")

func checkHostPort(host string, port uint32) error {
	if len(host) > maxHostLen {
		return fmt.Errorf("%w: host longer than %d bytes", errMalformed, maxHostLen)
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: host has a control, space or non-ASCII byte", errMalformed)
		}
	}
	if port > 65535 {
		return fmt.Errorf("%w: port %d out of range", errMalformed, port)
	}
	return nil
}

// parseDirectTCPIP parses a direct-tcpip or forwarded-tcpip open payload.
func parseDirectTCPIP(b []byte) (directTCPIP, error) {
	var m directTCPIP
	if err := ssh.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if err := checkHostPort(m.Host, m.Port); err != nil {
		return m, err
	}
	if m.Port == 0 {
		return m, fmt.Errorf("%w: port 0", errMalformed)
	}
	if err := checkHostPort(m.OriginHost, m.OriginPort); err != nil {
		return m, err
	}
	return m, nil
}

// parseTCPIPForward parses a tcpip-forward or cancel-tcpip-forward payload.
// Port 0 asks the server to pick one (RFC 4254 §7.1).
func parseTCPIPForward(b []byte) (tcpipForward, error) {
	var m tcpipForward
	if err := ssh.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return m, checkHostPort(m.Host, m.Port)
}
