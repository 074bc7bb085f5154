package sniff

import (
	"bytes"
)

// Protocol names what a stream carries, as it appears in audit events and
// in the config's forward_local protocols lists.
type Protocol string

// Protocols Sluice recognises.
const (
	SSH        Protocol = "ssh"
	TLS        Protocol = "tls"
	HTTP       Protocol = "http"
	PostgreSQL Protocol = "postgresql"
	Unknown    Protocol = "unknown"
)

// Protocols lists every Protocol, for config validation.
var Protocols = []Protocol{SSH, TLS, HTTP, PostgreSQL, Unknown}

// MaxClientBytes bounds what a caller holds back while it waits for a
// decision: 16 KiB holds a TLS record of the largest plaintext size
// (2^14 bytes, RFC 8446 §5.1) and a PostgreSQL startup packet (at most
// 10000 bytes, MAX_STARTUP_PACKET_LENGTH in PostgreSQL's pqcomm.h).
const MaxClientBytes = 16 << 10

// Status is a parser's answer.
type Status int

// Parser answers.
const (
	No    Status = iota // not this protocol
	More                // a prefix of this protocol: more bytes may decide
	Match               // this protocol (see Result.Malformed)
)

// Result is what the first bytes say.
type Result struct {
	Protocol Protocol
	// SNI is the TLS server_name (host_name), lower case, without a
	// trailing dot.
	SNI string
	// Host is the HTTP request's host, lower case, without port.
	Host string
	// Method is the HTTP request method.
	Method string
	// User and Database are a PostgreSQL startup message's parameters.
	User, Database string
	// Encrypted is set for a PostgreSQL SSLRequest or GSSENCRequest: the
	// rest of the stream is TLS or GSSAPI and says nothing more.
	Encrypted bool
	// Malformed, when not empty, says why the bytes, recognised as
	// Protocol, cannot be read as that protocol's rules demand (a
	// duplicate Host, a folded header line, a duplicate extension...).
	// A policy that looks at SNI or Host refuses such a stream.
	Malformed string
	// Partial names the protocol a stream decided as Unknown looked like
	// when its bytes ran out, e.g. "tls".
	Partial Protocol
}

type parser func([]byte) (Result, Status)

var clientParsers = []parser{parseSSH, parseTLS, parseHTTP, parsePostgres}

// Client identifies a stream from the first bytes its client sent. done
// is false while more bytes could change the answer; then r is the
// Unknown result to use if no more come (with Partial set).
func Client(b []byte) (r Result, done bool) {
	if len(b) == 0 {
		return Result{Protocol: Unknown}, false
	}
	more := Unknown
	for _, p := range clientParsers {
		res, st := p(b)
		switch st {
		case Match:
			return res, true
		case More:
			if more == Unknown {
				more = res.Protocol
			}
		}
	}
	if more != Unknown {
		return Result{Protocol: Unknown, Partial: more}, false
	}
	return Result{Protocol: Unknown}, true
}

// Server identifies a stream from the first bytes its target sent: an
// SSH server's identification string, which RFC 4253 §4.2 lets other
// lines precede. Anything else is Unknown: server-first protocols other
// than SSH are not told apart.
func Server(b []byte) Result {
	for len(b) > 0 {
		if len(b) >= 4 && string(b[:4]) == "SSH-" {
			return Result{Protocol: SSH}
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		b = b[i+1:]
	}
	return Result{Protocol: Unknown}
}

// parseSSH recognises an SSH identification string: "SSH-" at the start
// (RFC 4253 §4.2; a client sends no other lines before it).
func parseSSH(b []byte) (Result, Status) {
	const prefix = "SSH-"
	r := Result{Protocol: SSH}
	if len(b) < len(prefix) {
		if string(b) == prefix[:len(b)] {
			return r, More
		}
		return r, No
	}
	if string(b[:len(prefix)]) == prefix {
		return r, Match
	}
	return r, No
}
