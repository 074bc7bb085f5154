package auth

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyLine is one accepted line of an authorized_keys file: the key and what
// its options allow. Lines that fail to parse never become a keyLine.
type keyLine struct {
	key          ssh.PublicKey
	line         int
	from         []fromPattern // nil: no from= option
	restrictions Restrictions
}

// fromPattern is one entry of a from="..." list (sshd(8) AUTHORIZED_KEYS
// FILE FORMAT): a wildcard pattern or a CIDR, optionally negated with '!'.
type fromPattern struct {
	negate   bool
	prefix   netip.Prefix // valid when the pattern is a CIDR
	wildcard string       // otherwise, matched against the address text
}

// parseKeyLine parses one non-comment line of an OpenSSH authorized_keys
// file: an optional comma-separated option list, then "type base64 [comment]".
// It refuses options it does not know or cannot enforce, as sshd does by
// skipping the whole line.
func parseKeyLine(line []byte) (keyLine, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return keyLine{}, errors.New("auth: empty line")
	}
	if bytes.ContainsAny(line, "\n\r") {
		return keyLine{}, errors.New("auth: line break inside a key line")
	}
	// A line without options starts with the key type; sshd tries that first
	// (auth2-pubkeyfile.c: auth_check_authkey_line).
	if key, _, opts, rest, err := ssh.ParseAuthorizedKey(line); err == nil && len(opts) == 0 && len(rest) == 0 {
		if first, _, _ := bytes.Cut(line, []byte(" ")); string(bytes.TrimSpace(first)) == key.Type() {
			return keyLine{key: key}, nil
		}
	}
	opts, rest, err := splitOptions(string(line))
	if err != nil {
		return keyLine{}, err
	}
	key, _, extra, remain, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return keyLine{}, fmt.Errorf("auth: bad key: %w", err)
	}
	if len(extra) != 0 || len(remain) != 0 {
		return keyLine{}, errors.New("auth: malformed key after options")
	}
	kl := keyLine{key: key}
	if err := kl.applyOptions(opts); err != nil {
		return keyLine{}, err
	}
	return kl, nil
}

// option is one parsed authorized_keys option; hasValue distinguishes
// name="" from a bare name.
type option struct {
	name     string
	value    string
	hasValue bool
}

// splitOptions reads the option list at the start of s up to the first
// unquoted blank and returns the options and the rest of the line. Values are
// double-quoted; inside quotes \" stands for a quote (sshd auth-options.c:
// opt_dequote).
func splitOptions(s string) ([]option, string, error) {
	var opts []option
	i := 0
	for {
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		if i == start {
			return nil, "", fmt.Errorf("auth: empty option at column %d", i+1)
		}
		opt := option{name: strings.ToLower(s[start:i])}
		if i < len(s) && s[i] == '=' {
			i++
			if i >= len(s) || s[i] != '"' {
				return nil, "", fmt.Errorf("auth: option %q: value must be quoted", opt.name)
			}
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) && s[i+1] == '"' {
					b.WriteByte('"')
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, "", fmt.Errorf("auth: option %q: missing end quote", opt.name)
			}
			opt.value, opt.hasValue = b.String(), true
		}
		opts = append(opts, opt)
		if i >= len(s) {
			return nil, "", errors.New("auth: options without a key")
		}
		switch s[i] {
		case ',':
			i++
		case ' ', '\t':
			return opts, strings.TrimLeft(s[i:], " \t"), nil
		default:
			return nil, "", fmt.Errorf("auth: unexpected %q after option %q", s[i], opt.name)
		}
	}
}

