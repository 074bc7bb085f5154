//go:build upstream_xcrypto

package sshsession

// forkedXCrypto: built by `make nofork`, without Sluice's fork of x/crypto
// (see xcrypto_fork_test.go).
const forkedXCrypto = false
