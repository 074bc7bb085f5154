// Package tempfork holds Sluice's temporary forks of other modules and the
// tests that keep them honest; it has no code of its own.
//
// xcrypto is a whole copy of one golang.org/x/crypto release (named in
// xcrypto/UPSTREAM) with the patches in xcrypto-patches applied in order;
// go.mod replaces golang.org/x/crypto with it. scripts/xcrypto-fork.sh
// updates, verifies and tests it, and docs/xcrypto-fork.md describes each
// patch and its measured gain. The tests here check that every x/crypto
// package still imports through the replacement, and that the copy is the
// newest release the module proxy serves.
package tempfork
