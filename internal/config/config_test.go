package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid file; its line numbers matter to the tests.
const minimal = `gateway: {name: gw}
zones:
  - {name: z, networks: ["127.0.0.0/8"]}
users:
  - {name: alice, authorized_keys: a.pub}
services:
  - name: s
    listen: 127.0.0.1:2222
    client_zones: [z]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: kh}
`

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("/etc/sluice/t.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: got error\n%v\nwant none", err)
	}
	return c
}

// errorLines parses text and returns each error's text.
func errorLines(t *testing.T, text string) []string {
	t.Helper()
	c, err := Parse("t.yaml", []byte(text))
	if err == nil {
		t.Fatalf("Parse: got config %+v, want an error", c)
	}
	errs, ok := errors.AsType[*Errors](err)
	if !ok {
		t.Fatalf("Parse: got error of type %T, want *Errors", err)
	}
	lines := make([]string, len(errs.List))
	for i, e := range errs.List {
		lines[i] = e.Error()
	}
	if got := err.Error(); got != strings.Join(lines, "\n") {
		t.Errorf("Error(): got %q, want the lines joined", got)
	}
	return lines
}

func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("examples: got %d files, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Errorf("Load: got\n%v\nwant no error", err)
			}
		})
	}
}

func TestExampleBastion(t *testing.T) {
	c, err := Load("../../examples/bastion.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("../../examples")
	s := c.Service("ssh-in")
	if s == nil {
		t.Fatal(`Service("ssh-in"): got nil`)
	}
	if !s.Router.Inband {
		t.Errorf("Router.Inband: got false, want true")
	}
	if got, want := s.Upstream.KnownHosts, filepath.Join(dir, "state/known_hosts"); got != want {
		t.Errorf("KnownHosts: got %q, want %q", got, want)
	}
	if got, want := c.User("alice").AuthorizedKeys, filepath.Join(dir, "keys/alice.pub"); got != want {
		t.Errorf("alice AuthorizedKeys: got %q, want %q", got, want)
	}
	if c.User("nobody") != nil || c.Service("nothing") != nil {
		t.Errorf("lookups of unknown names: got non-nil, want nil")
	}
	if got, want := c.Zone("office").Parent, "internet"; got != want {
		t.Errorf("office parent: got %q, want %q", got, want)
	}
	for _, tc := range []struct {
		cmd  string
		want bool
	}{{"ls -l", true}, {"reboot", false}, {"shutdown -h now", false}, {"echo reboot", true}} {
		allowed := slices.ContainsFunc(s.Policy.Exec.Allow, func(p Pattern) bool { return p.Match(tc.cmd) }) &&
			!slices.ContainsFunc(s.Policy.Exec.Deny, func(p Pattern) bool { return p.Match(tc.cmd) })
		if allowed != tc.want {
			t.Errorf("exec %q allowed: got %v, want %v", tc.cmd, allowed, tc.want)
		}
	}
	if sftp, ok := s.Policy.Subsystems["sftp"]; !ok || !sftp.AllowUpload || sftp.ReadOnly {
		t.Errorf("sftp subsystem: got %+v (present %v), want present with defaults", sftp, ok)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	g := c.Gateway
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"state_dir", g.StateDir, "/etc/sluice/state"},
		{"host_key_types", g.HostKeyTypes, []HostKeyType{HostKeyEd25519}},
		{"login_grace_time", g.LoginGraceTime.Std(), 120 * time.Second},
		{"max_auth_tries", g.MaxAuthTries, 6},
		{"max_startups", g.MaxStartups.String(), "10:30:100"},
		{"per_source_max_startups", g.PerSourceMaxStartups, 5},
		{"auth_penalty", g.AuthPenalty.Std(), time.Duration(0)},
		{"drain_timeout", g.DrainTimeout.Std(), 30 * time.Second},
		{"log.format", g.Log.Format, LogText},
		{"log.level", g.Log.Level, slog.LevelInfo},
		{"admin.listen", g.Admin.Listen, ""},
		{"admin.socket", g.Admin.Socket, "/etc/sluice/state/admin.sock"},
		{"trusted_user_ca_keys", c.TrustedUserCAKeys, []string{}},
		{"audit.sink", c.Audit.Sink, "sqlite"},
		{"audit.queue_size", c.Audit.QueueSize, 1024},
		{"audit.on_failure", c.Audit.OnFailure, FailClosed},
		{"audit.probe_interval", c.Audit.ProbeInterval.Std(), 5 * time.Second},
		{"record.dir", c.Record.Dir, "/etc/sluice/state/recordings"},
		{"record.on_failure", c.Record.OnFailure, FailClosed},
		{"record.max_bytes_per_stream", c.Record.MaxBytesPerStream, int64(1 << 20)},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	s := c.Services[0]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"connect_timeout", s.ConnectTimeout.Std(), 10 * time.Second},
		{"down_host_ttl", s.DownHostTTL.Std(), 30 * time.Second},
		{"upstream.user", s.Upstream.User, "%u"},
		{"upstream.known_hosts", s.Upstream.KnownHosts, "/etc/sluice/kh"},
		{"upstream.reuse", s.Upstream.Reuse.Std(), time.Duration(0)},
		{"upstream.reuse_idle", s.Upstream.ReuseIdle, 4},
		{"max_channels", s.MaxChannels, 10},
		{"max_sessions", s.MaxSessions, 0},
		{"idle_timeout", s.IdleTimeout.Std(), time.Duration(0)},
		{"on_reload", s.OnReload, OnReloadFinish},
		{"record", s.Record, false},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// No policy key: everything denied.
	p := s.Policy
	if p.PTY || p.Shell || len(p.Exec.Allow) != 0 || len(p.Env) != 0 || len(p.Subsystems) != 0 ||
		len(p.ForwardLocal) != 0 || p.ForwardRemote || p.Agent || p.X11 {
		t.Errorf("policy without a policy key: got %+v, want everything denied", p)
	}
}

