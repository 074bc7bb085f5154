package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is a decoded, validated and defaulted configuration file.
type Config struct {
	Path              string   // the file as named to Load or Parse
	Gateway           Gateway  //
	Zones             []Zone   // in file order
	Users             []User   // in file order
	TrustedUserCAKeys []string // absolute paths of authorized_keys-format files of user CAs
	Services          []Service
	Hosts             []Host // the inventory, in file order
	// Roles, when not empty, decide every session: who may reach which
	// inventory host as which login, under which policy (internal/access).
	// Services' own policy and upstream.user are then not used.
	Roles   []Role
	Audit   Audit
	Record  Record
	Console Console
	// OIDC is the OpenID provider of single sign-on; nil without.
	OIDC *OIDC
	// Warnings are what is valid but most likely not what the author
	// meant (a pattern that cannot work as written), by line. `sluice
	// check` prints them; the gateway logs them at start.
	Warnings []*Error
}

// Service returns the service called name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// User returns the user called name, or nil.
func (c *Config) User(name string) *User {
	for i := range c.Users {
		if c.Users[i].Name == name {
			return &c.Users[i]
		}
	}
	return nil
}

// Zone returns the zone called name, or nil.
func (c *Config) Zone(name string) *Zone {
	for i := range c.Zones {
		if c.Zones[i].Name == name {
			return &c.Zones[i]
		}
	}
	return nil
}

// Duration is a time.Duration written in the file as Go duration text
// ("30s", "2m", "1h30m"). It is never negative.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// Gateway holds the settings of the whole gateway.
type Gateway struct {
	Name                 string        // first part of every session id
	StateDir             string        // absolute; host keys, recordings, audit db
	HostKeyTypes         []HostKeyType // host keys to load or create, in preference order
	LoginGraceTime       Duration      // 0 = no limit
	MaxAuthTries         int
	MaxStartups          MaxStartups
	PerSourceMaxStartups int      // 0 = no per-source limit
	AuthPenalty          Duration // 0 = off
	DrainTimeout         Duration
	// DrainDelay is how long, on SIGTERM, /readyz answers 503 while the
	// listeners still accept, before draining starts (a load balancer's
	// health checks move new logins to the other nodes meanwhile).
	DrainDelay Duration
	Log        Log
	Admin      Admin
	Fleet      Fleet
}

// Fleet makes the gateway one node of a fleet sharing a PostgreSQL audit
// store (internal/fleet). Lease 0 means no fleet.
type Fleet struct {
	// Lease is how long the node's claim on gateway.name and its live
	// sessions outlast its last heartbeat (heartbeats come every third of
	// it); a node silent for longer is taken as dead.
	Lease Duration
}

// HostKeyType names a host key algorithm family.
type HostKeyType string

// Host key types accepted in gateway.host_key_types.
const (
	HostKeyEd25519 HostKeyType = "ed25519"
	HostKeyRSA     HostKeyType = "rsa"
	HostKeyECDSA   HostKeyType = "ecdsa"
)

// MaxStartups is OpenSSH's MaxStartups "start:rate:full": beyond Start
// unauthenticated connections, new ones are refused with probability Rate
// percent, rising linearly to 100% at Full.
type MaxStartups struct {
	Start, Rate, Full int
}

// String formats m as "start:rate:full".
func (m MaxStartups) String() string {
	return strconv.Itoa(m.Start) + ":" + strconv.Itoa(m.Rate) + ":" + strconv.Itoa(m.Full)
}

// Log selects the log handler and level; only main acts on it.
type Log struct {
	Format LogFormat
	Level  slog.Level
}

// LogFormat is the log handler: text or json.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// Admin holds the administrative endpoints.
type Admin struct {
	Listen string // loopback host:port for metrics and health; empty = off
	Socket string // absolute path of the admin unix socket
}

// JoinMode is a service's console_join.
type JoinMode string

// The modes of console_join.
const (
	JoinReadOnly  JoinMode = "read_only"
	JoinReadWrite JoinMode = "read_write"
)

// Console is the operators' web console and API (see internal/console).
type Console struct {
	Listen         string   // host:port of the HTTPS listener; empty = off
	Cert, Key      string   // absolute paths of a PEM certificate and key; empty = self-signed in state_dir
	SessionTimeout Duration // how long a browser login lasts
}

// Zone is a named set of networks; the most specific network wins.
type Zone struct {
	Name     string
	Parent   string         // name of the parent zone, or ""
	Networks []netip.Prefix // masked; IPv4-mapped IPv6 prefixes are unmapped to IPv4
}

// User is a gateway user.
type User struct {
	Name           string
	AuthorizedKeys string // absolute path, or ""
	PasswordHash   string // bcrypt ($2a$, $2b$ or $2y$), or ""
	// TOTPFile is the absolute path of the user's TOTP secret (an
	// otpauth:// URI written by `sluice user totp`), or "".
	TOTPFile string
	Groups   []string
	Line     int // of the name, for check warnings
}

