package config

import (
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-ssh/sluice/internal/sniff"
)

func (d *decoder) services(n *yaml.Node, key string, dst *[]Service, listens *[]listenUse) {
	*dst = []Service{}
	seen := map[string]int{}
	d.namedSeq(n, key, func(e *yaml.Node, k string) {
		s := Service{
			ConnectTimeout: Duration(defaultConnectTimeout),
			DownHostTTL:    Duration(defaultDownHostTTL),
			Upstream:       Upstream{User: "%u", ReuseIdle: 4},
			MaxChannels:    defaultMaxChannels,
			OnReload:       OnReloadFinish,
			ConsoleJoin:    JoinReadOnly,
		}
		nameLine := 0
		recordInputLine, routerLine := 0, 0
		consoleJoinLine := 0
		ok := d.mapping(e, k, []field{
			{"name", true, func(n *yaml.Node, k string) {
				if d.name(n, k, nameRE, &s.Name) {
					nameLine = n.Line
				}
			}},
			{"listen", true, func(n *yaml.Node, k string) {
				var a string
				if !d.str(n, k, &a) {
					return
				}
				if host, port, ok := d.listenAddr(n, k, a); ok {
					s.Listen = a
					*listens = append(*listens, listenUse{host, port, n.Line, k})
				}
			}},
			{"client_zones", true, func(n *yaml.Node, k string) { d.zoneList(n, k, &s.ClientZones) }},
			{"server_zones", true, func(n *yaml.Node, k string) { d.zoneList(n, k, &s.ServerZones) }},
			{"router", true, func(n *yaml.Node, k string) {
				d.router(n, k, &s.Router)
				routerLine = n.Line
			}},
			{"connect_timeout", false, func(n *yaml.Node, k string) {
				d.duration(n, k, &s.ConnectTimeout)
				if s.ConnectTimeout == 0 {
					d.errorf(n, k, "must be more than 0")
				}
			}},
			{"down_host_ttl", false, func(n *yaml.Node, k string) { d.duration(n, k, &s.DownHostTTL) }},
			{"upstream", true, func(n *yaml.Node, k string) { d.upstream(n, k, &s.Upstream) }},
			{"policy", false, func(n *yaml.Node, k string) { d.policy(n, k, &s.Policy) }},
			{"record", false, func(n *yaml.Node, k string) { d.boolean(n, k, &s.Record) }},
			{"record_input", false, func(n *yaml.Node, k string) {
				d.boolean(n, k, &s.RecordInput)
				recordInputLine = n.Line
			}},
			{"console_join", false, func(n *yaml.Node, k string) {
				v := string(s.ConsoleJoin)
				d.enum(n, k, &v, string(JoinReadOnly), string(JoinReadWrite))
				s.ConsoleJoin = JoinMode(v)
				consoleJoinLine = n.Line
			}},
			{"max_sessions", false, func(n *yaml.Node, k string) { d.intField(n, k, 0, 1<<30, &s.MaxSessions) }},
			{"max_sessions_per_user", false, func(n *yaml.Node, k string) {
				d.intField(n, k, 0, 1<<30, &s.MaxSessionsPerUser)
			}},
			{"max_channels", false, func(n *yaml.Node, k string) { d.intField(n, k, 1, 1<<16, &s.MaxChannels) }},
			{"idle_timeout", false, func(n *yaml.Node, k string) { d.duration(n, k, &s.IdleTimeout) }},
			{"on_reload", false, func(n *yaml.Node, k string) {
				v := string(s.OnReload)
				d.enum(n, k, &v, string(OnReloadEnd), string(OnReloadFinish))
				s.OnReload = OnReload(v)
			}},
			{"oidc", false, func(n *yaml.Node, k string) {
				d.boolean(n, k, &s.OIDC)
				if s.OIDC {
					d.oidcUses = append(d.oidcUses, ref{"service", s.Name, n.Line, k})
				}
			}},
			{"mfa", false, func(n *yaml.Node, k string) { d.mfa(n, k, &s.MFA) }},
			{"proxy_protocol", false, func(n *yaml.Node, k string) {
				d.mapping(n, k, []field{
					{"trusted", true, func(n *yaml.Node, k string) {
						before := len(d.errs)
						s.ProxyProtocol.Trusted = d.prefixList(n, k)
						if len(s.ProxyProtocol.Trusted) == 0 && len(d.errs) == before {
							d.errorf(n, k, "must list at least one network")
						}
					}},
				})
			}},
		})
		if !ok {
			return
		}
		if s.RecordInput && !s.Record {
			d.errorAt(recordInputLine, k+".record_input", "needs record: true")
		}
		if s.Router.TProxy && len(s.ProxyProtocol.Trusted) > 0 {
			d.errorAt(routerLine, k+".router.tproxy", "takes the destination from the connection's own address, which a PROXY header would replace: set no proxy_protocol with it")
		}
		if s.ConsoleJoin == JoinReadWrite && !s.Record {
			d.errorAt(consoleJoinLine, k+".console_join", "read_write needs record: true (operators join through the live view of the recording)")
		}
		if s.Name != "" {
			if first, dup := seen[s.Name]; dup {
				d.errorAt(nameLine, k+".name", "duplicate service name %q (first at line %d)", s.Name, first)
				return
			}
			seen[s.Name] = nameLine
		}
		*dst = append(*dst, s)
	})
	if r := d.resolve(n, key); r != nil && r.Kind == yaml.SequenceNode && len(r.Content) == 0 {
		d.errorf(n, key, "must list at least one service")
	}
}

