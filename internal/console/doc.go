// Package console is the operators' web console and its API: an HTTPS
// server (console.listen) that shows the live sessions of the running
// gateway and what the audit store and the recordings hold.
//
// # API
//
// Under /api/v1/, authenticated by a bearer token (Authorization: Bearer
// T) that `sluice console token` prints, or by a browser login's cookie:
//
//	GET  sessions                   master sessions, newest first: filters live, user, host, since; limit and before page
//	GET  sessions/{id}              one session, whether it is live, its audit timeline and its recorded channels
//	GET  sessions/{id}/recording    a channel's recording as asciicast v2 (?channel=ID, default the first pty channel)
//	GET  sessions/{id}/live         a live channel as it is recorded, as server-sent events (asciinema-player's eventsource format)
//	POST sessions/{id}/kill         end a live session; 204, or 404
//	POST sessions/{id}/input        keystrokes for the target, from an operator joined read-write (?join=TOKEN)
//	GET  audit                      events as JSON lines (?format=csv for CSV): filters user, session, type (a prefix), verdict, since, until; limit
//
// Session ids hold "/", so {id} is path-escaped: gw1%2Fssh-in:3.
//
// # Credentials
//
// Tokens and operator accounts are kept in STATE_DIR/console (0700), in
// tokens.json and operators.json (0600). A token is 32 random bytes; only
// its SHA-256 is stored, with its name and expiry. An operator account is
// a bcrypt password hash and a TOTP secret (RFC 6238); a browser login
// needs both. Logins are rate limited per client address and per
// operator; the browser session is a random id in a cookie that is
// Secure, HttpOnly and SameSite=Strict, kept in memory only (a restart
// logs everyone out), with a CSRF token that every POST of a page must
// carry.
//
// # Auditing
//
// What operators do is written to the gateway's audit sink as events of
// type console.* (console.login, console.logout, console.replay,
// console.live, console.join, console.leave) with the operator's name in
// user and detail.operator; a kill is the gateway's own "kill" event, with
// detail.operator naming who killed the session.
//
// # Live view
//
// A live channel is shown from its recording: the file is read (one gzip
// reader, member after member) up to where the recorder's Follower
// (record.File.Follow, through RecordingFollower) begins, which sends the
// screen so far as one reset; from then on the recorder's lines come
// uncompressed, gathered for liveBatch and written out. Event lines are
// checked and passed to the browser without decoding their data. A viewer
// the Follower cuts off for falling behind starts again from the file. In
// a fleet (FleetGateway) a session another node holds has no Follower
// here: its recording is followed as a file in the shared recordings
// folder, polled, the registry being asked at most every second whether
// it is still held.
//
// # Joining
//
// A live view announces its operator on the user's terminal through
// Terminals (a gateway's pty channels); ?mode=read_write joins, where the
// service's console_join allows it, and POST input sends the operator's
// keystrokes for as long as the view lasts.
package console
