// Package auth authenticates the client leg of the gateway: public keys from
// each user's OpenSSH authorized_keys file (with its options), OpenSSH user
// certificates signed by a trusted CA (PROTOCOL.certkeys), bcrypt
// passwords, and single sign-on at an OpenID provider through
// keyboard-interactive (RFC 4256) and the device authorization grant
// (SignOn, internal/oidc).
//
// Authenticator.Callbacks installs the callbacks in the ssh.ServerConfig of
// one connection. The identity that authenticated, and what its key options
// or certificate take away (Restrictions), travel only in the returned
// ssh.Permissions (typed, in ExtraData under a key of this package); read
// them back with IdentityOf from ssh.ServerConn.Permissions. Nothing is remembered
// between callback calls, so a client that offers one key and signs with
// another is always identified by the key that signed (CVE-2024-45337).
//
// Each refused attempt is reported, as a Refusal with the rule that decided,
// to the Login the connection's Callbacks call was given; the client only
// ever learns that access was denied.
//
// A first method that passes may be followed by a second factor: the
// Login's SecondFactor names a Challenger, asked through keyboard-interactive
// (RFC 4256) after an ssh.PartialSuccessError, as OpenSSH's
// "AuthenticationMethods publickey,keyboard-interactive" does. The identity
// waits in that error's closure, one per key offered; Identity.SecondFactor
// says which step passed. A Login that carries a factor the same person
// passed on an enclosing connection (Login.Carried, a jump's inner login)
// gives it to the identity instead of asking, never to a key marked for
// automation. The Login's First is a first method that is
// itself keyboard-interactive (an SSO device flow). See
// docs/authentication.md.
package auth
