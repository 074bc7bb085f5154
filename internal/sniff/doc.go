// Package sniff names the protocol of a forwarded TCP stream from its first
// bytes, so that a plug session (a direct-tcpip channel) can be decided and
// audited by what it carries and not only by where it goes.
//
// Client looks at the bytes the client sent first and recognises:
//
//   - an SSH identification string, "SSH-" (RFC 4253 §4.2);
//   - a TLS ClientHello (RFC 8446 §4.1.2, and RFC 5246 §7.4.1.2 for
//     TLS 1.2), reassembled across handshake records, with its server_name
//     (RFC 6066 §3);
//   - an HTTP/1.x request line and its Host (RFC 9112 §3, RFC 9110 §7.2);
//   - a PostgreSQL StartupMessage with its user and database, or an
//     SSLRequest / GSSENCRequest that is followed by TLS or GSSAPI
//     encryption (PostgreSQL protocol documentation, "Message Formats").
//
// Server looks at the target's first bytes, for protocols where the server
// speaks first: an SSH server sends its identification string at once.
//
// The parsers only read; they never guess. Each answers Match (the bytes
// are that protocol, possibly malformed: Result.Malformed says why), More
// (the bytes so far are a prefix of it) or No. When every parser says No
// the stream is Unknown; when bytes run out (the caller's byte or time cap)
// while some parser still wants more, the stream is Unknown too, with
// Result.Partial naming what it looked like. What sniffing proves and what
// it does not is in docs/security.md: after the hello an encrypted protocol
// carries anything, and a client may mimic a protocol's first bytes.
package sniff
