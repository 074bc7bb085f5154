package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// Verdict is the outcome of one decision.
type Verdict struct {
	// Accept is true when the request may proceed.
	Accept bool
	// Rule names the config rule that decided, e.g.
	// "services[ssh-in].policy.exec.deny[0]" or "authorized_keys no-pty".
	Rule string
	// Reason says why in words for an operator; it is never sent to the
	// client.
	Reason string
}

// Spec is the policy of one service, as plain values. The lead converts the
// config's services[].policy section into it.
type Spec struct {
	Pty   bool
	Shell bool
	// ExecAllow and ExecDeny are RE2 patterns, each compiled as ^(?:p)$
	// and matched against every simple command of the exec request's
	// shell source (see Policy.Exec), or against the command string as
	// sent when ExecWhole is set. Deny wins over allow; a command that no
	// allow pattern matches is rejected.
	ExecAllow []string
	ExecDeny  []string
	ExecWhole bool
	// ForcedCommand, when not empty, replaces every shell, exec and
	// subsystem request (OpenSSH ForceCommand).
	ForcedCommand string
	// Env holds the names of environment variables a client may set, as
	// patterns where '*' matches any run of characters and '?' one
	// character (OpenSSH AcceptEnv).
	Env []string
	// Subsystems holds the names of allowed subsystems, e.g. "sftp".
	Subsystems []string
	// ForwardLocal is the permit-open list for direct-tcpip channels,
	// with what each destination's stream may carry. An empty list denies
	// every local forward.
	ForwardLocal []Forward
	// ForwardSSH lets a local forward carry SSH (ssh -W, ProxyJump): an
	// inner session the gateway can neither decide nor record.
	ForwardSSH    bool
	ForwardRemote bool
	Agent         bool
	X11           bool
}

// Restrictions are the options of the authorized_keys line the user
// authenticated with (sshd(8) "AUTHORIZED_KEYS FILE FORMAT").
type Restrictions struct {
	NoPty             bool
	NoPortForwarding  bool
	NoAgentForwarding bool
	NoX11Forwarding   bool
	// ForcedCommand is the command="..." option, or a certificate's
	// force-command.
	ForcedCommand string
	// ForcedCommandRule names where ForcedCommand comes from, for the
	// audit (e.g. "users[alice].authorized_keys:3 command"); empty means
	// "authorized_keys command".
	ForcedCommandRule string
	// PermitOpen holds the permitopen="host:port" options; when not empty,
	// a local forward must match one of them as well as the service list.
	PermitOpen []string
}

// Rule names for authorized_keys restrictions.
const (
	ruleKeyNoPty          = "authorized_keys no-pty"
	ruleKeyNoPortForward  = "authorized_keys no-port-forwarding"
	ruleKeyNoAgentForward = "authorized_keys no-agent-forwarding"
	ruleKeyNoX11Forward   = "authorized_keys no-x11-forwarding"
	ruleKeyPermitOpen     = "authorized_keys permitopen"
	ruleKeyForcedCommand  = "authorized_keys command"
)

const (
	// maxForwardPort bounds the port of a direct-tcpip request: RFC 4254
	// §7.2 carries a uint32, TCP ports stop at 65535 (RFC 793).
	maxForwardPort = 65535
	// envNameForbidden are bytes no environment variable name may hold
	// (POSIX.1-2017 §8.1).
	envNameForbidden       = "=\x00"
	malformedEnvNameReason = "malformed variable name"
	// envOriginalCommand is set by the server from a forced command's
	// request (sshd(8) ENVIRONMENT); a client never sets it.
	envOriginalCommand = "SSH_ORIGINAL_COMMAND"
	// envGitProtocol carries git's protocol version request
	// (gitprotocol-v2(5)); maxGitProtocol bounds its value, far above
	// what git sends ("version=2").
	envGitProtocol = "GIT_PROTOCOL"
	maxGitProtocol = 256
)

// Policy is a compiled Spec for one service.
type Policy struct {
	prefix     string // "services[NAME].policy"
	pty, shell bool
	execAllow  []*regexp.Regexp
	execDeny   []*regexp.Regexp
	execWhole  bool
	// execCatchAll is set when an allow pattern matches every command:
	// the exec policy is then no allowlist.
	execCatchAll  bool
	forcedCommand string
	env           []string
	subsystems    []string
	forwardLocal  []forward
	forwardSSH    bool
	forwardRemote bool
	agent, x11    bool
}

// Compile checks s and prepares it for decisions. service is the service's
// name as written in the config; it appears in every rule name.
func Compile(service string, s Spec) (*Policy, error) {
	return CompileAt(fmt.Sprintf("services[%s].policy", service), s)
}

