// Package router is Sluice's Router (after Zorp's): it decides WHERE a
// session connects, as an ordered list of "host:port" candidates and the
// config rule that chose them. How to reach them is the chainer's business.
//
// A service picks its target in this order (Router.Route):
//
//  1. the per-user map (services[S].router.users): the gateway user always
//     goes to the mapped target, whatever the SSH user name asks for;
//  2. inband routing (services[S].router.inband), when the SSH user name
//     has a '+': "USER+HOST", "USER+HOST:PORT" (DESIGN.md contract) or
//     "USER+HOST_PORT", then optionally "+LOGIN", parsed strictly by
//     ParseInband; a HOST without a port that is in the inventory
//     (Params.Hosts) goes to its address; an inband name on a service
//     without inband routing is refused;
//  3. the directed targets (services[S].router.directed), tried in order
//     for failover;
//  4. otherwise the session is refused.
//
// A transparent service (services[S].router.transparent) routes with
// Transparent instead: the connection's original destination, the SSH
// user name as the login. InventoryHost tells whether a forward's
// destination is an inventory host's SSH port (ProxyJump).
//
// With Params.NamesOnly (the config has roles) every route must be one
// inventory host: a raw address reaches a host only when it is that
// host's address; the caller decides the login (internal/access).
//
// The inband name arrives from the network in SSH_MSG_USERAUTH_REQUEST
// (RFC 4252 §5), so ParseInband rejects whatever it cannot parse exactly
// rather than guessing.
package router