// applyOptions interprets opts in order, the way sshd does: "restrict"
// clears every permission and later pty, port-forwarding, agent-forwarding
// or X11-forwarding options give one back.
func (kl *keyLine) applyOptions(opts []option) error {
	r := &kl.restrictions
	for _, o := range opts {
		flag := func() error {
			if o.hasValue {
				return fmt.Errorf("auth: option %q takes no value", o.name)
			}
			return nil
		}
		valued := func() error {
			if !o.hasValue {
				return fmt.Errorf("auth: option %q needs a value", o.name)
			}
			return nil
		}
		var err error
		switch o.name {
		case "restrict":
			err = flag()
			r.NoPty, r.NoPortForwarding, r.NoAgentForwarding, r.NoX11Forwarding = true, true, true, true
		case "no-pty":
			err, r.NoPty = flag(), true
		case "pty":
			err, r.NoPty = flag(), false
		case "no-port-forwarding":
			err, r.NoPortForwarding = flag(), true
		case "port-forwarding":
			err, r.NoPortForwarding = flag(), false
		case "no-agent-forwarding":
			err, r.NoAgentForwarding = flag(), true
		case "agent-forwarding":
			err, r.NoAgentForwarding = flag(), false
		case "no-x11-forwarding":
			err, r.NoX11Forwarding = flag(), true
		case "x11-forwarding":
			err, r.NoX11Forwarding = flag(), false
		case "automation":
			err, r.Automation = flag(), true
		case "no-user-rc", "user-rc":
			// The gateway runs no ~/.ssh/rc; nothing to enforce.
			err = flag()
		case "command":
			if err = valued(); err == nil {
				if r.ForcedCommand != "" {
					err = errors.New(`auth: command="..." given twice`)
				}
				r.ForcedCommand = o.value
			}
		case "environment":
			// The gateway never sets environment variables from a key;
			// ignoring the option grants nothing.
			err = valued()
		case "from":
			if err = valued(); err == nil {
				if kl.from != nil {
					err = errors.New(`auth: from="..." given twice`)
					break
				}
				kl.from, err = parseFrom(o.value)
			}
		case "permitopen":
			if err = valued(); err == nil {
				err = checkPermitOpen(o.value)
				r.PermitOpen = append(r.PermitOpen, o.value)
			}
		default:
			return fmt.Errorf("auth: unsupported option %q", o.name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseFrom parses the pattern list of from="...".
func parseFrom(list string) ([]fromPattern, error) {
	var pats []fromPattern
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		fp := fromPattern{}
		if strings.HasPrefix(p, "!") {
			fp.negate, p = true, p[1:]
		}
		if p == "" {
			return nil, fmt.Errorf("auth: from=%q: empty pattern", list)
		}
		if strings.Contains(p, "/") {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("auth: from=%q: %w", list, err)
			}
			if pfx != pfx.Masked() {
				return nil, fmt.Errorf("auth: from=%q: %s has host bits set", list, p)
			}
			fp.prefix = pfx
		} else {
			if _, err := path.Match(p, ""); err != nil || strings.ContainsAny(p, "[]\\") {
				return nil, fmt.Errorf("auth: from=%q: bad pattern %q", list, p)
			}
			fp.wildcard = strings.ToLower(p)
		}
		pats = append(pats, fp)
	}
	return pats, nil
}

// matchFrom reports whether addr passes the from= list: some pattern must
// match and no negated pattern may (sshd match.c: match_host_and_ip). The
// gateway does not resolve names, so patterns are matched against the
// address text, as sshd does with UseDNS no.
func matchFrom(pats []fromPattern, addr netip.Addr) bool {
	addr = addr.Unmap()
	text := addr.String()
	ok := false
	for _, p := range pats {
		var m bool
		if p.prefix.IsValid() {
			m = p.prefix.Contains(addr)
		} else {
			m, _ = path.Match(p.wildcard, text)
		}
		if m && p.negate {
			return false
		}
		ok = ok || m
	}
	return ok
}

// checkPermitOpen validates permitopen="host:port"; port may be "*".
func checkPermitOpen(v string) error {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 || i == len(v)-1 {
		return fmt.Errorf("auth: permitopen=%q: want host:port", v)
	}
	if strings.ContainsAny(v, " \t,") {
		return fmt.Errorf("auth: permitopen=%q: bad character", v)
	}
	return nil
}