// Service is one listener and what it lets its clients do.
type Service struct {
	Name           string
	Listen         string   // host:port
	ClientZones    []string // zones clients may connect from
	ServerZones    []string // zones this service may connect to
	Router         Router
	ConnectTimeout Duration
	DownHostTTL    Duration // how long a target that failed to connect is skipped
	Upstream       Upstream
	Policy         Policy
	Record         bool // record session channels (asciicast v2)
	RecordInput    bool // also record what the client types
	// ConsoleJoin is how console operators may attend a live pty
	// session: JoinReadOnly (watch) or JoinReadWrite (also type).
	ConsoleJoin        JoinMode
	MaxSessions        int      // concurrent connections to this service; 0 = unlimited
	MaxSessionsPerUser int      // 0 = unlimited
	MaxChannels        int      // open channels per connection
	IdleTimeout        Duration // 0 = off
	OnReload           OnReload
	ProxyProtocol      ProxyProtocol
	// OIDC offers single sign-on at the top-level OIDC provider
	// (keyboard-interactive, device authorization grant).
	OIDC bool
	MFA  MFA
}

// MFA is a service's second-factor setting (internal/mfa). The zero MFA
// asks for none.
type MFA struct {
	// Required asks every login for a second factor.
	Required bool
	// RequiredFor lists the request kinds (policy.Kinds, or
	// "subsystem:NAME") that need a second factor: logins that could make
	// them are asked at login, except with a key marked for automation,
	// which is refused them instead.
	RequiredFor []string
	Line        int // of the mfa key, for check warnings
}

// On reports whether the service asks anyone for a second factor.
func (m MFA) On() bool { return m.Required || len(m.RequiredFor) > 0 }

// Router says how a service picks its target. At least one way is set.
type Router struct {
	Inband bool // target from the SSH user name USER+HOST[:PORT]
	// Transparent routes each connection to its original destination
	// (SO_ORIGINAL_DST after a firewall's REDIRECT); the SSH user name is
	// the upstream login and the key names the user.
	Transparent bool
	// TProxy receives the connections of Transparent on a listener with
	// IP_TRANSPARENT (the firewall's TPROXY target): a connection arrives
	// at its original destination's own address, and one that arrives at
	// the listen port was not intercepted.
	TProxy   bool
	Jump     bool              // answer direct-tcpip to an inventory host's SSH port (ProxyJump) with an inspected session
	Directed []string          // fixed host:port targets, tried in order
	Users    map[string]string // gateway user name -> host:port
}

// Upstream is how the gateway logs in to the target server.
type Upstream struct {
	User     string // login name template; %u = gateway user name, %% = %
	Identity string // absolute path of a private key, or ""
	Password string // or ""
	// UserCA is the absolute path of the private key of the user CA that
	// signs a short-lived certificate for each upstream login, or "";
	// created (of type UserCAType) at start when missing.
	UserCA     string
	UserCAType HostKeyType
	// UserCAPrevious is the absolute path of the CA user_ca replaced
	// (its private key or its .pub), still listed by "sluice ca show"
	// while targets trust both during a rotation; never used to sign.
	UserCAPrevious string
	KnownHosts     string // absolute path; strict host-key checking is always on
	// Reuse keeps an upstream connection open this long after its client
	// connection ended cleanly, for the next connection of the same gateway
	// user to the same route. 0 = off.
	Reuse Duration
	// ReuseIdle is the most connections kept idle per gateway user and
	// route (default 4).
	ReuseIdle int
}

// LoginUser expands the User template for the gateway user name user.
func (u Upstream) LoginUser(user string) string {
	var b strings.Builder
	t := u.User
	for i := 0; i < len(t); i++ {
		if t[i] == '%' && i+1 < len(t) {
			i++
			switch t[i] {
			case 'u':
				b.WriteString(user)
			case '%':
				b.WriteByte('%')
			}
			continue
		}
		b.WriteByte(t[i])
	}
	return b.String()
}

// OnReload says what happens to a service's live sessions when a reload
// changes or removes the service.
type OnReload string

// OnReload values.
const (
	OnReloadEnd    OnReload = "end"    // end them at once
	OnReloadFinish OnReload = "finish" // let them run to their end under the old settings
)

// ProxyProtocol enables PROXY protocol headers from trusted peers.
type ProxyProtocol struct {
	Trusted []netip.Prefix // peers whose PROXY header is believed; empty = off
}

// Policy is what a service's clients may do. The zero Policy denies
// everything.
type Policy struct {
	PTY           bool
	Shell         bool
	Exec          Exec
	Env           []string             // glob patterns (path.Match) of accepted variable names
	Subsystems    map[string]Subsystem // permitted subsystems by name
	ForwardLocal  []Forward            // permit-open list for direct-tcpip; empty = denied
	ForwardSSH    bool                 // SSH may run inside a local forward (ssh -W, ProxyJump)
	ForwardRemote bool
	Agent         bool
	X11           bool
}

