package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-ssh/sluice/internal/sniff"
)

// Forward is one forward_local entry: a destination and what the stream
// to it may carry.
type Forward struct {
	// To is "host:port" where host or port may be "*", an IPv6 literal is
	// written in brackets ("[::1]:22"), and hosts compare
	// case-insensitively.
	To string
	// Protocols lists the sniff protocol names the stream may carry;
	// empty allows any (SSH only with Spec.ForwardSSH).
	Protocols []string
	// SNI and Host are patterns ('*' any run, '?' one character, case
	// ignored) one of which a TLS server_name or an HTTP Host must match;
	// DenySNI and DenyHost refuse what they match.
	SNI, Host, DenySNI, DenyHost []string
}

// forward is a compiled Forward.
type forward struct {
	to hostPort
	// protocols is what the stream may carry, empty for any: the
	// entry's protocols, else TLS (HTTP) when it has sni (host)
	// patterns.
	protocols                    []sniff.Protocol
	sni, host, denySNI, denyHost []string
}

func compileForward(f Forward, forwardSSH bool) (forward, error) {
	hp, err := parseHostPort(f.To)
	if err != nil {
		return forward{}, err
	}
	cf := forward{to: hp}
	for _, s := range f.Protocols {
		p := sniff.Protocol(s)
		if !slices.Contains(sniff.Protocols, p) {
			return forward{}, fmt.Errorf("unknown protocol %q", s)
		}
		if p == sniff.SSH && !forwardSSH {
			return forward{}, errors.New("ssh listed without forward_ssh")
		}
		cf.protocols = append(cf.protocols, p)
	}
	lower := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, strings.ToLower(strings.TrimSuffix(p, ".")))
		}
		return out
	}
	cf.sni, cf.host, cf.denySNI, cf.denyHost = lower(f.SNI), lower(f.Host), lower(f.DenySNI), lower(f.DenyHost)
	if len(cf.protocols) == 0 {
		// Name patterns without protocols allow only the protocols
		// that carry those names.
		if len(cf.sni) > 0 {
			cf.protocols = append(cf.protocols, sniff.TLS)
		}
		if len(cf.host) > 0 {
			cf.protocols = append(cf.protocols, sniff.HTTP)
		}
	}
	return cf, nil
}

// ForwardStream decides a local forward to host:port, which ForwardLocal
// accepted, by what its stream carries, as r names it from the first bytes.
// SSH is refused unless forward_ssh is set: it would be a session the
// gateway neither decides nor records. Otherwise each forward_local entry
// matching host:port is tried in order and the first that accepts decides;
// when none does, the first matching entry's refusal is the verdict.
//
// An entry with sni (host) patterns accepts only TLS (HTTP) streams unless
// its protocols say otherwise, and refuses a TLS (HTTP) stream without a
// readable name, a malformed one, or one whose first bytes ran out before
// the name (sniff.Result.Partial): such a stream cannot be decided by name.
func (p *Policy) ForwardStream(host string, port uint32, r sniff.Result) Verdict {
	if r.Protocol == sniff.SSH && !p.forwardSSH {
		return Verdict{Rule: p.prefix + ".forward_ssh", Reason: "SSH inside a forward is refused unless forward_ssh is set (it would be an unrecorded session)"}
	}
	var first *Verdict
	for i, f := range p.forwardLocal {
		if !f.to.match(host, port) {
			continue
		}
		v := f.decide(p.rule(".forward_local[%d]", i), r)
		if v.Accept {
			return v
		}
		if first == nil {
			first = &v
		}
	}
	if first == nil {
		return Verdict{Rule: p.prefix + ".forward_local", Reason: "destination is not in the permit-open list"}
	}
	return *first
}

func (f forward) decide(rule string, r sniff.Result) Verdict {
	if len(f.protocols) > 0 && !slices.Contains(f.protocols, r.Protocol) {
		return Verdict{Rule: rule + ".protocols", Reason: fmt.Sprintf("protocol %s not allowed", r.Protocol)}
	}
	if v, ok := nameRule(rule, "sni", "deny_sni", "TLS server name", f.sni, f.denySNI, r, sniff.TLS, r.SNI); !ok {
		return v
	}
	if v, ok := nameRule(rule, "host", "deny_host", "HTTP Host", f.host, f.denyHost, r, sniff.HTTP, r.Host); !ok {
		return v
	}
	return Verdict{Accept: true, Rule: rule, Reason: fmt.Sprintf("%s stream to a permitted destination", r.Protocol)}
}

// nameRule applies an entry's allow and deny patterns for the name (SNI
// or Host) of a stream of protocol proto; ok is false with the refusal.
func nameRule(rule, allowKey, denyKey, what string, allow, deny []string, r sniff.Result, proto sniff.Protocol, name string) (Verdict, bool) {
	if len(allow) == 0 && len(deny) == 0 {
		return Verdict{}, true
	}
	key := allowKey
	if len(allow) == 0 {
		key = denyKey
	}
	switch {
	case r.Protocol == sniff.Unknown && r.Partial == proto:
		return Verdict{Rule: rule + "." + key, Reason: what + " not seen within the sniffing limits"}, false
	case r.Protocol != proto:
		return Verdict{}, true
	case r.Malformed != "":
		return Verdict{Rule: rule + "." + key, Reason: "malformed " + string(proto) + ": " + r.Malformed}, false
	}
	for j, pat := range deny {
		if name != "" && MatchGlob(pat, name) {
			return Verdict{Rule: fmt.Sprintf("%s.%s[%d]", rule, denyKey, j), Reason: what + " " + name + " denied"}, false
		}
	}
	if len(allow) == 0 {
		return Verdict{}, true
	}
	for _, pat := range allow {
		if name != "" && MatchGlob(pat, name) {
			return Verdict{}, true
		}
	}
	if name == "" {
		return Verdict{Rule: rule + "." + allowKey, Reason: "no " + what}, false
	}
	return Verdict{Rule: rule + "." + allowKey, Reason: what + " " + name + " matches no pattern"}, false
}
