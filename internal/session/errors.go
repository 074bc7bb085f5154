package session

import (
	"errors"
	"fmt"
	"net/netip"
)

// Causes passed to End, readable with context.Cause on a session's context.
// Wrap them to add detail: fmt.Errorf("%w: idle for 10m", ErrIdle).
var (
	// ErrDenied: policy refused the session (see DeniedError).
	ErrDenied = errors.New("session: denied")
	// ErrClosed: the session finished normally.
	ErrClosed = errors.New("session: closed")
	// ErrRevoked: an operator killed the session or its permission was withdrawn.
	ErrRevoked = errors.New("session: revoked")
	// ErrIdle: the session was idle for too long.
	ErrIdle = errors.New("session: idle timeout")
	// ErrShutdown: the gateway or the service is shutting down.
	ErrShutdown = errors.New("session: shutdown")
	// ErrUpstreamClosed: the server side went away.
	ErrUpstreamClosed = errors.New("session: upstream closed")
)

// Access-control stages of a DeniedError.
const (
	StageClient = "client"
	StageServer = "server"
)

// DeniedError is returned by SetClient and SetServer when the address is not
// permitted. errors.Is(err, ErrDenied) holds for it.
type DeniedError struct {
	// Stage is StageClient or StageServer.
	Stage string
	// Zone is the name of the zone the address is in, "" when it is in none.
	Zone string
	// Addr is the refused address.
	Addr netip.AddrPort
	// Rule names the configuration rule that decided, e.g.
	// "services[ssh-in].client_zones", or "zones" when no zone holds Addr.
	Rule string
}

func (e *DeniedError) Error() string {
	if e.Zone == "" {
		return fmt.Sprintf("session: %s %s is in no zone (%s)", e.Stage, e.Addr, e.Rule)
	}
	return fmt.Sprintf("session: %s %s in zone %q not permitted by %s", e.Stage, e.Addr, e.Zone, e.Rule)
}

// Is reports whether target is ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }
