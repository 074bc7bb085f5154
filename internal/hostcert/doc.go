// Package hostcert is Sluice's host certificate authority: where the
// gateway answers an SSH connection in a target's place (ProxyJump with
// inspection), it presents its own host key certified for the target's
// names, so that a client whose known_hosts holds the CA's
// "@cert-authority" line (sshd(8) SSH_KNOWN_HOSTS FILE FORMAT) connects
// with strict host-key checking and no warning.
//
// An Authority holds the host CA's private key, kept in the state
// directory (FileName). Certify signs, with golang.org/x/crypto/ssh, a
// host certificate (PROTOCOL.certkeys, type 2) for one of the gateway's
// host keys: the names and addresses a client may use for the target as
// principals, valid from Skew before now for Lifetime. No new key pair is
// made: the certificate binds the target's names to the gateway's key.
//
// KnownHostsLine spells the line clients add; Patterns the host patterns
// of an inventory for it.
package hostcert
