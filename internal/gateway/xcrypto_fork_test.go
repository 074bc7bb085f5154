//go:build !upstream_xcrypto

package gateway

// forkedXCrypto says the test binary is built with Sluice's fork of
// x/crypto (go.mod's replace directive), whose server accepts the
// repeated ssh-userauth service request paramiko sends before each
// authentication method (patch 8). `make nofork` builds with upstream
// x/crypto and the tag upstream_xcrypto instead
// (xcrypto_upstream_test.go).
const forkedXCrypto = true
