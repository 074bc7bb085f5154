//go:build upstream_xcrypto

package gateway

// forkedXCrypto: see xcrypto_fork_test.go.
const forkedXCrypto = false
