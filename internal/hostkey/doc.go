// Package hostkey holds the gateway's own host keys and checks the host keys
// of upstream servers.
//
// LoadOrGenerate creates the gateway's keys in the state folder on first
// start, in OpenSSH format with mode 0600, and reuses them afterwards.
//
// Checker verifies upstream host keys against an OpenSSH known_hosts file
// (with @cert-authority and @revoked markers, via
// golang.org/x/crypto/ssh/knownhosts). The check is strict: an unknown, a
// changed or a revoked key fails the handshake with *UnknownKeyError,
// *ChangedKeyError or *RevokedKeyError before any credential is sent.
// HostKeyAlgorithms tells the client which key types to ask for, so that a
// server known by one key type is not refused for offering another first.
//
// Scan fetches every host key a server offers, one handshake per key type,
// for the "sluice known-hosts add" command.
package hostkey
