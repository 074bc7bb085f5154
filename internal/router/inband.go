package router

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the port of an inband target without one: the SSH port
// (RFC 4253 §4.1).
const DefaultPort = 22

// Limits of a host name (RFC 1035 §2.3.4, RFC 1123 §2.1).
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// Kinds of malformed inband names; an *InbandError unwraps to one of them.
var (
	ErrNotInband  = errors.New("router: no '+' in user name")
	ErrBadChar    = errors.New("router: forbidden character in user name")
	ErrExtraPlus  = errors.New("router: more than two '+' in user name")
	ErrBadLogin   = errors.New("router: malformed login part")
	ErrBadUser    = errors.New("router: malformed user part")
	ErrBadHost    = errors.New("router: malformed host part")
	ErrBadPort    = errors.New("router: malformed port")
	ErrEmptyField = errors.New("router: empty user, host or port")
)

// InbandError reports an SSH user name that is not a valid inband target.
type InbandError struct {
	// Name is the SSH user name as received.
	Name string
	// Err is one of the Err* kinds above.
	Err error
	// Detail says what exactly is wrong, for an operator.
	Detail string
}

func (e *InbandError) Error() string {
	return fmt.Sprintf("%v: %s in %q", e.Err, e.Detail, e.Name)
}

func (e *InbandError) Unwrap() error { return e.Err }

// GatewayUser returns the part of an SSH user name before the first '+',
// i.e. the user the gateway authenticates; a name without '+' is returned
// whole.
func GatewayUser(sshUser string) string {
	user, _, _ := strings.Cut(sshUser, "+")
	return user
}

// maxLoginLen bounds the login part: the most a Linux user name may hold
// (useradd(8), 32 characters).
const maxLoginLen = 32

// Inband is a parsed inband SSH user name.
type Inband struct {
	// User is the gateway user.
	User string
	// Host is the host as typed: an inventory name, a DNS name, an IPv4
	// address or an IPv6 address without brackets.
	Host string
	// Port is DefaultPort when HasPort is false.
	Port    uint16
	HasPort bool
	// Login is the upstream login asked for, or "".
	Login string
}

// ParseInband splits an inband SSH user name "USER+HOST[SEP PORT][+LOGIN]",
// where SEP is '_' or ':' ("alice+db1", "alice+db1+postgres",
// "bob+10.0.0.5_2222"). '_' is the separator that scp, sftp, rsync and git
// take unquoted; ':' is kept for ssh. USER is a portable user name
// ([A-Za-z0-9._-], not starting with '-'); HOST is an RFC 1123 host name,
// an IPv4 address, or an IPv6 address in brackets ("[::1]_22"), returned
// without its brackets; PORT is 1 to 65535 in decimal without sign or
// leading zeros; LOGIN is at most 32 of [A-Za-z0-9._-], not starting with
// '-'. Control, space, non-ASCII characters, '@' and a third '+' are
// refused. Errors are *InbandError.
func ParseInband(sshUser string) (Inband, error) {
	fail := func(kind error, detail string) (Inband, error) {
		return Inband{}, &InbandError{Name: sshUser, Err: kind, Detail: detail}
	}
	for i := 0; i < len(sshUser); i++ {
		// Printable ASCII without space: '!' (0x21) to '~' (0x7e).
		if c := sshUser[i]; c < '!' || c > '~' {
			return fail(ErrBadChar, fmt.Sprintf("byte 0x%02x at offset %d", c, i))
		}
	}
	if i := strings.IndexByte(sshUser, '@'); i >= 0 {
		return fail(ErrBadChar, fmt.Sprintf("'@' at offset %d", i))
	}
	user, rest, ok := strings.Cut(sshUser, "+")
	if !ok {
		return fail(ErrNotInband, "no separator")
	}
	rest, login, hasLogin := strings.Cut(rest, "+")
	if strings.Contains(login, "+") {
		return fail(ErrExtraPlus, "third '+'")
	}
	if user == "" {
		return fail(ErrEmptyField, "empty user")
	}
	if !validUser(user) {
		return fail(ErrBadUser, "user must be [A-Za-z0-9._-] not starting with '-'")
	}
	if rest == "" {
		return fail(ErrEmptyField, "empty host")
	}
	if hasLogin {
		switch {
		case login == "":
			return fail(ErrEmptyField, "empty login")
		case len(login) > maxLoginLen || !validUser(login):
			return fail(ErrBadLogin, "login must be at most 32 of [A-Za-z0-9._-] not starting with '-'")
		}
	}
	in := Inband{User: user, Port: DefaultPort, Login: login}

	var portPart string
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return fail(ErrBadHost, "unterminated '['")
		}
		hostPart := rest[1:end]
		switch after := rest[end+1:]; {
		case after == "":
		case after[0] == ':' || after[0] == '_':
			portPart, in.HasPort = after[1:], true
		default:
			return fail(ErrBadHost, "junk after ']'")
		}
		a, err := netip.ParseAddr(hostPart)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fail(ErrBadHost, "bracketed host must be an IPv6 address without zone")
		}
		in.Host = hostPart
	} else {
		if strings.Count(rest, ":")+strings.Count(rest, "_") > 1 {
			return fail(ErrBadHost, "more than one port separator (an IPv6 address must be in brackets)")
		}
		hostPart := rest
		if i := strings.IndexAny(rest, ":_"); i >= 0 {
			hostPart, portPart, in.HasPort = rest[:i], rest[i+1:], true
		}
		if hostPart == "" {
			return fail(ErrEmptyField, "empty host")
		}
		if detail := checkHostName(hostPart); detail != "" {
			return fail(ErrBadHost, detail)
		}
		in.Host = hostPart
	}

	if in.HasPort {
		if portPart == "" {
			return fail(ErrEmptyField, "empty port")
		}
		if strings.TrimLeft(portPart, "0123456789") != "" {
			return fail(ErrBadPort, "port must be decimal digits")
		}
		if portPart[0] == '0' {
			return fail(ErrBadPort, "port must be 1-65535 without leading zeros")
		}
		n, err := strconv.ParseUint(portPart, 10, 16)
		if err != nil {
			return fail(ErrBadPort, "port must be 1-65535")
		}
		in.Port = uint16(n)
	}
	return in, nil
}

func validUser(u string) bool {
	if u[0] == '-' {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isDigits(s string) bool {
	return s != "" && strings.TrimLeft(s, "0123456789") == ""
}

// checkHostName returns what is wrong with h as an RFC 1123 §2.1 host name
// or dotted-quad IPv4 address, or "" when it is fine. A name whose last
// label is all digits must be an IPv4 address (RFC 3696 §2: top-level
// domains are not all-numeric).
func checkHostName(h string) string {
	if len(h) > maxHostLen {
		return "host name longer than 253 characters"
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "empty label in host name"
		case len(l) > maxLabelLen:
			return "label longer than 63 characters"
		case l[0] == '-' || l[len(l)-1] == '-':
			return "label starts or ends with '-'"
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isAlnum(c) && c != '-' {
				return fmt.Sprintf("character %q in host name", c)
			}
		}
	}
	if isDigits(labels[len(labels)-1]) {
		if a, err := netip.ParseAddr(h); err != nil || !a.Is4() {
			return "numeric host is not an IPv4 address"
		}
	}
	return ""
}