func equal(a, b any) bool {
	switch a := a.(type) {
	case []string:
		return slices.Equal(a, b.([]string))
	case []HostKeyType:
		return slices.Equal(a, b.([]HostKeyType))
	}
	return a == b
}

func TestSubsystemDefaults(t *testing.T) {
	c := mustParse(t, minimal+`    policy:
      subsystems:
        sftp: {read_only: true, max_upload_size: 1048576}
        backup: {allow_remove: false, content_hash: false}
`)
	subs := c.Services[0].Policy.Subsystems
	want := Subsystem{ReadOnly: true, AllowUpload: true, AllowDownload: true, MaxUploadSize: 1 << 20,
		AllowRemove: true, AllowRename: true, AllowMkdir: true, AllowSymlink: true, AllowSetstat: true, ContentHash: true}
	if got := subs["sftp"]; !equalSubsystem(got, want) {
		t.Errorf("sftp: got %+v, want %+v", got, want)
	}
	want = Subsystem{AllowUpload: true, AllowDownload: true,
		AllowRemove: false, AllowRename: true, AllowMkdir: true, AllowSymlink: true, AllowSetstat: true}
	if got := subs["backup"]; !equalSubsystem(got, want) {
		t.Errorf("backup: got %+v, want %+v", got, want)
	}
}

// TestSubsystemLinksUnderPathRules: links are off by default once path
// rules are set, unless allow_symlink says otherwise; max_outstanding is
// read.
func TestSubsystemLinksUnderPathRules(t *testing.T) {
	c := mustParse(t, minimal+`    policy:
      subsystems:
        sftp: {deny_paths: ["/home/*/.ssh"], max_outstanding: 64}
        a: {allow_paths: ["/srv"], allow_symlink: true}
        b: {}
`)
	subs := c.Services[0].Policy.Subsystems
	for name, want := range map[string]bool{"sftp": false, "a": true, "b": true} {
		if got := subs[name].AllowSymlink; got != want {
			t.Errorf("%s: got allow_symlink %v, want %v", name, got, want)
		}
	}
	if got := subs["sftp"].MaxOutstanding; got != 64 {
		t.Errorf("got max_outstanding %d, want 64", got)
	}
	if got := subs["b"].MaxOutstanding; got != DefaultMaxOutstanding {
		t.Errorf("got max_outstanding %d, want the default %d", got, DefaultMaxOutstanding)
	}
}

