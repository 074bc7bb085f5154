// Package chainer is Sluice's Chainer (after Zorp's): it decides HOW a
// session reaches the targets the router chose. For each "host:port" target
// in order it resolves the host, and for each address it asks the caller's
// server-zone check (Params.Permit) before dialling, dials with a timeout,
// and fails over to the next address or target. Addresses that failed are
// remembered as down for a while (a down-host cache shared by every session
// of the service) and skipped, unless every candidate is down.
//
// Every try is returned as an Attempt so that the caller can audit why a
// connection went where it did, or why it failed. Nothing beyond the given
// targets is ever dialled. A Chainer is safe for concurrent use.
package chainer
