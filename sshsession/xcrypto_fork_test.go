//go:build !upstream_xcrypto

package sshsession

// forkedXCrypto says the test binary is built with Sluice's fork of
// x/crypto (go.mod's replace directive), whose channels have WriteTo.
// `make nofork` builds with upstream x/crypto and the tag
// upstream_xcrypto instead (xcrypto_upstream_test.go).
const forkedXCrypto = true