func equalSubsystem(a, b Subsystem) bool {
	return slices.Equal(a.AllowPaths, b.AllowPaths) && slices.Equal(a.DenyPaths, b.DenyPaths) &&
		a.ReadOnly == b.ReadOnly && a.AllowUpload == b.AllowUpload && a.AllowDownload == b.AllowDownload &&
		a.MaxUploadSize == b.MaxUploadSize && a.AllowRemove == b.AllowRemove && a.AllowRename == b.AllowRename &&
		a.AllowMkdir == b.AllowMkdir && a.AllowSymlink == b.AllowSymlink && a.AllowSetstat == b.AllowSetstat &&
		a.ContentHash == b.ContentHash
}

func TestValues(t *testing.T) {
	c := mustParse(t, `gateway:
  name: gw
  state_dir: /var/lib/sluice
  host_key_types: [rsa, ed25519]
  max_startups: "5"
  log: {format: json, level: debug}
  admin: {listen: "[::1]:9100", socket: admin.sock}
zones:
  - {name: z, networks: ["10.0.0.0/8", "::ffff:192.168.0.0/112", "2001:db8::/32", "192.0.2.7"]}
trusted_user_ca_keys: [ca.pub]
users:
  - {name: u@example.org}
services:
  - name: s
    listen: ":2222"
    client_zones: [z]
    server_zones: [z]
    router: {directed: ["a.example:22", "[2001:db8::5]:2022"], users: {u@example.org: "10.0.0.1:22"}}
    upstream: {user: "%u%%x", known_hosts: /kh, reuse: 90s, reuse_idle: 16}
    policy:
      forward_local:
        - "*:5432"
        - "db.internal:*"
        - "127.0.0.1:80"
        - {to: "web:443", protocols: [tls], sni: ["*.Corp."], deny_sni: [evil.corp]}
        - {to: "web:80", host: [intranet], deny_host: ["x?"]}
      forward_ssh: true
    proxy_protocol: {trusted: ["127.0.0.1/32"]}
audit: {sink: "postgres://sluice@localhost/audit"}
record: {dir: rec, max_bytes_per_stream: 0}
`)
	if got, want := c.Zones[0].Networks, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("192.0.2.7/32"),
	}; !slices.Equal(got, want) {
		t.Errorf("networks: got %v, want %v", got, want)
	}
	if got, want := c.Services[0].Upstream.Reuse.Std(), 90*time.Second; got != want {
		t.Errorf("upstream.reuse: got %v, want %v", got, want)
	}
	if got, want := c.Services[0].Upstream.ReuseIdle, 16; got != want {
		t.Errorf("upstream.reuse_idle: got %v, want %v", got, want)
	}
	if got, want := c.Gateway.MaxStartups, (MaxStartups{5, 100, 5}); got != want {
		t.Errorf("max_startups: got %v, want %v", got, want)
	}
	if got, want := c.Gateway.Log, (Log{LogJSON, slog.LevelDebug}); got != want {
		t.Errorf("log: got %v, want %v", got, want)
	}
	if got, want := c.Gateway.HostKeyTypes, []HostKeyType{HostKeyRSA, HostKeyEd25519}; !slices.Equal(got, want) {
		t.Errorf("host_key_types: got %v, want %v", got, want)
	}
	if got, want := c.Gateway.Admin.Socket, "/etc/sluice/admin.sock"; got != want {
		t.Errorf("admin.socket: got %q, want %q", got, want)
	}
	if got, want := c.TrustedUserCAKeys, []string{"/etc/sluice/ca.pub"}; !slices.Equal(got, want) {
		t.Errorf("trusted_user_ca_keys: got %v, want %v", got, want)
	}
	if got, want := c.Audit.Sink, "postgres://sluice@localhost/audit"; got != want {
		t.Errorf("audit.sink: got %v, want %v", got, want)
	}
	if got, want := c.Record.Dir, "/etc/sluice/rec"; got != want {
		t.Errorf("record.dir: got %q, want %q", got, want)
	}
	if got := c.Record.MaxBytesPerStream; got != 0 {
		t.Errorf("record.max_bytes_per_stream: got %d, want 0 (no cap)", got)
	}
	s := c.Services[0]
	jsonl := mustParse(t, minimal+"audit: {sink: \"jsonl:log/audit.jsonl\"}\n")
	if got, want := jsonl.Audit.Sink, "jsonl:/etc/sluice/log/audit.jsonl"; got != want {
		t.Errorf("audit.sink: got %q, want %q", got, want)
	}
	if got, want := s.Router.Users["u@example.org"], "10.0.0.1:22"; got != want {
		t.Errorf("router.users: got %q, want %q", got, want)
	}
	if got, want := s.Upstream.LoginUser("bob"), "bob%x"; got != want {
		t.Errorf("LoginUser: got %q, want %q", got, want)
	}
	wantFwd := []Forward{
		{To: HostPort{"*", 5432}}, {To: HostPort{"db.internal", 0}}, {To: HostPort{"127.0.0.1", 80}},
		{To: HostPort{"web", 443}, Protocols: []string{"tls"}, SNI: []string{"*.corp"}, DenySNI: []string{"evil.corp"}},
		{To: HostPort{"web", 80}, Host: []string{"intranet"}, DenyHost: []string{"x?"}},
	}
	if got := s.Policy.ForwardLocal; !reflect.DeepEqual(got, wantFwd) {
		t.Errorf("forward_local: got %+v, want %+v", got, wantFwd)
	}
	if !s.Policy.ForwardSSH {
		t.Error("forward_ssh: got false, want true")
	}
	if got, want := s.ProxyProtocol.Trusted, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}; !slices.Equal(got, want) {
		t.Errorf("proxy_protocol.trusted: got %v, want %v", got, want)
	}
}