// zoneList decodes a non-empty list of zone names, each checked later.
func (d *decoder) zoneList(n *yaml.Node, key string, dst *[]string) {
	before := len(d.errs)
	d.strList(n, key, dst, func(n *yaml.Node, k, s string) bool {
		d.refs = append(d.refs, ref{"zone", s, n.Line, k})
		return true
	})
	if len(*dst) == 0 && len(d.errs) == before {
		d.errorf(n, key, "must list at least one zone")
	}
}

func (d *decoder) prefixList(n *yaml.Node, key string) []netip.Prefix {
	ps := []netip.Prefix{}
	d.seq(n, key, func(n *yaml.Node, k string) {
		if p, ok := d.prefix(n, k); ok {
			ps = append(ps, p)
		}
	})
	return ps
}

func (d *decoder) router(n *yaml.Node, key string, r *Router) {
	before := len(d.errs)
	d.mapping(n, key, []field{
		{"inband", false, func(n *yaml.Node, k string) { d.boolean(n, k, &r.Inband) }},
		{"transparent", false, func(n *yaml.Node, k string) { d.boolean(n, k, &r.Transparent) }},
		{"tproxy", false, func(n *yaml.Node, k string) { d.boolean(n, k, &r.TProxy) }},
		{"jump", false, func(n *yaml.Node, k string) {
			if d.boolean(n, k, &r.Jump); r.Jump {
				d.jumps = append(d.jumps, ref{kind: "jump", line: n.Line, key: k})
			}
		}},
		{"directed", false, func(n *yaml.Node, k string) {
			d.strList(n, k, &r.Directed, func(n *yaml.Node, k, s string) bool {
				return d.target(n, k, s)
			})
		}},
		{"users", false, func(n *yaml.Node, k string) {
			r.Users = map[string]string{}
			d.dict(n, k, func(kn, v *yaml.Node, k string) {
				d.refs = append(d.refs, ref{"user", kn.Value, kn.Line, k})
				var s string
				if d.str(v, k, &s) && d.target(v, k, s) {
					r.Users[kn.Value] = s
				}
			})
		}},
	})
	if len(d.errs) == before && !r.Inband && !r.Jump && !r.Transparent && len(r.Directed) == 0 && len(r.Users) == 0 {
		d.errorf(n, key, "no way of routing: set inband: true, jump: true, transparent: true, directed or users")
	}
	if r.Transparent && (r.Inband || r.Jump || len(r.Directed) > 0 || len(r.Users) > 0) {
		d.errorf(n, key, "transparent routes every connection to its original destination: set no inband, jump, directed or users with it")
	}
	if r.TProxy && !r.Transparent {
		d.errorf(n, key, "tproxy is how transparent routing receives its connections: set transparent: true with it")
	}
}

