package router

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Reasons a Route is refused; a *RouteError unwraps to one of them, or to
// an *InbandError for a malformed inband name.
var (
	ErrInbandDisabled = errors.New("router: inband routing is not enabled for this service")
	ErrNoRoute        = errors.New("router: no target for this user")
	ErrUserMismatch   = errors.New("router: gateway user does not match the SSH user name")
)

// Params configures a Router for one service.
type Params struct {
	// Service is the service's name, used in rule names.
	Service string
	// Inband enables "USER+HOST[:PORT]" routing.
	Inband bool
	// Directed holds fixed "host:port" targets, tried in order.
	Directed []string
	// Users maps a gateway user to its own "host:port" target.
	Users map[string]string
}

// Route is where a session goes.
type Route struct {
	// User is the gateway user.
	User string
	// Targets are "host:port" candidates in the order to try them.
	Targets []string
	// Rule names the config rule that chose the targets, e.g.
	// "services[ssh-in].router.inband".
	Rule string
}

// RouteError is a refused route; Rule names the rule that refused it.
type RouteError struct {
	Rule string
	Err  error
}

func (e *RouteError) Error() string { return e.Err.Error() + " (" + e.Rule + ")" }

func (e *RouteError) Unwrap() error { return e.Err }

// Router decides where the sessions of one service connect. It holds no
// mutable state and is safe for concurrent use.
type Router struct {
	prefix   string
	inband   bool
	directed []string
	users    map[string]string
}

// New returns a Router for p. It copies p's slices and map.
func New(p Params) *Router {
	r := &Router{
		prefix:   fmt.Sprintf("services[%s].router", p.Service),
		inband:   p.Inband,
		directed: slices.Clone(p.Directed),
		users:    maps.Clone(p.Users),
	}
	return r
}

// Route picks the targets for gatewayUser, the authenticated user, who
// logged in with the SSH user name sshUser; gatewayUser must be
// GatewayUser(sshUser). The precedence is the package's (see doc.go):
// per-user map, inband, directed, refusal. A refusal is a *RouteError.
func (r *Router) Route(gatewayUser string, sshUser string) (Route, error) {
	if gatewayUser == "" || GatewayUser(sshUser) != gatewayUser {
		return Route{}, &RouteError{Rule: r.prefix, Err: ErrUserMismatch}
	}
	if t, ok := r.users[gatewayUser]; ok {
		return Route{User: gatewayUser, Targets: []string{t}, Rule: r.prefix + ".users[" + gatewayUser + "]"}, nil
	}
	if strings.Contains(sshUser, "+") {
		rule := r.prefix + ".inband"
		if !r.inband {
			return Route{}, &RouteError{Rule: rule, Err: ErrInbandDisabled}
		}
		_, host, port, err := ParseInband(sshUser)
		if err != nil {
			return Route{}, &RouteError{Rule: rule, Err: err}
		}
		target := net.JoinHostPort(host, strconv.Itoa(int(port)))
		return Route{User: gatewayUser, Targets: []string{target}, Rule: rule}, nil
	}
	if len(r.directed) > 0 {
		return Route{User: gatewayUser, Targets: slices.Clone(r.directed), Rule: r.prefix + ".directed"}, nil
	}
	return Route{}, &RouteError{Rule: r.prefix, Err: ErrNoRoute}
}