func TestHostPortMatch(t *testing.T) {
	for _, tc := range []struct {
		p    HostPort
		host string
		port int
		want bool
	}{
		{HostPort{"*", 0}, "anything", 1, true},
		{HostPort{"*", 5432}, "db", 5432, true},
		{HostPort{"*", 5432}, "db", 5433, false},
		{HostPort{"DB.internal", 0}, "db.INTERNAL", 22, true},
		{HostPort{"db.internal", 22}, "db.internal.evil", 22, false},
		{HostPort{"127.0.0.1", 80}, "::ffff:127.0.0.1", 80, true},
		{HostPort{"127.0.0.1", 80}, "127.0.0.2", 80, false},
		{HostPort{"::1", 80}, "localhost", 80, false},
	} {
		if got := tc.p.Match(tc.host, tc.port); got != tc.want {
			t.Errorf("%v.Match(%q, %d): got %v, want %v", tc.p, tc.host, tc.port, got, tc.want)
		}
	}
}

func TestPatternAnchored(t *testing.T) {
	c := mustParse(t, minimal+`    policy:
      exec: {allow: ["ls( -l)?", "a|b"], forced_command: "/usr/bin/true"}
`)
	e := c.Services[0].Policy.Exec
	if got, want := e.ForcedCommand, "/usr/bin/true"; got != want {
		t.Errorf("forced_command: got %q, want %q", got, want)
	}
	if got, want := e.Allow[1].Text, "a|b"; got != want {
		t.Errorf("pattern text: got %q, want %q", got, want)
	}
	for _, tc := range []struct {
		p    int
		cmd  string
		want bool
	}{
		{0, "ls", true}, {0, "ls -l", true}, {0, "xls", false}, {0, "ls -la", false},
		{1, "a", true}, {1, "b", true}, {1, "ab", false}, {1, "a; b", false},
	} {
		if got := e.Allow[tc.p].Match(tc.cmd); got != tc.want {
			t.Errorf("%q.Match(%q): got %v, want %v", e.Allow[tc.p].Text, tc.cmd, got, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load: got %v, want an error wrapping fs.ErrNotExist", err)
	}
	if got, want := err.Error(), path+": open: no such file or directory"; got != want {
		t.Errorf("Load: got %q, want %q", got, want)
	}
}

func TestLoadRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Users[0].AuthorizedKeys, filepath.Join(dir, "a.pub"); got != want {
		t.Errorf("authorized_keys: got %q, want %q", got, want)
	}
}

// TestPatternWarnings: patterns that are valid but cannot work as written
// are reported as warnings with their line, and the file still loads.
func TestPatternWarnings(t *testing.T) {
	c := parseWithPolicy(t, `
      exec:
        allow: ["^ls( .*)?$", "uptime"]
        deny: ["reboot|shutdown .*", "rm( .*)?"]
`)
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`/etc/sluice/w.yaml:13: services[s].policy.exec.allow[0]: warning: pattern "^ls( .*)?$" is anchored already (it must match the whole command); "^rm " would match only the command "rm " with its trailing space`,
		`/etc/sluice/w.yaml:14: services[s].policy.exec.deny[0]: warning: pattern "reboot|shutdown .*" refuses "reboot" only without arguments; write "reboot( .*)?" to refuse it with any`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\ngot  %q\nwant %q", got, want)
	}
	if c.Services[0].Policy.Exec.Match != ExecMatchCommands {
		t.Errorf("exec.match: got %q, want the default %q", c.Services[0].Policy.Exec.Match, ExecMatchCommands)
	}
}