func (d *decoder) upstream(n *yaml.Node, key string, u *Upstream) {
	u.UserCAType = HostKeyEd25519
	typeLine, prevLine := 0, 0
	ok := d.mapping(n, key, []field{
		{"user", false, func(n *yaml.Node, k string) {
			var s string
			if !d.str(n, k, &s) {
				return
			}
			for i := 0; i < len(s); i++ {
				if s[i] != '%' {
					continue
				}
				if i+1 == len(s) || (s[i+1] != 'u' && s[i+1] != '%') {
					d.errorf(n, k, "bad user %q: only %%u and %%%% may follow %%", s)
					return
				}
				i++
			}
			u.User = s
		}},
		{"identity", false, func(n *yaml.Node, k string) { d.path(n, k, &u.Identity) }},
		{"password", false, func(n *yaml.Node, k string) { d.str(n, k, &u.Password) }},
		{"user_ca", false, func(n *yaml.Node, k string) { d.path(n, k, &u.UserCA) }},
		{"user_ca_type", false, func(n *yaml.Node, k string) {
			v := string(u.UserCAType)
			d.enum(n, k, &v, string(HostKeyEd25519), string(HostKeyECDSA), string(HostKeyRSA))
			u.UserCAType = HostKeyType(v)
			typeLine = n.Line
		}},
		{"user_ca_previous", false, func(n *yaml.Node, k string) {
			d.path(n, k, &u.UserCAPrevious)
			prevLine = n.Line
		}},
		{"known_hosts", true, func(n *yaml.Node, k string) { d.path(n, k, &u.KnownHosts) }},
		{"reuse", false, func(n *yaml.Node, k string) { d.duration(n, k, &u.Reuse) }},
		{"reuse_idle", false, func(n *yaml.Node, k string) { d.intField(n, k, 1, reuseIdleMax, &u.ReuseIdle) }},
	})
	if !ok || u.UserCA != "" {
		if ok && u.UserCAPrevious == u.UserCA {
			d.errorAt(prevLine, key+".user_ca_previous", "names the same file as user_ca")
		}
		return
	}
	if typeLine != 0 {
		d.errorAt(typeLine, key+".user_ca_type", "needs user_ca")
	}
	if prevLine != 0 {
		d.errorAt(prevLine, key+".user_ca_previous", "needs user_ca")
	}
}

// reuseIdleMax bounds upstream.reuse_idle: a service keeps at most 256
// idle upstream connections in all (internal/sshproxy).
const reuseIdleMax = 256

