package sniff

import (
	"bytes"
	"net"
	"strings"
)

// maxMethodLen bounds an HTTP method: the longest registered one
// (UPDATEREDIRECTREF, IANA HTTP Method Registry) has 17 letters.
const maxMethodLen = 24

// parseHTTP recognises an HTTP/1.x request (RFC 9112 §3): a request line
// "METHOD SP request-target SP HTTP/1.x", then header lines up to an empty
// line, with exactly one Host (RFC 9112 §3.2). Lines end in CRLF or a bare
// LF (RFC 9112 §2.2 lets a recipient accept LF).
func parseHTTP(b []byte) (Result, Status) {
	r := Result{Protocol: HTTP}
	// The method first, so that other protocols are told apart without
	// a scan of everything held: an upper-case token and a space.
	head := b[:min(len(b), maxMethodLen+1)]
	sp := bytes.IndexByte(head, ' ')
	switch {
	case sp == 0, sp < 0 && (len(head) > maxMethodLen || !upperToken(head)), sp > 0 && !upperToken(head[:sp]):
		return r, No
	}
	line, rest, ok := cutLine(b)
	if !ok {
		return r, More
	}
	method, target, version, ok := requestLine(line)
	if !ok {
		return r, No
	}
	r.Method = method
	if version != "HTTP/1.1" && version != "HTTP/1.0" {
		r.Malformed = "unsupported HTTP version " + version
		return r, Match
	}
	var hosts []string
	for {
		line, next, ok := cutLine(rest)
		if !ok {
			return r, More
		}
		rest = next
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 9112 §5.2: obs-fold; we reject rather than unfold.
			r.Malformed = "folded header line"
			return r, Match
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 || !token(name) {
			// RFC 9112 §5.1: no whitespace between name and colon.
			r.Malformed = "malformed header line"
			return r, Match
		}
		if strings.EqualFold(string(name), "host") {
			hosts = append(hosts, strings.Trim(string(value), " \t"))
		}
	}
	switch {
	case len(hosts) > 1:
		r.Malformed = "more than one Host header"
		return r, Match
	case len(hosts) == 0 && version == "HTTP/1.1":
		r.Malformed = "no Host header"
		return r, Match
	}
	var host string
	if len(hosts) == 1 {
		h, ok := hostOnly(hosts[0])
		if !ok {
			r.Malformed = "malformed Host header"
			return r, Match
		}
		host = h
	}
	// RFC 9112 §3.2.2: an absolute-form target's authority overrides Host;
	// one that disagrees with Host cannot be decided by either.
	if i := strings.Index(target, "://"); i > 0 && target[0] != '/' {
		auth := target[i+3:]
		if j := strings.IndexAny(auth, "/?#"); j >= 0 {
			auth = auth[:j]
		}
		h, ok := hostOnly(auth)
		if !ok || (host != "" && h != host) {
			r.Malformed = "request target disagrees with Host"
			return r, Match
		}
		host = h
	}
	r.Host = host
	return r, Match
}

// cutLine splits b after its first line; ok is false when b holds no
// line end yet. A CR anywhere but before the LF makes no line.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line = bytes.TrimSuffix(b[:i], []byte{'\r'})
	return line, b[i+1:], true
}

// requestLine splits "METHOD SP target SP version" (RFC 9112 §3).
func requestLine(line []byte) (method, target, version string, ok bool) {
	parts := strings.Split(string(line), " ")
	if len(parts) != 3 || parts[0] == "" || len(parts[0]) > maxMethodLen || !upperToken([]byte(parts[0])) || parts[1] == "" ||
		!strings.HasPrefix(parts[2], "HTTP/") || strings.ContainsAny(parts[1], "\r\t") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// hostOnly returns the host of a Host value or authority ("name",
// "name:port", "[v6]:port", no userinfo), lower case.
func hostOnly(v string) (string, bool) {
	if v == "" || strings.ContainsAny(v, "@ \t") {
		return "", false
	}
	h := v
	if sh, port, err := net.SplitHostPort(v); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", false
		}
		h = sh
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		h = v[1 : len(v)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), true
	}
	return dnsName(h)
}

// upperToken reports whether b is a non-empty run of upper-case letters
// (every registered HTTP method is one).
func upperToken(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// token reports whether b is an RFC 9110 §5.6.2 token.
func token(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