// TestTransferLeakWarning: file rules on the sftp subsystem next to a shell
// or an exec.allow that lets files move by other programs are reported.
func TestTransferLeakWarning(t *testing.T) {
	for _, tt := range []struct {
		name, policy, want string
	}{
		{"shell", `{shell: true, subsystems: {sftp: {read_only: true}}}`, "shell: true lets the user read and write files"},
		{"broad exec", `{exec: {allow: [".*"]}, subsystems: {sftp: {deny_paths: ["/x"]}}}`, `exec.allow ".*" permits "cat /etc/hosts"`},
		{"cat allowed", `{exec: {allow: ["cat .*", "ls"]}, subsystems: {sftp: {allow_upload: false}}}`, `exec.allow "cat .*" permits "cat /etc/hosts"`},
		{"narrow exec", `{exec: {allow: ["ls( -l)?", "uptime"]}, subsystems: {sftp: {read_only: true}}}`, ""},
		{"no file rules", `{shell: true, subsystems: {sftp: {}}}`, ""},
		{"no sftp", `{shell: true}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := parseWithPolicy(t, " "+tt.policy+"\n")
			var got []string
			for _, w := range c.Warnings {
				got = append(got, w.Error())
			}
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("got warnings %q, want none", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want) || !strings.HasPrefix(got[0], "/etc/sluice/w.yaml:11: services[s].policy: warning: ")):
				t.Errorf("got warnings %q, want one at line 11 holding %q", got, tt.want)
			}
		})
	}
}

func TestForwardWarnings(t *testing.T) {
	c := parseWithPolicy(t, `
      forward_local:
        - {to: "a:443", protocols: [http], sni: ["*.corp"]}
        - {to: "a:80", protocols: [tls], deny_host: [x]}
        - {to: "a:8443", protocols: [tls, http], sni: [a], host: [b]}
`)
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`/etc/sluice/w.yaml:13: services[s].policy.forward_local[0]: warning: sni and deny_sni never apply: protocols does not list tls`,
		`/etc/sluice/w.yaml:14: services[s].policy.forward_local[1]: warning: host and deny_host never apply: protocols does not list http`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\ngot  %q\nwant %q", got, want)
	}
}

// parseWithPolicy parses a one-service file, /etc/sluice/w.yaml, whose
// services[s].policy (line 11) is policy, the text after "policy:".
func parseWithPolicy(t *testing.T, policy string) *Config {
	t.Helper()
	c, err := Parse("/etc/sluice/w.yaml", []byte(`gateway: {name: gw, state_dir: /s}
zones: [{name: z, networks: ["127.0.0.0/8"]}]
users: [{name: u, authorized_keys: /k}]
services:
  - name: s
    listen: ":2222"
    client_zones: [z]
    server_zones: [z]
    router: {directed: ["a.example:22"]}
    upstream: {known_hosts: /kh}
    policy:`+policy))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