// policy decodes a service policy; keys left out deny.
func (d *decoder) policy(n *yaml.Node, key string, p *Policy) {
	p.Exec.Match = ExecMatchCommands
	type at struct {
		n *yaml.Node
		k string
	}
	var sshForwards []at // forward_local entries that list ssh
	d.mapping(n, key, []field{
		{"pty", false, func(n *yaml.Node, k string) { d.boolean(n, k, &p.PTY) }},
		{"shell", false, func(n *yaml.Node, k string) { d.boolean(n, k, &p.Shell) }},
		{"exec", false, func(n *yaml.Node, k string) {
			d.mapping(n, k, []field{
				{"allow", false, func(n *yaml.Node, k string) { p.Exec.Allow = d.patterns(n, k, false) }},
				{"deny", false, func(n *yaml.Node, k string) { p.Exec.Deny = d.patterns(n, k, true) }},
				{"forced_command", false, func(n *yaml.Node, k string) { d.str(n, k, &p.Exec.ForcedCommand) }},
				{"match", false, func(n *yaml.Node, k string) { d.enum(n, k, &p.Exec.Match, ExecMatchCommands, ExecMatchWhole) }},
			})
		}},
		{"env", false, func(n *yaml.Node, k string) {
			d.strList(n, k, &p.Env, func(n *yaml.Node, k, s string) bool {
				if _, err := path.Match(s, ""); err != nil || strings.Contains(s, "=") {
					d.errorf(n, k, "bad pattern %q: want a variable name or a glob like LC_*", s)
					return false
				}
				return true
			})
		}},
		{"subsystems", false, func(n *yaml.Node, k string) {
			p.Subsystems = map[string]Subsystem{}
			d.dict(n, k, func(kn, v *yaml.Node, k string) {
				if !nameRE.MatchString(kn.Value) {
					d.errorf(kn, k, "bad subsystem name %q", kn.Value)
					return
				}
				if sub, ok := d.subsystem(v, k); ok {
					p.Subsystems[kn.Value] = sub
				}
			})
		}},
		{"forward_local", false, func(n *yaml.Node, k string) {
			p.ForwardLocal = []Forward{}
			d.seq(n, k, func(n *yaml.Node, k string) {
				if f, ok := d.forward(n, k); ok {
					p.ForwardLocal = append(p.ForwardLocal, f)
					if slices.Contains(f.Protocols, string(sniff.SSH)) {
						sshForwards = append(sshForwards, at{n, k})
					}
				}
			})
		}},
		{"forward_ssh", false, func(n *yaml.Node, k string) { d.boolean(n, k, &p.ForwardSSH) }},
		{"forward_remote", false, func(n *yaml.Node, k string) { d.boolean(n, k, &p.ForwardRemote) }},
		{"agent", false, func(n *yaml.Node, k string) { d.boolean(n, k, &p.Agent) }},
		{"x11", false, func(n *yaml.Node, k string) { d.boolean(n, k, &p.X11) }},
	})
	for _, e := range sshForwards {
		if !p.ForwardSSH {
			d.errorf(e.n, e.k+".protocols", "ssh inside a forward needs forward_ssh: true")
		}
	}
	if w := transferLeak(p); w != "" {
		d.warnf(n, key, "%s", w)
	}
}

