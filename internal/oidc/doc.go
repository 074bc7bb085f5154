// Package oidc signs gateway users in with OpenID Connect (OpenID Connect
// Core 1.0) through the OAuth 2.0 Device Authorization Grant (RFC 8628),
// the flow for a client that cannot open a browser: a stock SSH client.
//
// Provider.Start asks the identity provider for a device code and returns
// the verification URL and user code to show; Provider.Wait polls the token
// endpoint (RFC 8628 §3.4, §3.5) until the user approves or denies in a
// browser or the code expires, then verifies the ID token (signature,
// issuer, audience, expiry; OpenID Connect Core §3.1.3.7) and maps its
// claims to a Sluice user name and groups (Mapping). The protocol and the
// cryptography are golang.org/x/oauth2 and github.com/coreos/go-oidc/v3;
// this package writes none of its own.
//
// Discovery (OpenID Connect Discovery 1.0) happens at the first sign-in and
// is retried at the next one after a failure, so a gateway starts while its
// identity provider is down. The package never logs: every outcome is an
// error the caller audits, a *Refused when the identity provider or the
// claims decided.
package oidc