// Exec is the policy for exec requests. A command is permitted when it
// matches an Allow pattern and no Deny pattern.
type Exec struct {
	Allow         []Pattern
	Deny          []Pattern
	ForcedCommand string // run instead of whatever the client asked, or ""
	// Match is what the patterns are matched against: ExecMatchCommands
	// (each simple command in the shell source, the default) or
	// ExecMatchWhole (the command string as sent).
	Match string
}

// Values of exec.match.
const (
	ExecMatchCommands = "commands"
	ExecMatchWhole    = "whole"
)

// Pattern is an RE2 pattern matched against a whole command.
type Pattern struct {
	Text string         // as written in the file
	Re   *regexp.Regexp // ^(?:Text)$
}

// Match reports whether s matches the whole pattern.
func (p Pattern) Match(s string) bool { return p.Re.MatchString(s) }

// Subsystem is the policy for one subsystem (for sftp, per operation).
type Subsystem struct {
	ReadOnly      bool
	AllowUpload   bool
	AllowDownload bool
	AllowPaths    []string
	DenyPaths     []string
	MaxUploadSize int64 // bytes; 0 = no limit
	AllowRemove   bool
	AllowRename   bool
	AllowMkdir    bool
	AllowSymlink  bool
	AllowSetstat  bool
	// ContentHash audits the SHA-256 of each file transferred whole and
	// in order.
	ContentHash bool
	// MaxOutstanding is how many requests one SFTP channel may have
	// forwarded and unanswered; past it the proxy stops reading the
	// client's requests.
	MaxOutstanding int
}

// HostPort is a forwarding destination pattern: Host "*" matches any host
// and Port 0 any port.
type HostPort struct {
	Host string
	Port int
}

// Forward is one forward_local entry: a destination and, in the mapping
// form, what the stream to it may carry. The string form "host:port" sets
// only To.
type Forward struct {
	To HostPort
	// Protocols lists the protocols the stream may carry (internal/sniff
	// names: ssh, tls, http, postgresql, unknown); empty allows any.
	Protocols []string
	// SNI and Host are glob patterns ('*' any run, '?' one character) a
	// TLS server_name or an HTTP Host must match, in lower case; DenySNI
	// and DenyHost refuse what they match.
	SNI, Host, DenySNI, DenyHost []string
}

// Match reports whether host:port is permitted by p. Host names compare
// case-insensitively; addresses compare as parsed addresses.
func (p HostPort) Match(host string, port int) bool {
	if p.Port != 0 && p.Port != port {
		return false
	}
	if p.Host == "*" {
		return true
	}
	if a, err := netip.ParseAddr(p.Host); err == nil {
		b, err := netip.ParseAddr(host)
		return err == nil && a.Unmap() == b.Unmap()
	}
	return strings.EqualFold(p.Host, host)
}

// String formats p as host:port with * for wildcards.
func (p HostPort) String() string {
	port := "*"
	if p.Port != 0 {
		port = strconv.Itoa(p.Port)
	}
	host := p.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// Audit selects where audit events go.
type Audit struct {
	// Sink is "sqlite" (STATE/audit.db), "jsonl:PATH" with PATH made
	// absolute against the config file's folder, or a postgres:// or
	// postgresql:// URL; audit.Open takes it as is.
	Sink      string
	QueueSize int
	OnFailure FailureMode
	// ProbeInterval is how often the gateway checks a working store (the
	// file still at its path, the server answering) and the longest wait
	// between retries of a failing one.
	ProbeInterval Duration
}

// FailureMode says what happens when audit or recording cannot be written.
type FailureMode string

// Failure modes.
const (
	FailClosed FailureMode = "fail_closed" // end the affected sessions and refuse new ones
	BestEffort FailureMode = "best_effort" // log the failure and carry on
)

// DefaultMaxBytesPerStream is record.max_bytes_per_stream's default: 1 MiB
// of each stream of a channel without a pty, enough for the commands a
// script sends and what they print, not for a download.
const DefaultMaxBytesPerStream = 1 << 20

// Record holds settings for session recordings.
type Record struct {
	Dir       string // absolute
	OnFailure FailureMode
	// MaxBytesPerStream caps each stream (stdin, stdout, stderr) of a
	// channel without a pty kept in the recording; 0 means no cap.
	MaxBytesPerStream int64
}

// Load reads and decodes the file at path. On failure the error is an
// *Errors listing every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			msg = pe.Op + ": " + pe.Err.Error()
		}
		return nil, &Errors{List: []*Error{{File: path, Msg: msg, Err: err}}}
	}
	return Parse(path, data)
}

// Parse decodes data as the contents of the file at path; path names the
// file in errors and relative paths resolve against its folder. On failure
// the error is an *Errors listing every problem found.
func Parse(path string, data []byte) (*Config, error) {
	d := newDecoder(path)
	c := d.decodeFile(data)
	if len(d.errs) > 0 {
		return nil, d.errors()
	}
	c.Warnings = d.warnings()
	return c, nil
}