// CompileAt is Compile for a policy found elsewhere in the config: prefix
// is its key path ("roles[dba].policy"), the start of every rule name.
func CompileAt(prefix string, s Spec) (*Policy, error) {
	p := &Policy{
		prefix:        prefix,
		pty:           s.Pty,
		shell:         s.Shell,
		forcedCommand: s.ForcedCommand,
		execWhole:     s.ExecWhole,
		forwardRemote: s.ForwardRemote,
		forwardSSH:    s.ForwardSSH,
		agent:         s.Agent,
		x11:           s.X11,
	}
	// Allow patterns keep RE2's default, where '.' does not match a
	// newline, and deny patterns let '.' match newlines: each choice is the
	// one that rejects more, so a newline can neither sneak a second command
	// past an allow pattern nor hide one from a deny pattern.
	for i, pat := range s.ExecAllow {
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return nil, fmt.Errorf("policy: %s.exec.allow[%d]: %w", p.prefix, i, err)
		}
		p.execAllow = append(p.execAllow, re)
		p.execCatchAll = p.execCatchAll || MatchesEverything(pat)
	}
	for i, pat := range s.ExecDeny {
		re, err := regexp.Compile(`^(?s:` + pat + `)$`)
		if err != nil {
			return nil, fmt.Errorf("policy: %s.exec.deny[%d]: %w", p.prefix, i, err)
		}
		p.execDeny = append(p.execDeny, re)
	}
	for i, pat := range s.Env {
		if pat == "" || strings.ContainsAny(pat, envNameForbidden) {
			return nil, fmt.Errorf("policy: %s.env[%d]: malformed pattern %q", p.prefix, i, pat)
		}
		p.env = append(p.env, pat)
	}
	for _, name := range s.Subsystems {
		if name == "" {
			return nil, fmt.Errorf("policy: %s.subsystems: empty subsystem name", p.prefix)
		}
		p.subsystems = append(p.subsystems, name)
	}
	for i, f := range s.ForwardLocal {
		cf, err := compileForward(f, s.ForwardSSH)
		if err != nil {
			return nil, fmt.Errorf("policy: %s.forward_local[%d]: %w", p.prefix, i, err)
		}
		p.forwardLocal = append(p.forwardLocal, cf)
	}
	return p, nil
}

func (p *Policy) rule(format string, args ...any) string {
	return p.prefix + fmt.Sprintf(format, args...)
}

// Pty decides a pty-req.
func (p *Policy) Pty(restr Restrictions) Verdict {
	if restr.NoPty {
		return Verdict{Rule: ruleKeyNoPty, Reason: "pty refused by the key's no-pty option"}
	}
	return p.flag(p.pty, ".pty", "pty")
}

// Shell decides a shell request.
func (p *Policy) Shell() Verdict {
	return p.flag(p.shell, ".shell", "shell")
}

// ForwardRemote decides a tcpip-forward global request.
func (p *Policy) ForwardRemote(restr Restrictions) Verdict {
	if restr.NoPortForwarding {
		return Verdict{Rule: ruleKeyNoPortForward, Reason: "remote forwarding refused by the key's no-port-forwarding option"}
	}
	return p.flag(p.forwardRemote, ".forward_remote", "remote forwarding")
}

// Agent decides an auth-agent-req@openssh.com request.
func (p *Policy) Agent(restr Restrictions) Verdict {
	if restr.NoAgentForwarding {
		return Verdict{Rule: ruleKeyNoAgentForward, Reason: "agent forwarding refused by the key's no-agent-forwarding option"}
	}
	return p.flag(p.agent, ".agent", "agent forwarding")
}

// X11 decides an x11-req request.
func (p *Policy) X11(restr Restrictions) Verdict {
	if restr.NoX11Forwarding {
		return Verdict{Rule: ruleKeyNoX11Forward, Reason: "X11 forwarding refused by the key's no-x11-forwarding option"}
	}
	return p.flag(p.x11, ".x11", "X11 forwarding")
}

func (p *Policy) flag(on bool, key, what string) Verdict {
	if on {
		return Verdict{Accept: true, Rule: p.prefix + key, Reason: what + " enabled"}
	}
	return Verdict{Rule: p.prefix + key, Reason: what + " disabled"}
}

// Env decides an env request that sets the variable name to value.
// GIT_PROTOCOL is accepted whatever the list says, with a value in git's
// form ("version=2", colon-separated key=value words): without it git over
// SSH silently falls back to protocol v0 (gitprotocol-v2(5)).
func (p *Policy) Env(name, value string) Verdict {
	if name == "" || strings.ContainsAny(name, envNameForbidden) {
		return Verdict{Rule: p.prefix + ".env", Reason: malformedEnvNameReason}
	}
	if name == envGitProtocol {
		if !gitProtocolValue(value) {
			return Verdict{Rule: p.prefix + ".env", Reason: "malformed GIT_PROTOCOL value"}
		}
		return Verdict{Accept: true, Rule: p.prefix + ".env (GIT_PROTOCOL)", Reason: "git protocol negotiation, accepted by default"}
	}
	if name == envOriginalCommand {
		// A forced command's wrapper trusts it to hold what the client
		// asked for; only the gateway sets it (see ForcedCommand).
		return Verdict{Rule: p.prefix + ".env", Reason: "SSH_ORIGINAL_COMMAND is set by the gateway, never by the client"}
	}
	for i, pat := range p.env {
		if MatchGlob(pat, name) {
			return Verdict{Accept: true, Rule: p.rule(".env[%d]", i), Reason: "variable name matches an accepted pattern"}
		}
	}
	return Verdict{Rule: p.prefix + ".env", Reason: "variable name matches no accepted pattern"}
}

