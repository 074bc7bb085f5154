package router

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-ssh/sluice/internal/config"
)

// Reasons a Route is refused; a *RouteError unwraps to one of them, or to
// an *InbandError for a malformed inband name.
var (
	ErrInbandDisabled = errors.New("router: inband routing is not enabled for this service")
	ErrNoRoute        = errors.New("router: no target for this user")
	ErrUserMismatch   = errors.New("router: gateway user does not match the SSH user name")
	// ErrNotInInventory refuses a target that is no inventory host where
	// only inventory hosts may be reached (Params.NamesOnly).
	ErrNotInInventory = errors.New("router: target is not a host of the inventory")
	// ErrLoginNotAllowed refuses an inband login ("USER+HOST+LOGIN") on a
	// service whose upstream login comes from upstream.user alone.
	ErrLoginNotAllowed = errors.New("router: choosing the login is not allowed on this service")
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
	// Hosts is the host inventory: lowercase name -> "host:port". An
	// inband name without a port that is in Hosts goes to its address.
	Hosts map[string]string
	// NamesOnly refuses every target that is not an inventory host
	// (ErrNotInInventory): a raw address, or a directed or per-user
	// target, reaches a host only when it is that host's address. A route
	// must then have one target. It also lets an inband name choose the
	// login ("USER+HOST+LOGIN"), which the caller decides.
	NamesOnly bool
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
	// Host is the inventory host the single target is, or "".
	Host string
	// Login is the upstream login the inband name asked for, or "".
	Login string
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
	prefix    string
	inband    bool
	directed  []string
	users     map[string]string
	hosts     map[string]string
	byAddress map[string]string // canonical "host:port" -> inventory name
	namesOnly bool
}

// New returns a Router for p. It copies p's slices and map.
func New(p Params) *Router {
	r := &Router{
		prefix:    fmt.Sprintf("services[%s].router", p.Service),
		inband:    p.Inband,
		directed:  slices.Clone(p.Directed),
		users:     maps.Clone(p.Users),
		hosts:     maps.Clone(p.Hosts),
		byAddress: make(map[string]string, len(p.Hosts)),
		namesOnly: p.NamesOnly,
	}
	for name, addr := range p.Hosts {
		r.byAddress[config.CanonicalAddress(addr)] = name
	}
	return r
}

// resolve fills in rt.Host for a single-target route, and refuses any
// other route when only inventory hosts may be reached.
func (r *Router) resolve(rt Route) (Route, error) {
	if len(rt.Targets) == 1 {
		rt.Host = r.byAddress[config.CanonicalAddress(rt.Targets[0])]
	}
	if r.namesOnly && rt.Host == "" {
		return Route{}, &RouteError{Rule: "hosts", Err: ErrNotInInventory}
	}
	return rt, nil
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
		return r.resolve(Route{User: gatewayUser, Targets: []string{t}, Rule: r.prefix + ".users[" + gatewayUser + "]"})
	}
	if strings.Contains(sshUser, "+") {
		rule := r.prefix + ".inband"
		if !r.inband {
			return Route{}, &RouteError{Rule: rule, Err: ErrInbandDisabled}
		}
		in, err := ParseInband(sshUser)
		if err != nil {
			return Route{}, &RouteError{Rule: rule, Err: err}
		}
		if in.Login != "" && !r.namesOnly {
			return Route{}, &RouteError{Rule: strings.TrimSuffix(r.prefix, ".router") + ".upstream.user", Err: ErrLoginNotAllowed}
		}
		if addr, ok := r.hosts[strings.ToLower(in.Host)]; ok && !in.HasPort {
			return Route{User: gatewayUser, Targets: []string{addr}, Rule: rule, Host: strings.ToLower(in.Host), Login: in.Login}, nil
		}
		target := net.JoinHostPort(in.Host, strconv.Itoa(int(in.Port)))
		return r.resolve(Route{User: gatewayUser, Targets: []string{target}, Rule: rule, Login: in.Login})
	}
	if len(r.directed) > 0 {
		return r.resolve(Route{User: gatewayUser, Targets: slices.Clone(r.directed), Rule: r.prefix + ".directed"})
	}
	return Route{}, &RouteError{Rule: r.prefix, Err: ErrNoRoute}
}

// InventoryHost returns the inventory host whose address is host:port,
// naming it either by its inventory name (without case) with its
// address's port, or by that address itself: the destination of a
// direct-tcpip channel that is an inventory host's SSH port (ProxyJump).
// ok is false for anything else.
func (r *Router) InventoryHost(host string, port uint32) (name, address string, ok bool) {
	if port == 0 || port > 65535 {
		return "", "", false
	}
	p := strconv.FormatUint(uint64(port), 10)
	if addr, found := r.hosts[strings.ToLower(host)]; found {
		if _, ap, err := net.SplitHostPort(addr); err == nil && ap == p {
			return strings.ToLower(host), addr, true
		}
		return "", "", false
	}
	if name, found := r.byAddress[config.CanonicalAddress(net.JoinHostPort(host, p))]; found {
		return name, r.hosts[name], true
	}
	return "", "", false
}

// ErrNoOriginalDestination refuses a transparent connection whose
// original destination is unknown or is the gateway's own listener (it
// was not redirected).
var ErrNoOriginalDestination = errors.New("router: no original destination: the connection was not redirected to the gateway")

// Transparent routes a connection of gatewayUser redirected to the gateway
// (services[S].router.transparent) to dst, its original destination; the
// SSH user name login is the upstream login. listener is the address the
// connection arrived at: a dst equal to it was not redirected (an invalid
// listener, for TPROXY where every connection arrives at its dst, checks
// nothing). With
// Params.NamesOnly dst must be an inventory host's address.
func (r *Router) Transparent(gatewayUser string, dst, listener netip.AddrPort, login string) (Route, error) {
	rule := r.prefix + ".transparent"
	if gatewayUser == "" {
		return Route{}, &RouteError{Rule: rule, Err: ErrUserMismatch}
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !dst.IsValid() || dst.Port() == 0 || dst == netip.AddrPortFrom(listener.Addr().Unmap(), listener.Port()) {
		return Route{}, &RouteError{Rule: rule, Err: ErrNoOriginalDestination}
	}
	return r.resolve(Route{User: gatewayUser, Targets: []string{dst.String()}, Rule: rule, Login: login})
}
