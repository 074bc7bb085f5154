package sniff

import (
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// TLS wire constants (RFC 8446).
const (
	recordHeaderLen      = 5       // §5.1: type, legacy_record_version, length
	recordTypeHandshake  = 22      // §5.1 ContentType handshake
	maxRecordLen         = 1 << 14 // §5.1: length MUST NOT exceed 2^14
	handshakeHeaderLen   = 4       // §4: msg_type, uint24 length
	handshakeClientHello = 1       // §4 HandshakeType client_hello
	extServerName        = 0       // RFC 6066 §3 server_name
	sniHostName          = 0       // RFC 6066 §3 NameType host_name
	maxHostNameLen       = 253     // RFC 1035 §2.3.4, in text form
)

// parseTLS recognises a ClientHello, reassembled from as many handshake
// records as it spans (RFC 8446 §5.1 lets a handshake message be split
// over records, one byte each if the sender likes).
func parseTLS(b []byte) (Result, Status) {
	r := Result{Protocol: TLS}
	var hs []byte // handshake bytes so far
	for len(b) > 0 {
		// The header must look like TLS from its first byte: type 22,
		// legacy_record_version 3.x.
		if b[0] != recordTypeHandshake || len(b) >= 2 && b[1] != 3 {
			return r, No
		}
		if len(b) < recordHeaderLen {
			return r, More
		}
		n := int(b[3])<<8 | int(b[4])
		if n == 0 || n > maxRecordLen {
			// §5.1: zero-length handshake fragments MUST NOT be sent.
			return r, No
		}
		frag := b[recordHeaderLen:]
		complete := len(frag) >= n
		if complete {
			frag = frag[:n]
		}
		if hs == nil {
			// The first record's fragment is used in place, capped so
			// that a later append copies: a hello trickled into one
			// record costs each call O(1), not a copy of all so far.
			hs = frag[:len(frag):len(frag)]
		} else {
			hs = append(hs, frag...)
		}
		b = b[recordHeaderLen+len(frag):]
		if len(hs) == 0 {
			return r, More
		}
		if hs[0] != handshakeClientHello {
			return r, No
		}
		if len(hs) >= handshakeHeaderLen {
			msgLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
			if msgLen > MaxClientBytes {
				r.Malformed = "ClientHello larger than 16 KiB"
				return r, Match
			}
			if len(hs) >= handshakeHeaderLen+msgLen {
				return clientHello(hs[handshakeHeaderLen : handshakeHeaderLen+msgLen]), Match
			}
		}
		if !complete {
			return r, More
		}
	}
	return r, More
}

// clientHello reads a ClientHello body (RFC 8446 §4.1.2) for its
// server_name. A body that does not parse is a malformed TLS stream.
func clientHello(body []byte) Result {
	r := Result{Protocol: TLS}
	s := cryptobyte.String(body)
	var version uint16
	var random, sessionID, suites, compression, exts cryptobyte.String
	if !s.ReadUint16(&version) || !s.ReadBytes((*[]byte)(&random), 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || !s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&compression) {
		r.Malformed = "truncated ClientHello"
		return r
	}
	if s.Empty() {
		return r // no extensions (SSL 3.0-style hello): no SNI
	}
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		r.Malformed = "malformed ClientHello extensions"
		return r
	}
	seen := map[uint16]bool{}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			r.Malformed = "malformed ClientHello extension"
			return r
		}
		if seen[typ] {
			// §4.2: no more than one extension of each type.
			r.Malformed = "duplicate ClientHello extension"
			return r
		}
		seen[typ] = true
		if typ != extServerName {
			continue
		}
		name, why := serverName(data)
		if why != "" {
			r.Malformed = why
			return r
		}
		r.SNI = name
	}
	return r
}

// serverName reads a server_name extension's ServerNameList (RFC 6066 §3):
// exactly one host_name, a DNS name in ASCII.
func serverName(data cryptobyte.String) (string, string) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return "", "malformed server_name extension"
	}
	var name string
	for !list.Empty() {
		var typ uint8
		var host cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&host) {
			return "", "malformed server_name extension"
		}
		if typ != sniHostName {
			continue
		}
		if name != "" {
			// RFC 6066 §3: no more than one name of each type.
			return "", "more than one host_name in server_name"
		}
		h, ok := dnsName(string(host))
		if !ok {
			return "", "server_name is not a DNS host name"
		}
		name = h
	}
	return name, ""
}

// dnsName checks a host name as SNI or an HTTP Host carries it: letters,
// digits, '-', '_' and dots, no empty label, at most 253 bytes; it returns
// it in lower case without a trailing dot.
func dnsName(h string) (string, bool) {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > maxHostNameLen {
		return "", false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return strings.ToLower(h), true
}
