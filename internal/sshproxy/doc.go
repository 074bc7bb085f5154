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
// Flow control is end to end: a relay copies one packet at a time and a
// write blocks until the peer's window allows it, so a client that stops
// reading holds at most one window per channel in the gateway, and other
// channels keep flowing.
package sshproxy
