// Package auth authenticates the client leg of the gateway: public keys from
// each user's OpenSSH authorized_keys file (with its options), OpenSSH user
// certificates signed by a trusted CA (PROTOCOL.certkeys), and bcrypt
// passwords.
//
// Authenticator.Callbacks installs the callbacks in an ssh.ServerConfig. The
// identity that authenticated, and what its key options or certificate take
// away (Restrictions), travel only in the returned ssh.Permissions; read them
// back with IdentityOf from ssh.ServerConn.Permissions. Nothing is remembered
// between callback calls, so a client that offers one key and signs with
// another is always identified by the key that signed (CVE-2024-45337).
//
// Refused attempts are reported through Params.OnFailure with the rule that
// decided; the client only ever learns that access was denied.
package auth