// patterns decodes exec patterns; deny says they are deny patterns, for
// the warnings of patternWarnings.
func (d *decoder) patterns(n *yaml.Node, key string, deny bool) []Pattern {
	ps := []Pattern{}
	d.seq(n, key, func(n *yaml.Node, k string) {
		s, ok := d.scalar(n, k, "a pattern")
		if !ok {
			return
		}
		// The bare pattern is compiled first so that errors quote what
		// the user wrote, and so that "a)|(b" cannot escape the anchors.
		if _, err := regexp.Compile(s.Value); err != nil {
			d.errorf(n, k, "bad pattern: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			return
		}
		ps = append(ps, Pattern{Text: s.Value, Re: regexp.MustCompile("^(?:" + s.Value + ")$")})
		for _, w := range patternWarnings(s.Value, deny) {
			d.warnf(n, k, "%s", w)
		}
	})
	return ps
}

// DefaultMaxOutstanding is the default of an SFTP channel's
// max_outstanding: eight times the 64 requests OpenSSH's sftp keeps in
// flight (sftp -R) and pkg/sftp's default concurrency.
const DefaultMaxOutstanding = 512

func (d *decoder) subsystem(n *yaml.Node, key string) (Subsystem, bool) {
	sub := Subsystem{
		AllowUpload: true, AllowDownload: true, AllowRemove: true, AllowRename: true,
		AllowMkdir: true, AllowSymlink: true, AllowSetstat: true, ContentHash: true,
		MaxOutstanding: DefaultMaxOutstanding,
	}
	type set struct {
		line int
		key  string
	}
	writes := map[string]set{} // write permissions set to true explicitly
	symlinkSet := false
	write := func(name string, dst *bool) field {
		return field{name, false, func(n *yaml.Node, k string) {
			d.boolean(n, k, dst)
			if *dst {
				writes[name] = set{n.Line, k}
			}
		}}
	}
	ok := d.mapping(n, key, []field{
		{"read_only", false, func(n *yaml.Node, k string) { d.boolean(n, k, &sub.ReadOnly) }},
		write("allow_upload", &sub.AllowUpload),
		{"allow_download", false, func(n *yaml.Node, k string) { d.boolean(n, k, &sub.AllowDownload) }},
		{"allow_paths", false, func(n *yaml.Node, k string) { d.strList(n, k, &sub.AllowPaths, d.pathPattern) }},
		{"deny_paths", false, func(n *yaml.Node, k string) { d.strList(n, k, &sub.DenyPaths, d.pathPattern) }},
		{"max_upload_size", false, func(n *yaml.Node, k string) {
			d.integer(n, k, 0, 1<<62, &sub.MaxUploadSize)
		}},
		write("allow_remove", &sub.AllowRemove),
		write("allow_rename", &sub.AllowRename),
		write("allow_mkdir", &sub.AllowMkdir),
		{"allow_symlink", false, func(n *yaml.Node, k string) {
			symlinkSet = true
			d.boolean(n, k, &sub.AllowSymlink)
			if sub.AllowSymlink {
				writes["allow_symlink"] = set{n.Line, k}
			}
		}},
		write("allow_setstat", &sub.AllowSetstat),
		{"content_hash", false, func(n *yaml.Node, k string) { d.boolean(n, k, &sub.ContentHash) }},
		{"max_outstanding", false, func(n *yaml.Node, k string) { d.intField(n, k, 1, 65536, &sub.MaxOutstanding) }},
	})
	if !ok {
		return sub, false
	}
	if !symlinkSet && (len(sub.AllowPaths) > 0 || len(sub.DenyPaths) > 0) {
		// Links are off by default under path rules: a link swapped
		// between the proxy's check and the server's use is the one way
		// around them that the proxy cannot close (docs/security.md).
		sub.AllowSymlink = false
	}
	if sub.ReadOnly {
		for _, name := range []string{"allow_upload", "allow_remove", "allow_rename", "allow_mkdir", "allow_symlink", "allow_setstat"} {
			if s, ok := writes[name]; ok {
				d.errorAt(s.line, s.key, "contradicts read_only: true")
			}
		}
	}
	return sub, true
}

// pathPattern checks an allow_paths or deny_paths entry: a glob in
// path.Match syntax.
func (d *decoder) pathPattern(n *yaml.Node, key, s string) bool {
	if _, err := path.Match(s, ""); err != nil {
		d.errorf(n, key, "bad path pattern %q", s)
		return false
	}
	return true
}

// dict decodes a mapping with free-form keys, reporting duplicates.
func (d *decoder) dict(n *yaml.Node, key string, each func(k, v *yaml.Node, key string)) {
	use := n
	if n = d.resolve(n, key); n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(use, key, "want a mapping, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i], key)
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) || k.Value == "" {
			d.errorf(n.Content[i], key, "want a name, got %s", describe(k))
			continue
		}
		fkey := joinKey(key, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, fkey, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		each(k, n.Content[i+1], fkey)
	}
}

// listenAddr checks an address to listen on: an IP address, localhost or
// nothing (all addresses), a colon and a port (0 = any free port).
func (d *decoder) listenAddr(n *yaml.Node, key, s string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		d.errorf(n, key, "bad address %q: want host:port", s)
		return "", "", false
	}
	if _, err := parseUint(port, 65535); err != nil {
		d.errorf(n, key, "bad address %q: want a port from 0 to 65535", s)
		return "", "", false
	}
	if host != "" && host != "localhost" {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			d.errorf(n, key, "bad address %q: want an IP address, localhost or nothing before the port", s)
			return "", "", false
		}
		host = a.Unmap().String()
	}
	return host, port, true
}

// hostRE is what may name a target host: a DNS name or an address.
var hostRE = regexp.MustCompile(`^[a-zA-Z0-9_]([a-zA-Z0-9_.-]*[a-zA-Z0-9_.])?$`)

