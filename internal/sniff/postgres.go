package sniff

import (
	"bytes"
	"encoding/binary"
)

// PostgreSQL startup codes (PostgreSQL documentation, "Message Formats":
// StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).
const (
	pgSSLRequest     = 80877103
	pgGSSENCRequest  = 80877104
	pgCancelRequest  = 80877102
	pgRequestLen     = 8
	pgCancelMinLen   = 16
	pgMaxStartupLen  = 10000 // MAX_STARTUP_PACKET_LENGTH, pqcomm.h
	pgHeaderLen      = 8     // int32 length, int32 code
	pgProtocolMajor3 = 3
)

// parsePostgres recognises the first message a PostgreSQL client sends.
func parsePostgres(b []byte) (Result, Status) {
	r := Result{Protocol: PostgreSQL}
	// The length is below 10000: its first two bytes are zero.
	for i := 0; i < len(b) && i < 2; i++ {
		if b[i] != 0 {
			return r, No
		}
	}
	if len(b) < pgHeaderLen {
		return r, More
	}
	n := int(binary.BigEndian.Uint32(b))
	code := binary.BigEndian.Uint32(b[4:])
	switch {
	case code == pgSSLRequest || code == pgGSSENCRequest:
		if n != pgRequestLen {
			return r, No
		}
		r.Encrypted = true
		return r, Match
	case code == pgCancelRequest:
		if n < pgCancelMinLen {
			return r, No
		}
		return r, Match
	case code>>16 != pgProtocolMajor3:
		return r, No
	}
	if n < pgHeaderLen+1 || n > pgMaxStartupLen {
		return r, No
	}
	if len(b) < n {
		return r, More
	}
	// Parameters: name NUL value NUL ..., then a final NUL.
	params := b[pgHeaderLen:n]
	if len(params) == 0 || params[len(params)-1] != 0 {
		r.Malformed = "startup message not terminated"
		return r, Match
	}
	params = params[:len(params)-1]
	seen := map[string]bool{}
	for len(params) > 0 {
		name, rest, ok1 := bytes.Cut(params, []byte{0})
		value, rest, ok2 := bytes.Cut(rest, []byte{0})
		if !ok1 || !ok2 || len(name) == 0 {
			r.Malformed = "malformed startup parameters"
			return r, Match
		}
		params = rest
		if seen[string(name)] {
			r.Malformed = "duplicate startup parameter " + string(name)
			return r, Match
		}
		seen[string(name)] = true
		switch string(name) {
		case "user":
			r.User = string(value)
		case "database":
			r.Database = string(value)
		}
	}
	if r.User == "" {
		// The server refuses a startup message without a user.
		r.Malformed = "no user in startup message"
	}
	return r, Match
}
