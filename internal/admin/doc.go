// Package admin is the running gateway's operator API: a small HTTP API
// served on a Unix socket (never on TCP), used by `sluice sessions --live`
// and `sluice kill`.
//
//	GET  /sessions              live master sessions, a JSON array of Session
//	POST /sessions/{id}/kill    end a live master session; 204, or 404 when none
//
// The id in the kill path is URL path-escaped ("gw1%2Fssh-in:3"), because
// session ids contain "/". Errors are answered as text/plain with a status.
//
// The socket is its own protection: Listen creates it with mode 0600 in a
// folder that only its owner may write, so only the gateway's user (and
// root) can connect. See docs/admin.md.
package admin