// target checks a host:port to connect to.
func (d *decoder) target(n *yaml.Node, key, s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		var p int
		if p, err = parseUint(port, 65535); err == nil && p == 0 {
			err = strconv.ErrRange
		}
	}
	if err != nil || !validHost(host) {
		d.errorf(n, key, "bad target %q: want host:port with a port from 1 to 65535", s)
		return false
	}
	return true
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return hostRE.MatchString(h)
}

// forward decodes a forward_local entry: "host:port", or a mapping whose
// "to" is one and whose other keys say what the stream may carry.
func (d *decoder) forward(n *yaml.Node, key string) (Forward, bool) {
	var f Forward
	if r := d.resolve(n, key); r == nil || r.Kind != yaml.MappingNode {
		hp, ok := d.forwardPattern(n, key)
		f.To = hp
		return f, ok
	}
	ok := true
	globs := func(dst *[]string) func(n *yaml.Node, k string) {
		return func(n *yaml.Node, k string) {
			d.strList(n, k, dst, func(n *yaml.Node, k, s string) bool {
				if !nameGlobRE.MatchString(s) {
					d.errorf(n, k, "bad host pattern %q: want a host name where * matches any run and ? one character", s)
					ok = false
					return false
				}
				return true
			})
			for i, s := range *dst {
				(*dst)[i] = strings.ToLower(strings.TrimSuffix(s, "."))
			}
		}
	}
	ok = d.mapping(n, key, []field{
		{"to", true, func(n *yaml.Node, k string) {
			hp, good := d.forwardPattern(n, k)
			f.To, ok = hp, ok && good
		}},
		{"protocols", false, func(n *yaml.Node, k string) {
			d.strList(n, k, &f.Protocols, func(n *yaml.Node, k, s string) bool {
				if !slices.Contains(sniff.Protocols, sniff.Protocol(s)) {
					d.errorf(n, k, "unknown protocol %q: want one of %v", s, sniff.Protocols)
					ok = false
					return false
				}
				return true
			})
		}},
		{"sni", false, globs(&f.SNI)},
		{"host", false, globs(&f.Host)},
		{"deny_sni", false, globs(&f.DenySNI)},
		{"deny_host", false, globs(&f.DenyHost)},
	}) && ok
	if ok && len(f.Protocols) > 0 {
		for _, w := range []struct {
			proto string
			names int
			key   string
		}{{string(sniff.TLS), len(f.SNI) + len(f.DenySNI), "sni and deny_sni"}, {string(sniff.HTTP), len(f.Host) + len(f.DenyHost), "host and deny_host"}} {
			if w.names > 0 && !slices.Contains(f.Protocols, w.proto) {
				d.warnf(n, key, "%s never apply: protocols does not list %s", w.key, w.proto)
			}
		}
	}
	return f, ok
}

// nameGlobRE is what an sni or host pattern may hold.
var nameGlobRE = regexp.MustCompile(`^[a-zA-Z0-9_*?]([a-zA-Z0-9_.*?-]*[a-zA-Z0-9_*?])?\.?$`)

// forwardPattern decodes a forward_local destination: host:port where
// either may be "*".
func (d *decoder) forwardPattern(n *yaml.Node, key string) (HostPort, bool) {
	var s string
	if !d.str(n, key, &s) {
		return HostPort{}, false
	}
	host, port, err := net.SplitHostPort(s)
	hp := HostPort{Host: host}
	if err == nil && port != "*" {
		if hp.Port, err = parseUint(port, 65535); err == nil && hp.Port == 0 {
			err = strconv.ErrRange
		}
	}
	if err != nil || (host != "*" && !validHost(host)) {
		d.errorf(n, key, "bad forward %q: want host:port, where host or port may be *", s)
		return HostPort{}, false
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap().IsUnspecified() {
		// The policy refuses such requests whatever the list says.
		d.errorf(n, key, "bad forward %q: %s names no host (the target would connect to itself)", s, host)
		return HostPort{}, false
	}
	return hp, true
}

// parseUint parses a decimal number of at most max, digits only.
func parseUint(s string, max int) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > max {
		return 0, strconv.ErrRange
	}
	return v, nil
}
