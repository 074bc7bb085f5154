// Package usercert issues the short-lived OpenSSH user certificates
// (PROTOCOL.certkeys) the gateway logs in to targets with, in place of one
// static key shared by every user.
//
// An Authority holds the user CA's private key. For each upstream login,
// Issue makes a fresh ed25519 key pair in memory and signs a certificate
// for it with golang.org/x/crypto/ssh: the login as its only principal, a
// key id naming the gateway user and the session id (logged by the
// target's sshd), validity from Skew before the login to a little after
// it, a source-address critical option holding the gateway's address on
// the dialled connection, a random serial, and only the extensions of
// what the service's policy permits (Grants). The private key is never
// written anywhere and is dropped with the connection's authentication.
//
// During a rotation the CA the signing key replaced stays listed (Keys),
// so that "sluice ca show" prints both for the targets' TrustedUserCAKeys;
// it never signs.
package usercert
