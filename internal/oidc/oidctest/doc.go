// Package oidctest runs a real OpenID provider on loopback for tests: the
// oidc-provider npm package, started by ../testdata/idp/idp.mjs with the
// device authorization grant (RFC 8628) over HTTPS, and a browser stand-in
// that approves or denies a device code through the provider's own
// verification and login forms.
//
// Node.js and the script's node_modules (scripts/install-test-deps.sh runs
// npm ci there) are required: without them a test fails when
// SLUICE_INTEROP=require is set and is skipped otherwise.
package oidctest
