// Package mfa is the gateway's second factor: TOTP codes (RFC 6238) asked
// through keyboard-interactive (RFC 4256) after the user's key, certificate
// or password, as OpenSSH's "AuthenticationMethods
// publickey,keyboard-interactive" does.
//
// A user's secret lives in its totp_file, an otpauth:// URI written by
// Enrol (`sluice user totp`), readable by its owner only. TOTP is an
// auth.Challenger; Verifier checks codes and accepts each at most once:
// a code, or any code of an earlier time step, is refused once a code of
// its user was accepted (RFC 6238 §5.2), across every connection of the
// gateway. The memory of accepted codes is the process's, or, in a fleet,
// a Ledger in the shared store (internal/fleet), so that a code is
// accepted once by the whole fleet and across restarts. Requirement decides, from a service's mfa setting and who
// logged in, whether the login is asked for a code or refused. The codes
// themselves are computed by github.com/pquerna/otp.
package mfa