// Subsystem decides a subsystem request. The accepting rule is
// "....subsystems.NAME", after the config's map key.
func (p *Policy) Subsystem(name string) Verdict {
	for _, s := range p.subsystems {
		if s == name {
			return Verdict{Accept: true, Rule: p.rule(".subsystems.%s", name), Reason: "subsystem allowed"}
		}
	}
	return Verdict{Rule: p.prefix + ".subsystems", Reason: "subsystem not allowed"}
}

// ForwardLocal decides a direct-tcpip channel to host:port (RFC 4254 §7.2).
// An unspecified address (0.0.0.0, ::, in any spelling) is refused
// whatever the lists say. The key's no-port-forwarding option refuses it; the key's permitopen
// options, when present, must match; and the service's forward_local list
// must match. host is compared case-insensitively; an IP literal, with or
// without brackets in the list, matches the same address written any way
// (an IPv4-mapped IPv6 address matches its IPv4 form).
func (p *Policy) ForwardLocal(host string, port uint32, restr Restrictions) Verdict {
	if restr.NoPortForwarding {
		return Verdict{Rule: ruleKeyNoPortForward, Reason: "local forwarding refused by the key's no-port-forwarding option"}
	}
	if port == 0 || port > maxForwardPort || host == "" {
		return Verdict{Rule: p.prefix + ".forward_local", Reason: "malformed forwarding destination"}
	}
	if unspecifiedHost(host) {
		// Whatever the lists say ("*:5432"): the target would connect
		// to itself.
		return Verdict{Rule: p.prefix + ".forward_local", Reason: "unspecified address (0.0.0.0 or ::) refused"}
	}
	if len(restr.PermitOpen) > 0 {
		permitted := false
		for _, s := range restr.PermitOpen {
			// A permitopen entry that does not parse matches nothing.
			if hp, err := parseHostPort(s); err == nil && hp.match(host, port) {
				permitted = true
				break
			}
		}
		if !permitted {
			return Verdict{Rule: ruleKeyPermitOpen, Reason: "destination matches none of the key's permitopen options"}
		}
	}
	for i, f := range p.forwardLocal {
		if f.to.match(host, port) {
			return Verdict{Accept: true, Rule: p.rule(".forward_local[%d]", i), Reason: "destination is in the permit-open list"}
		}
	}
	return Verdict{Rule: p.prefix + ".forward_local", Reason: "destination is not in the permit-open list"}
}

// ForwardLocalPossible reports whether ForwardLocal could accept some
// destination under restr: the key allows port forwarding and the
// service's forward_local list is not empty. A certificate the gateway
// issues for the upstream login grants port forwarding only then.
func (p *Policy) ForwardLocalPossible(restr Restrictions) bool {
	return !restr.NoPortForwarding && len(p.forwardLocal) > 0
}

// ForcedCommand returns the command that replaces every shell, exec and
// subsystem request of a session, and the rule that forces it; ok is false
// when none applies. As in sshd(8) (session.c do_exec), the service's
// forced_command (sshd_config ForceCommand) beats the key's command= option
// or the certificate's force-command. A forced command is itself the
// deciding rule: the caller runs it without consulting Shell, Exec or
// Subsystem, and passes the request it replaced in SSH_ORIGINAL_COMMAND.
func (p *Policy) ForcedCommand(restr Restrictions) (cmd, rule string, ok bool) {
	switch {
	case p.forcedCommand != "":
		return p.forcedCommand, p.prefix + ".exec.forced_command", true
	case restr.ForcedCommand != "":
		rule := restr.ForcedCommandRule
		if rule == "" {
			rule = ruleKeyForcedCommand
		}
		return restr.ForcedCommand, rule, true
	}
	return "", "", false
}

// gitProtocolValue reports whether v has git's GIT_PROTOCOL form:
// colon-separated key or key=value words of letters, digits and "._-".
func gitProtocolValue(v string) bool {
	if v == "" || len(v) > maxGitProtocol {
		return false
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("=:._-", r):
		default:
			return false
		}
	}
	return true
}

// MatchGlob reports whether name matches pattern, where '*' matches any run
// of bytes and '?' exactly one, as OpenSSH's match_pattern does for
// AcceptEnv. It backtracks only to the last '*', so it runs in
// O(len(pattern)*len(name)).
func MatchGlob(pattern, name string) bool {
	pi, ni := 0, 0
	star, mark := -1, 0
	for ni < len(name) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == name[ni]):
			pi++
			ni++
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, ni
			pi++
		case star >= 0:
			mark++
			pi, ni = star+1, mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
