package config

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-ssh/sluice/internal/zone"
)

// Names of gateways, zones, services, groups and subsystems appear in
// session ids (GATEWAY/SERVICE:INSTANCE, see DESIGN.md) and file names,
// so they are kept to a safe alphabet.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// User names also allow "@"; "+" is excluded because inband routing splits
// USER+HOST on it.
var userNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.@-]+$`)

// Defaults; docs/config.md cites the source of each.
const (
	defaultStateDir             = "./state"
	defaultLoginGraceTime       = 120 * time.Second // OpenSSH LoginGraceTime
	defaultMaxAuthTries         = 6                 // OpenSSH MaxAuthTries
	defaultPerSourceMaxStartups = 5
	defaultDrainTimeout         = 30 * time.Second
	// minFleetLease: heartbeats come every third of the lease; below 3 s
	// a loaded store's round trip could make a live node look dead.
	minFleetLease             = 3 * time.Second
	defaultConnectTimeout     = 10 * time.Second
	defaultDownHostTTL        = 30 * time.Second
	defaultMaxChannels        = 10 // OpenSSH MaxSessions
	defaultQueueSize          = 1024
	defaultAuditProbeInterval = 5 * time.Second
	minAuditProbeInterval     = 100 * time.Millisecond
	// defaultConsoleSessionTimeout is one working day of a console login.
	defaultConsoleSessionTimeout = 12 * time.Hour
)

// defaultMaxStartups is OpenSSH's MaxStartups default, 10:30:100.
var defaultMaxStartups = MaxStartups{Start: 10, Rate: 30, Full: 100}

// listenUse is one listening address, checked for clashes after decoding.
type listenUse struct {
	host, port string
	line       int
	key        string
}

// decodeFile decodes a whole file. The result is meaningless if d.errs is
// not empty.
func (d *decoder) decodeFile(data []byte) *Config {
	c := &Config{
		Path: d.file,
		Gateway: Gateway{
			HostKeyTypes:         []HostKeyType{HostKeyEd25519},
			LoginGraceTime:       Duration(defaultLoginGraceTime),
			MaxAuthTries:         defaultMaxAuthTries,
			MaxStartups:          defaultMaxStartups,
			PerSourceMaxStartups: defaultPerSourceMaxStartups,
			DrainTimeout:         Duration(defaultDrainTimeout),
			Log:                  Log{Format: LogText, Level: slog.LevelInfo},
		},
		TrustedUserCAKeys: []string{},
		Hosts:             []Host{},
		Roles:             []Role{},
		Audit:             Audit{Sink: "sqlite", QueueSize: defaultQueueSize, OnFailure: FailClosed, ProbeInterval: Duration(defaultAuditProbeInterval)},
		Record:            Record{OnFailure: FailClosed, MaxBytesPerStream: DefaultMaxBytesPerStream},
		Console:           Console{SessionTimeout: Duration(defaultConsoleSessionTimeout)},
	}
	root := d.root(data)
	if root == nil {
		if len(d.errs) == 0 {
			d.errorAt(1, "", "empty file: want a mapping with at least gateway and services")
		}
		return c
	}
	var listens []listenUse
	var credless []ref // users with no credential of their own
	d.mapping(root, "", []field{
		{"gateway", true, func(n *yaml.Node, k string) { d.gateway(n, k, &c.Gateway, &listens) }},
		{"zones", false, func(n *yaml.Node, k string) { d.zones(n, k, &c.Zones) }},
		{"users", false, func(n *yaml.Node, k string) { d.users(n, k, &c.Users, &credless) }},
		{"trusted_user_ca_keys", false, func(n *yaml.Node, k string) {
			d.strList(n, k, &c.TrustedUserCAKeys, nil)
			for i, p := range c.TrustedUserCAKeys {
				c.TrustedUserCAKeys[i] = d.abs(p)
			}
		}},
		{"services", true, func(n *yaml.Node, k string) { d.services(n, k, &c.Services, &listens) }},
		{"hosts", false, func(n *yaml.Node, k string) { d.hosts(n, k, &c.Hosts) }},
		{"roles", false, func(n *yaml.Node, k string) { d.roles(n, k, &c.Roles) }},
		{"audit", false, func(n *yaml.Node, k string) { d.audit(n, k, &c.Audit) }},
		{"record", false, func(n *yaml.Node, k string) { d.record(n, k, &c.Record) }},
		{"console", false, func(n *yaml.Node, k string) { d.console(n, k, &c.Console, &listens) }},
		{"oidc", false, func(n *yaml.Node, k string) { c.OIDC = d.oidc(n, k) }},
	})
	if c.Gateway.Fleet.Lease > 0 && !strings.HasPrefix(c.Audit.Sink, "postgres") {
		d.errorAt(1, "gateway.fleet", "gateway.fleet needs audit.sink postgres://...: the fleet's registry lives in the shared store")
	}
	if (c.Console.Cert == "") != (c.Console.Key == "") {
		d.errorAt(1, "console", "console.cert and console.key go together: set both or neither")
	}

	d.checkRefs()
	d.checkMFA(c)
	if len(c.Roles) == 0 {
		for _, j := range d.jumps {
			d.errorAt(j.line, j.key, "jump needs roles: a jump reaches the inventory hosts a role grants")
		}
	}
	d.checkParents(c.Zones)
	checkListens(d, listens)
	d.checkOIDC(c)
	if len(c.TrustedUserCAKeys) == 0 && c.OIDC == nil {
		for _, u := range credless {
			d.errorAt(u.line, u.key, "user %q cannot log in: set authorized_keys or password_hash, or list trusted_user_ca_keys", u.name)
		}
	}
	d.applyPathDefaults(c)
	return c
}

// applyPathDefaults fills in the defaults that live under state_dir.
func (d *decoder) applyPathDefaults(c *Config) {
	if c.Gateway.StateDir == "" {
		c.Gateway.StateDir = d.abs(defaultStateDir)
	}
	state := c.Gateway.StateDir
	if c.Gateway.Admin.Socket == "" {
		c.Gateway.Admin.Socket = filepath.Join(state, "admin.sock")
	}
	if c.Record.Dir == "" {
		c.Record.Dir = filepath.Join(state, "recordings")
	}
}

// name decodes a name that must match re.
func (d *decoder) name(n *yaml.Node, key string, re *regexp.Regexp, dst *string) bool {
	var s string
	if !d.str(n, key, &s) {
		return false
	}
	if !re.MatchString(s) {
		extra := "_ . -"
		if re == userNameRE {
			extra = "_ . @ -"
		}
		d.errorf(n, key, "bad name %q: want letters, digits and %s only", s, extra)
		return false
	}
	*dst = s
	return true
}

func (d *decoder) gateway(n *yaml.Node, key string, g *Gateway, listens *[]listenUse) {
	d.mapping(n, key, []field{
		{"name", true, func(n *yaml.Node, k string) { d.name(n, k, nameRE, &g.Name) }},
		{"state_dir", false, func(n *yaml.Node, k string) { d.path(n, k, &g.StateDir) }},
		{"host_key_types", false, func(n *yaml.Node, k string) {
			before := len(d.errs)
			var types []string
			d.strList(n, k, &types, func(n *yaml.Node, k, s string) bool {
				switch HostKeyType(s) {
				case HostKeyEd25519, HostKeyRSA, HostKeyECDSA:
				default:
					d.errorf(n, k, "bad value %q: want one of ed25519, rsa, ecdsa", s)
					return false
				}
				if slices.Contains(types, s) {
					d.errorf(n, k, "%s listed twice", s)
					return false
				}
				return true
			})
			g.HostKeyTypes = g.HostKeyTypes[:0]
			for _, t := range types {
				g.HostKeyTypes = append(g.HostKeyTypes, HostKeyType(t))
			}
			if len(g.HostKeyTypes) == 0 && len(d.errs) == before {
				d.errorf(n, k, "must list at least one key type")
			}
		}},
		{"login_grace_time", false, func(n *yaml.Node, k string) { d.duration(n, k, &g.LoginGraceTime) }},
		{"max_auth_tries", false, func(n *yaml.Node, k string) { d.intField(n, k, 1, 1000, &g.MaxAuthTries) }},
		{"max_startups", false, func(n *yaml.Node, k string) { d.maxStartups(n, k, &g.MaxStartups) }},
		{"per_source_max_startups", false, func(n *yaml.Node, k string) {
			d.intField(n, k, 0, 1<<20, &g.PerSourceMaxStartups)
		}},
		{"auth_penalty", false, func(n *yaml.Node, k string) { d.duration(n, k, &g.AuthPenalty) }},
		{"drain_timeout", false, func(n *yaml.Node, k string) { d.duration(n, k, &g.DrainTimeout) }},
		{"drain_delay", false, func(n *yaml.Node, k string) { d.duration(n, k, &g.DrainDelay) }},
		{"fleet", false, func(n *yaml.Node, k string) {
			d.mapping(n, k, []field{
				{"lease", true, func(n *yaml.Node, k string) {
					d.duration(n, k, &g.Fleet.Lease)
					if g.Fleet.Lease.Std() < minFleetLease {
						d.errorf(n, k, "lease %s is below the minimum %s", g.Fleet.Lease, Duration(minFleetLease))
					}
				}},
			})
		}},
		{"log", false, func(n *yaml.Node, k string) {
			d.mapping(n, k, []field{
				{"format", false, func(n *yaml.Node, k string) {
					s := string(g.Log.Format)
					d.enum(n, k, &s, string(LogText), string(LogJSON))
					g.Log.Format = LogFormat(s)
				}},
				{"level", false, func(n *yaml.Node, k string) {
					levels := map[string]slog.Level{
						"debug": slog.LevelDebug, "info": slog.LevelInfo,
						"warn": slog.LevelWarn, "error": slog.LevelError,
					}
					var s string
					d.enum(n, k, &s, "debug", "info", "warn", "error")
					if l, ok := levels[s]; ok {
						g.Log.Level = l
					}
				}},
			})
		}},
		{"admin", false, func(n *yaml.Node, k string) {
			d.mapping(n, k, []field{
				{"listen", false, func(n *yaml.Node, k string) {
					var s string
					if !d.str(n, k, &s) {
						return
					}
					host, port, ok := d.listenAddr(n, k, s)
					if !ok {
						return
					}
					if a, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !a.IsLoopback()) {
						d.errorf(n, k, "address %q is not loopback: want 127.0.0.1, [::1] or localhost", s)
						return
					}
					g.Admin.Listen = s
					*listens = append(*listens, listenUse{host, port, n.Line, k})
				}},
				{"socket", false, func(n *yaml.Node, k string) { d.path(n, k, &g.Admin.Socket) }},
			})
		}},
	})
}

// maxStartups decodes OpenSSH's "start:rate:full" or a single "start".
func (d *decoder) maxStartups(n *yaml.Node, key string, dst *MaxStartups) {
	var s string
	if !d.str(n, key, &s) {
		return
	}
	bad := func(why string) {
		d.errorf(n, key, "bad value %q: %s", s, why)
	}
	parts := strings.Split(s, ":")
	if len(parts) != 1 && len(parts) != 3 {
		bad(`want "start:rate:full" or "start"`)
		return
	}
	var v [3]int
	for i, p := range parts {
		x, err := parseUint(p, 1<<20)
		if err != nil {
			bad(`want "start:rate:full" of whole numbers`)
			return
		}
		v[i] = x
	}
	m := MaxStartups{Start: v[0], Rate: v[1], Full: v[2]}
	if len(parts) == 1 {
		m = MaxStartups{Start: v[0], Rate: 100, Full: v[0]}
	}
	switch {
	case m.Start < 1:
		bad("start must be at least 1")
	case m.Rate < 1 || m.Rate > 100:
		bad("rate must be a percentage from 1 to 100")
	case m.Full < m.Start:
		bad("full must not be below start")
	default:
		*dst = m
	}
}

func (d *decoder) zones(n *yaml.Node, key string, dst *[]Zone) {
	type netUse struct {
		zone string
		line int
		key  string
	}
	owners := map[netip.Prefix]netUse{}
	*dst = []Zone{}
	d.namedSeq(n, key, func(e *yaml.Node, k string) {
		var z Zone
		nameLine := 0
		var nets []netUse // key and line of each entry of z.Networks
		ok := d.mapping(e, k, []field{
			{"name", true, func(n *yaml.Node, k string) {
				if d.name(n, k, nameRE, &z.Name) {
					nameLine = n.Line
				}
			}},
			{"parent", false, func(n *yaml.Node, k string) {
				if d.name(n, k, nameRE, &z.Parent) {
					d.refs = append(d.refs, ref{"zone", z.Parent, n.Line, k})
				}
			}},
			{"networks", false, func(n *yaml.Node, k string) {
				z.Networks = []netip.Prefix{}
				d.seq(n, k, func(n *yaml.Node, k string) {
					if p, ok := d.prefix(n, k); ok {
						z.Networks = append(z.Networks, p)
						nets = append(nets, netUse{line: n.Line, key: k})
					}
				})
			}},
		})
		if !ok || z.Name == "" {
			return
		}
		if first, dup := d.zoneLines[z.Name]; dup {
			d.errorAt(nameLine, k+".name", "duplicate zone name %q (first at line %d)", z.Name, first)
			return
		}
		d.zoneLines[z.Name] = nameLine
		for i, p := range z.Networks {
			if o, dup := owners[p]; dup {
				if o.zone == z.Name {
					d.errorAt(nets[i].line, nets[i].key, "network %s listed twice in zone %q", p, z.Name)
				} else {
					d.errorAt(nets[i].line, nets[i].key, "network %s is already in zone %q (line %d)", p, o.zone, o.line)
				}
				continue
			}
			owners[p] = netUse{zone: z.Name, line: nets[i].line}
		}
		*dst = append(*dst, z)
	})
}

// prefix decodes a network with zone.ParsePrefix, the one parser of
// networks: a CIDR prefix or a bare address (a host), host bits not set,
// IPv4-mapped IPv6 unmapped to IPv4.
func (d *decoder) prefix(n *yaml.Node, key string) (netip.Prefix, bool) {
	var s string
	if !d.str(n, key, &s) {
		return netip.Prefix{}, false
	}
	p, err := zone.ParsePrefix(s)
	if err != nil {
		d.errorf(n, key, "%s", strings.TrimPrefix(err.Error(), "zone: "))
		return netip.Prefix{}, false
	}
	return p, true
}

// checkParents reports zones whose parent chain loops, once per loop.
func (d *decoder) checkParents(zones []Zone) {
	parent := map[string]string{}
	for _, z := range zones {
		parent[z.Name] = z.Parent
	}
	reported := map[string]bool{}
	for _, z := range zones {
		chain := []string{z.Name}
		for cur := z.Parent; cur != ""; cur = parent[cur] {
			if i := slices.Index(chain, cur); i >= 0 {
				loop := append(chain[i:], cur)
				if !slices.ContainsFunc(loop, func(s string) bool { return reported[s] }) {
					for _, s := range loop {
						reported[s] = true
					}
					d.errorAt(d.zoneLines[loop[0]], "zones["+loop[0]+"].parent", "parent cycle: %s", strings.Join(loop, " -> "))
				}
				break
			}
			chain = append(chain, cur)
		}
	}
}

func (d *decoder) checkRefs() {
	for _, r := range d.refs {
		lines := d.zoneLines
		if r.kind == "user" {
			lines = d.userLines
		}
		if _, ok := lines[r.name]; !ok {
			d.errorAt(r.line, r.key, "unknown %s %q", r.kind, r.name)
		}
	}
}

// checkListens reports listening addresses that would clash at bind time:
// the same port on the same host, or on a wildcard host and any other.
func checkListens(d *decoder, listens []listenUse) {
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	for i, l := range listens {
		if l.port == "0" {
			continue
		}
		for _, prev := range listens[:i] {
			if prev.port == l.port && (prev.host == l.host || wild(prev.host) || wild(l.host)) {
				d.errorAt(l.line, l.key, "address clashes with %s (line %d)", prev.key, prev.line)
				break
			}
		}
	}
}

func (d *decoder) users(n *yaml.Node, key string, dst *[]User, credless *[]ref) {
	*dst = []User{}
	d.namedSeq(n, key, func(e *yaml.Node, k string) {
		var u User
		nameLine := 0
		before := len(d.errs)
		ok := d.mapping(e, k, []field{
			{"name", true, func(n *yaml.Node, k string) {
				if d.name(n, k, userNameRE, &u.Name) {
					nameLine = n.Line
				}
			}},
			{"authorized_keys", false, func(n *yaml.Node, k string) { d.path(n, k, &u.AuthorizedKeys) }},
			{"totp_file", false, func(n *yaml.Node, k string) { d.path(n, k, &u.TOTPFile) }},
			{"password_hash", false, func(n *yaml.Node, k string) {
				var s string
				if !d.str(n, k, &s) {
					return
				}
				if msg := checkBcrypt(s); msg != "" {
					d.errorf(n, k, "%s", msg)
					return
				}
				u.PasswordHash = s
			}},
			{"groups", false, func(n *yaml.Node, k string) {
				d.strList(n, k, &u.Groups, func(n *yaml.Node, k, s string) bool {
					if !nameRE.MatchString(s) {
						d.errorf(n, k, "bad group name %q", s)
						return false
					}
					return true
				})
			}},
		})
		if !ok || u.Name == "" {
			return
		}
		if first, dup := d.userLines[u.Name]; dup {
			d.errorAt(nameLine, k+".name", "duplicate user name %q (first at line %d)", u.Name, first)
			return
		}
		d.userLines[u.Name] = nameLine
		u.Line = nameLine
		if u.AuthorizedKeys == "" && u.PasswordHash == "" && len(d.errs) == before {
			*credless = append(*credless, ref{"user", u.Name, nameLine, k})
		}
		*dst = append(*dst, u)
	})
}

// checkBcrypt returns what is wrong with a bcrypt hash, or "". The format
// is $2X$CC$ then 53 characters of bcrypt's base64 (22 of salt, 31 of
// hash): 60 characters in all (OpenBSD bcrypt(3)).
func checkBcrypt(h string) string {
	switch {
	case !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$"):
		return "not a bcrypt hash: want it to start with $2a$, $2b$ or $2y$"
	case len(h) != 60:
		return "not a bcrypt hash: want 60 characters"
	case h[6] != '$':
		return "not a bcrypt hash: want a two-digit cost after the version"
	}
	cost, err := parseUint(h[4:6], 99)
	if err != nil || cost < 4 || cost > 31 {
		return "not a bcrypt hash: want a cost from 04 to 31"
	}
	for _, c := range h[7:] {
		if !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return "not a bcrypt hash: bad character after the cost"
		}
	}
	return ""
}

func (d *decoder) audit(n *yaml.Node, key string, a *Audit) {
	d.mapping(n, key, []field{
		{"sink", false, func(n *yaml.Node, k string) {
			var s string
			if !d.str(n, k, &s) {
				return
			}
			switch {
			case s == "sqlite":
				a.Sink = s
			case strings.HasPrefix(s, "jsonl:") && len(s) > len("jsonl:"):
				a.Sink = "jsonl:" + d.abs(strings.TrimPrefix(s, "jsonl:"))
			case strings.HasPrefix(s, "postgres://") && len(s) > len("postgres://"),
				strings.HasPrefix(s, "postgresql://") && len(s) > len("postgresql://"):
				a.Sink = s
			default:
				d.errorf(n, k, "bad sink %q: want sqlite, jsonl:PATH or postgres://...", s)
			}
		}},
		{"queue_size", false, func(n *yaml.Node, k string) { d.intField(n, k, 1, 1<<24, &a.QueueSize) }},
		{"on_failure", false, func(n *yaml.Node, k string) { d.failureMode(n, k, &a.OnFailure) }},
		{"probe_interval", false, func(n *yaml.Node, k string) {
			d.duration(n, k, &a.ProbeInterval)
			if a.ProbeInterval.Std() < minAuditProbeInterval {
				d.errorf(n, k, "probe_interval %s is below the minimum %s", a.ProbeInterval, Duration(minAuditProbeInterval))
			}
		}},
	})
}

func (d *decoder) console(n *yaml.Node, key string, c *Console, listens *[]listenUse) {
	d.mapping(n, key, []field{
		{"listen", false, func(n *yaml.Node, k string) {
			var s string
			if !d.str(n, k, &s) {
				return
			}
			host, port, ok := d.listenAddr(n, k, s)
			if !ok {
				return
			}
			c.Listen = s
			*listens = append(*listens, listenUse{host, port, n.Line, k})
		}},
		{"cert", false, func(n *yaml.Node, k string) { d.path(n, k, &c.Cert) }},
		{"key", false, func(n *yaml.Node, k string) { d.path(n, k, &c.Key) }},
		{"session_timeout", false, func(n *yaml.Node, k string) {
			d.duration(n, k, &c.SessionTimeout)
			if c.SessionTimeout.Std() < time.Minute {
				d.errorf(n, k, "session_timeout %s is below the minimum 1m0s", c.SessionTimeout)
			}
		}},
	})
}

func (d *decoder) record(n *yaml.Node, key string, r *Record) {
	d.mapping(n, key, []field{
		{"dir", false, func(n *yaml.Node, k string) { d.path(n, k, &r.Dir) }},
		{"on_failure", false, func(n *yaml.Node, k string) { d.failureMode(n, k, &r.OnFailure) }},
		{"max_bytes_per_stream", false, func(n *yaml.Node, k string) { d.integer(n, k, 0, 1<<50, &r.MaxBytesPerStream) }},
	})
}

func (d *decoder) failureMode(n *yaml.Node, key string, dst *FailureMode) {
	s := string(*dst)
	d.enum(n, key, &s, string(FailClosed), string(BestEffort))
	*dst = FailureMode(s)
}
