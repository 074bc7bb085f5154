// Package sshproxy is Sluice's SSH proxy: the gateway between an unmodified
// SSH client and an unmodified SSH server.
//
// The client leg is an x/crypto/ssh server whose session channels are served
// by the public sshsession package with a relay as the Handler (Conch's
// avatar, relaying instead of running). The upstream leg is an x/crypto/ssh
// client that logs in with a credential the user never sees, after a strict
// host-key check. Each channel is a stacked session of the connection's
// master session (Zorp), so every decision lands in the audit with an id such
// as gw1/ssh-in:42/ssh/session:0.
//
// With Params.Jump, a direct-tcpip channel to an inventory host's SSH port
// (ssh -J) is answered by the proxy itself: an SSH server in the channel,
// under a host certificate for that host, authenticates the user again and
// serves the inner connection as any other, with its own master session
// stacked in the channel (gw1/ssh-in:42/ssh/direct-tcpip:0/ssh). With
// Params.Transparent the target is the connection's original destination
// (OriginalDestination; with Params.TProxy the gateway alone tells an
// intercepted connection from one made straight to it) and the SSH user
// name the upstream login.
//
// A recorded pty channel whose Recorder is also a Terminal is handed the
// client's terminal and the target's stdin while it is relayed, so that
// the console can tell the user who watches and let an operator type.
//
// Flow control is end to end: a relay copies one packet at a time and a
// write blocks until the peer's window allows it, so a client that stops
// reading holds at most one window per channel in the gateway, and other
// channels keep flowing.
package sshproxy
