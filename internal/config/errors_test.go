package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// edit returns minimal with old replaced by new; old must occur once.
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(minimal, old) != 1 {
		t.Fatalf("edit: %q occurs %d times in minimal, want 1", old, strings.Count(minimal, old))
	}
	return strings.Replace(minimal, old, new, 1)
}

const secondService = `  - name: s2
    listen: 127.0.0.1:2223
    client_zones: [z]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: kh}
`

func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		text func(t *testing.T) string
		want []string
	}{
		{"unknown top-level key", func(t *testing.T) string { return minimal + "sevices: []\n" },
			[]string{`t.yaml:13: sevices: unknown key (did you mean "services"?)`}},
		{"unknown nested key", func(t *testing.T) string {
			return edit(t, "router: {inband: true}", "router: {inband: true, inbnad: true}")
		}, []string{`t.yaml:11: services[s].router.inbnad: unknown key (did you mean "inband"?)`}},
		{"unknown key without suggestion", func(t *testing.T) string {
			return edit(t, "{name: gw}", "{name: gw, colour: blue}")
		}, []string{`t.yaml:1: gateway.colour: unknown key`}},
		{"odd key quoted", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: gw, \"a\\nb\": 1}") },
			[]string{`t.yaml:1: gateway."a\nb": unknown key`}},
		{"duplicate key", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: gw, name: gw2}") },
			[]string{`t.yaml:1: gateway.name: duplicate key (first at line 1)`}},
		{"list instead of scalar", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: [gw]}") },
			[]string{`t.yaml:1: gateway.name: want a string, got a list`}},
		{"scalar instead of list", func(t *testing.T) string { return edit(t, "client_zones: [z]", "client_zones: z") },
			[]string{`t.yaml:9: services[s].client_zones: want a list, got "z"`}},
		{"scalar instead of mapping", func(t *testing.T) string { return edit(t, "{name: gw}", "gw") },
			[]string{`t.yaml:1: gateway: want a mapping, got "gw"`}},
		{"bad boolean", func(t *testing.T) string { return edit(t, "{inband: true}", "{inband: yes}") },
			[]string{`t.yaml:11: services[s].router.inband: want true or false, got "yes"`}},
		{"bad integer", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: gw, max_auth_tries: many}") },
			[]string{`t.yaml:1: gateway.max_auth_tries: want an integer, got "many"`}},
		{"integer out of range", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: gw, max_auth_tries: 0}") },
			[]string{`t.yaml:1: gateway.max_auth_tries: 0 is out of range [1, 1000]`}},
		{"missing required key", func(t *testing.T) string { return edit(t, "    listen: 127.0.0.1:2222\n", "") },
			[]string{`t.yaml:7: services[s].listen: missing required key`}},
		{"missing required value", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: }") },
			[]string{`t.yaml:1: gateway.name: missing value`}},
		{"missing required section", func(t *testing.T) string { return edit(t, "gateway: {name: gw}\n", "") },
			[]string{`t.yaml:1: gateway: missing required key`}},
		{"bad name", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: gw/1}") },
			[]string{`t.yaml:1: gateway.name: bad name "gw/1": want letters, digits and _ . - only`}},
		{"bad user name", func(t *testing.T) string { return edit(t, "name: alice", "name: al+ice") },
			[]string{`t.yaml:5: users[0].name: bad name "al+ice": want letters, digits and _ . @ - only`}},
		{"duplicate zone", func(t *testing.T) string {
			return edit(t, "users:\n", "  - {name: z}\nusers:\n")
		}, []string{`t.yaml:4: zones[1].name: duplicate zone name "z" (first at line 3)`}},
		{"duplicate user", func(t *testing.T) string {
			return edit(t, "services:\n", "  - {name: alice, authorized_keys: b.pub}\nservices:\n")
		}, []string{`t.yaml:6: users[1].name: duplicate user name "alice" (first at line 5)`}},
		{"duplicate service", func(t *testing.T) string {
			return minimal + strings.Replace(secondService, "name: s2", "name: s", 1)
		}, []string{`t.yaml:13: services[1].name: duplicate service name "s" (first at line 7)`}},
		{"duplicate listen address", func(t *testing.T) string {
			return minimal + strings.Replace(secondService, "127.0.0.1:2223", "127.0.0.1:2222", 1)
		}, []string{`t.yaml:14: services[s2].listen: address clashes with services[s].listen (line 8)`}},
		{"listen clashes with wildcard", func(t *testing.T) string {
			return minimal + strings.Replace(secondService, "127.0.0.1:2223", `":2222"`, 1)
		}, []string{`t.yaml:14: services[s2].listen: address clashes with services[s].listen (line 8)`}},
		{"admin listen clashes", func(t *testing.T) string {
			return edit(t, "{name: gw}", "{name: gw, admin: {listen: \"127.0.0.1:2222\"}}")
		}, []string{`t.yaml:8: services[s].listen: address clashes with gateway.admin.listen (line 1)`}},
		{"admin listen not loopback", func(t *testing.T) string {
			return edit(t, "{name: gw}", "{name: gw, admin: {listen: \"0.0.0.0:9100\"}}")
		}, []string{`t.yaml:1: gateway.admin.listen: address "0.0.0.0:9100" is not loopback: want 127.0.0.1, [::1] or localhost`}},
		{"bad listen address", func(t *testing.T) string { return edit(t, "127.0.0.1:2222", "127.0.0.1") },
			[]string{`t.yaml:8: services[s].listen: bad address "127.0.0.1": want host:port`}},
		{"listen on a host name", func(t *testing.T) string { return edit(t, "127.0.0.1:2222", "example.com:22") },
			[]string{`t.yaml:8: services[s].listen: bad address "example.com:22": want an IP address, localhost or nothing before the port`}},
		{"listen port out of range", func(t *testing.T) string { return edit(t, "127.0.0.1:2222", "127.0.0.1:70000") },
			[]string{`t.yaml:8: services[s].listen: bad address "127.0.0.1:70000": want a port from 0 to 65535`}},
		{"unknown zone", func(t *testing.T) string { return edit(t, "client_zones: [z]", "client_zones: [z, zz]") },
			[]string{`t.yaml:9: services[s].client_zones[1]: unknown zone "zz"`}},
		{"empty zone list", func(t *testing.T) string { return edit(t, "server_zones: [z]", "server_zones: []") },
			[]string{`t.yaml:10: services[s].server_zones: must list at least one zone`}},
		{"unknown parent", func(t *testing.T) string { return edit(t, "{name: z,", "{name: z, parent: top,") },
			[]string{`t.yaml:3: zones[z].parent: unknown zone "top"`}},
		{"parent cycle", func(t *testing.T) string {
			return edit(t, "  - {name: z, networks: [\"127.0.0.0/8\"]}\n",
				"  - {name: z, parent: a, networks: [\"127.0.0.0/8\"]}\n  - {name: a, parent: b}\n  - {name: b, parent: a}\n")
		}, []string{`t.yaml:4: zones[a].parent: parent cycle: a -> b -> a`}},
		{"own parent", func(t *testing.T) string { return edit(t, "{name: z,", "{name: z, parent: z,") },
			[]string{`t.yaml:3: zones[z].parent: parent cycle: z -> z`}},
		{"unknown router user", func(t *testing.T) string {
			return edit(t, "{inband: true}", `{users: {alice: "10.0.0.1:22", mallory: "10.0.0.2:22"}}`)
		}, []string{`t.yaml:11: services[s].router.users.mallory: unknown user "mallory"`}},
		{"no route", func(t *testing.T) string { return edit(t, "{inband: true}", "{inband: false}") },
			[]string{`t.yaml:11: services[s].router: no way of routing: set inband: true, jump: true, transparent: true, directed or users`}},
		{"tproxy without transparent", func(t *testing.T) string { return edit(t, "{inband: true}", "{inband: true, tproxy: true}") },
			[]string{`t.yaml:11: services[s].router: tproxy is how transparent routing receives its connections: set transparent: true with it`}},
		{"transparent with inband", func(t *testing.T) string { return edit(t, "{inband: true}", "{inband: true, transparent: true}") },
			[]string{`t.yaml:11: services[s].router: transparent routes every connection to its original destination: set no inband, jump, directed or users with it`}},
		{"jump without roles", func(t *testing.T) string { return edit(t, "{inband: true}", "{jump: true}") },
			[]string{`t.yaml:11: services[s].router.jump: jump needs roles: a jump reaches the inventory hosts a role grants`}},
		{"bad target", func(t *testing.T) string {
			return edit(t, "{inband: true}", `{directed: ["10.0.0.1:22", "10.0.0.2", "h:0"]}`)
		}, []string{
			`t.yaml:11: services[s].router.directed[1]: bad target "10.0.0.2": want host:port with a port from 1 to 65535`,
			`t.yaml:11: services[s].router.directed[2]: bad target "h:0": want host:port with a port from 1 to 65535`,
		}},
		{"bad network", func(t *testing.T) string {
			return edit(t, `"127.0.0.0/8"`, `"127.0.0.0/8", "10.0.0.0/33", "10.1.2.3/8", "10.0.0.x", "fe80::1%eth0"`)
		},
			[]string{
				`t.yaml:3: zones[z].networks[1]: invalid network "10.0.0.0/33": netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`,
				`t.yaml:3: zones[z].networks[2]: invalid network "10.1.2.3/8": prefix 10.1.2.3/8 has host bits set (network is 10.0.0.0/8)`,
				`t.yaml:3: zones[z].networks[3]: invalid network "10.0.0.x": ParseAddr("10.0.0.x"): unexpected character (at "x")`,
				`t.yaml:3: zones[z].networks[4]: invalid network "fe80::1%eth0": address has an IPv6 zone`,
			}},
		{"network in two zones", func(t *testing.T) string {
			return edit(t, "users:\n", "  - name: y\n    networks: [\"127.0.0.1\", \"127.0.0.0/8\"]\nusers:\n")
		}, []string{`t.yaml:5: zones[y].networks[1]: network 127.0.0.0/8 is already in zone "z" (line 3)`}},
		{"network twice in a zone", func(t *testing.T) string {
			return edit(t, `"127.0.0.0/8"`, `"127.0.0.0/8", "::ffff:127.0.0.0/104"`)
		}, []string{`t.yaml:3: zones[z].networks[1]: network 127.0.0.0/8 listed twice in zone "z"`}},
		{"bad RE2", func(t *testing.T) string {
			return minimal + "    policy:\n      exec:\n        allow: [\"ls\", \"a)|(b\"]\n        deny: [\"x{2,1}\"]\n"
		}, []string{
			"t.yaml:15: services[s].policy.exec.allow[1]: bad pattern: unexpected ): `a)|(b`",
			"t.yaml:16: services[s].policy.exec.deny[0]: bad pattern: invalid repeat count: `{2,1}`",
		}},
		{"bad env glob", func(t *testing.T) string { return minimal + "    policy: {env: [\"LC_[\", \"A=B\"]}\n" },
			[]string{
				`t.yaml:13: services[s].policy.env[0]: bad pattern "LC_[": want a variable name or a glob like LC_*`,
				`t.yaml:13: services[s].policy.env[1]: bad pattern "A=B": want a variable name or a glob like LC_*`,
			}},
		{"bad forward", func(t *testing.T) string {
			return minimal + "    policy: {forward_local: [\"*:*\", \"db\", \"db:x\", \"d b:1\", \"0.0.0.0:5432\", \"[::]:22\", \"[::ffff:0.0.0.0]:*\"]}\n"
		}, []string{
			`t.yaml:13: services[s].policy.forward_local[1]: bad forward "db": want host:port, where host or port may be *`,
			`t.yaml:13: services[s].policy.forward_local[2]: bad forward "db:x": want host:port, where host or port may be *`,
			`t.yaml:13: services[s].policy.forward_local[3]: bad forward "d b:1": want host:port, where host or port may be *`,
			`t.yaml:13: services[s].policy.forward_local[4]: bad forward "0.0.0.0:5432": 0.0.0.0 names no host (the target would connect to itself)`,
			`t.yaml:13: services[s].policy.forward_local[5]: bad forward "[::]:22": :: names no host (the target would connect to itself)`,
			`t.yaml:13: services[s].policy.forward_local[6]: bad forward "[::ffff:0.0.0.0]:*": ::ffff:0.0.0.0 names no host (the target would connect to itself)`,
		}},
		{"bad forward mapping", func(t *testing.T) string {
			return minimal + "    policy:\n      forward_local:\n        - {to: \"w:443\", protocols: [tls, gopher], sni: [\"a b\"], port: 1}\n        - {sni: [a]}\n        - {to: \"b:22\", protocols: [ssh]}\n"
		}, []string{
			`t.yaml:15: services[s].policy.forward_local[0].protocols[1]: unknown protocol "gopher": want one of [ssh tls http postgresql unknown]`,
			`t.yaml:15: services[s].policy.forward_local[0].sni[0]: bad host pattern "a b": want a host name where * matches any run and ? one character`,
			`t.yaml:15: services[s].policy.forward_local[0].port: unknown key (did you mean "host"?)`,
			`t.yaml:16: services[s].policy.forward_local[1].to: missing required key`,
			`t.yaml:17: services[s].policy.forward_local[2].protocols: ssh inside a forward needs forward_ssh: true`,
		}},
		{"read_only contradiction", func(t *testing.T) string {
			return minimal + "    policy:\n      subsystems:\n        sftp: {read_only: true, allow_upload: true, allow_mkdir: false}\n"
		}, []string{`t.yaml:15: services[s].policy.subsystems.sftp.allow_upload: contradicts read_only: true`}},
		{"bad duration", func(t *testing.T) string { return minimal + "    connect_timeout: 10\n    idle_timeout: -1s\n" },
			[]string{
				`t.yaml:13: services[s].connect_timeout: bad duration "10": want a number with a unit, like 30s or 5m`,
				`t.yaml:14: services[s].idle_timeout: duration -1s must not be negative`,
			}},
		{"zero connect timeout", func(t *testing.T) string { return minimal + "    connect_timeout: 0s\n" },
			[]string{`t.yaml:13: services[s].connect_timeout: must be more than 0`}},
		{"bad enum", func(t *testing.T) string { return minimal + "    on_reload: stop\n" },
			[]string{`t.yaml:13: services[s].on_reload: bad value "stop": want one of end, finish`}},
		{"bad log level", func(t *testing.T) string { return edit(t, "{name: gw}", "{name: gw, log: {level: loud}}") },
			[]string{`t.yaml:1: gateway.log.level: bad value "loud": want one of debug, info, warn, error`}},
		{"bad host key type", func(t *testing.T) string {
			return edit(t, "{name: gw}", "{name: gw, host_key_types: [ed25519, dsa, ed25519]}")
		}, []string{
			`t.yaml:1: gateway.host_key_types[1]: bad value "dsa": want one of ed25519, rsa, ecdsa`,
			`t.yaml:1: gateway.host_key_types[2]: ed25519 listed twice`,
		}},
		{"bad max_startups", func(t *testing.T) string { return edit(t, "{name: gw}", `{name: gw, max_startups: "10:30"}`) },
			[]string{`t.yaml:1: gateway.max_startups: bad value "10:30": want "start:rate:full" or "start"`}},
		{"max_startups full below start", func(t *testing.T) string {
			return edit(t, "{name: gw}", `{name: gw, max_startups: "10:30:5"}`)
		}, []string{`t.yaml:1: gateway.max_startups: bad value "10:30:5": full must not be below start`}},
		{"bad password hash", func(t *testing.T) string {
			return edit(t, "authorized_keys: a.pub}", `password_hash: "$1$abc"}`)
		}, []string{`t.yaml:5: users[alice].password_hash: not a bcrypt hash: want it to start with $2a$, $2b$ or $2y$`}},
		{"short password hash", func(t *testing.T) string {
			return edit(t, "authorized_keys: a.pub}", `password_hash: "$2b$10$abc"}`)
		}, []string{`t.yaml:5: users[alice].password_hash: not a bcrypt hash: want 60 characters`}},
		{"user without credentials", func(t *testing.T) string { return edit(t, ", authorized_keys: a.pub}", "}") },
			[]string{`t.yaml:5: users[alice]: user "alice" cannot log in: set authorized_keys or password_hash, or list trusted_user_ca_keys`}},
		{"reuse_idle out of range", func(t *testing.T) string { return edit(t, "{known_hosts: kh}", `{known_hosts: kh, reuse_idle: 0}`) },
			[]string{`t.yaml:12: services[s].upstream.reuse_idle: 0 is out of range [1, 256]`}},
		{"max_outstanding out of range", func(t *testing.T) string {
			return minimal + "    policy: {subsystems: {sftp: {max_outstanding: 0}}}\n"
		}, []string{`t.yaml:13: services[s].policy.subsystems.sftp.max_outstanding: 0 is out of range [1, 65536]`}},
		{"bad upstream user", func(t *testing.T) string { return edit(t, "{known_hosts: kh}", `{user: "%h", known_hosts: kh}`) },
			[]string{`t.yaml:12: services[s].upstream.user: bad user "%h": only %u and %% may follow %`}},
		{"missing known_hosts", func(t *testing.T) string { return edit(t, "{known_hosts: kh}", "{identity: id}") },
			[]string{`t.yaml:12: services[s].upstream.known_hosts: missing required key`}},
		{"user_ca_type and user_ca_previous without user_ca", func(t *testing.T) string {
			return edit(t, "{known_hosts: kh}", "\n      known_hosts: kh\n      user_ca_type: dsa\n      user_ca_previous: old")
		}, []string{
			`t.yaml:14: services[s].upstream.user_ca_type: bad value "dsa": want one of ed25519, ecdsa, rsa`,
			`t.yaml:14: services[s].upstream.user_ca_type: needs user_ca`,
			`t.yaml:15: services[s].upstream.user_ca_previous: needs user_ca`,
		}},
		{"user_ca_previous is user_ca", func(t *testing.T) string {
			return edit(t, "{known_hosts: kh}", "{known_hosts: kh, user_ca: state/ca, user_ca_previous: ./state/../state/ca}")
		}, []string{`t.yaml:12: services[s].upstream.user_ca_previous: names the same file as user_ca`}},
		{"record_input without record", func(t *testing.T) string { return minimal + "    record_input: true\n" },
			[]string{`t.yaml:13: services[s].record_input: needs record: true`}},
		{"console_join read_write without record", func(t *testing.T) string { return minimal + "    console_join: read_write\n" },
			[]string{`t.yaml:13: services[s].console_join: read_write needs record: true (operators join through the live view of the recording)`}},
		{"console_join bad mode", func(t *testing.T) string { return minimal + "    record: true\n    console_join: write\n" },
			[]string{`t.yaml:14: services[s].console_join: bad value "write": want one of read_only, read_write`}},
		{"bad audit sink", func(t *testing.T) string { return minimal + "audit: {sink: mysql, queue_size: 0}\n" },
			[]string{
				`t.yaml:13: audit.sink: bad sink "mysql": want sqlite, jsonl:PATH or postgres://...`,
				`t.yaml:13: audit.queue_size: 0 is out of range [1, 16777216]`,
			}},
		{"audit probe_interval too short", func(t *testing.T) string { return minimal + "audit: {probe_interval: 10ms}\n" },
			[]string{`t.yaml:13: audit.probe_interval: probe_interval 10ms is below the minimum 100ms`}},
		{"fleet lease too short, and no shared store", func(t *testing.T) string {
			return edit(t, "gateway: {name: gw}", "gateway: {name: gw, fleet: {lease: 1s}}")
		}, []string{
			`t.yaml:1: gateway.fleet.lease: lease 1s is below the minimum 3s`,
			`t.yaml:1: gateway.fleet: gateway.fleet needs audit.sink postgres://...: the fleet's registry lives in the shared store`,
		}},
		{"bad failure mode", func(t *testing.T) string { return minimal + "record: {on_failure: ignore}\n" },
			[]string{`t.yaml:13: record.on_failure: bad value "ignore": want one of fail_closed, best_effort`}},
		{"negative stream cap", func(t *testing.T) string { return minimal + "record: {max_bytes_per_stream: -1}\n" },
			[]string{`t.yaml:13: record.max_bytes_per_stream: -1 is out of range [0, 1125899906842624]`}},
		{"tproxy with proxy_protocol", func(t *testing.T) string {
			return strings.Replace(minimal, "router: {inband: true}", "router: {transparent: true, tproxy: true}", 1) + "    proxy_protocol: {trusted: [\"127.0.0.1/32\"]}\n"
		},
			[]string{`t.yaml:11: services[s].router.tproxy: takes the destination from the connection's own address, which a PROXY header would replace: set no proxy_protocol with it`}},
		{"empty proxy_protocol", func(t *testing.T) string { return minimal + "    proxy_protocol: {trusted: []}\n" },
			[]string{`t.yaml:13: services[s].proxy_protocol.trusted: must list at least one network`}},
		{"no services", func(t *testing.T) string {
			return "gateway: {name: gw}\nservices: []\n"
		}, []string{`t.yaml:2: services: must list at least one service`}},
		{"empty file", func(t *testing.T) string { return "# nothing\n" },
			[]string{`t.yaml:1: empty file: want a mapping with at least gateway and services`}},
		{"syntax error", func(t *testing.T) string { return minimal + "audit: sink: sqlite\n" },
			[]string{`t.yaml:13: yaml: mapping values are not allowed in this context`}},
		{"two documents", func(t *testing.T) string { return minimal + "---\ngateway: {name: gw}\n" },
			[]string{`t.yaml:13: a second YAML document; the file must hold one`}},
		{"aliases", func(t *testing.T) string {
			return "zones: &zs [{name: z, networks: [\"127.0.0.0/8\"]}]\n" + strings.Replace(minimal, "zones:\n", "x: *zs\nzones:\n", 1)
		}, []string{
			`t.yaml:3: x: unknown key`,
			`t.yaml:4: zones: duplicate key (first at line 1)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errorLines(t, tc.text(t))
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tc.want, "\n     "))
			}
		})
	}
}

// TestAliasBomb checks that nested aliases ("billion laughs") are cut off
// instead of being expanded.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [%s*a%d]\n", i, i, strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), i-1)
	}
	b.WriteString("gateway: {name: gw}\nservices: *a9\n")
	got := errorLines(t, b.String())
	want := "t.yaml:12: services: aliases expand to more than 100000 nodes"
	if !slices.Contains(got, want) {
		t.Errorf("errors: got %q, want them to include %q", got, want)
	}
	if len(got) > 20 {
		t.Errorf("errors: got %d, want the expansion cut off", len(got))
	}
}

// TestManyErrors checks that one file's errors are all reported, in line
// order, including cross-reference errors found after decoding.
func TestManyErrors(t *testing.T) {
	text := `gateway:
  name: gw
  login_grace_time: 2 minutes
zones:
  - {name: z, parent: nowhere, networks: ["127.0.0.0/8"]}
users:
  - {name: alice, authorized_keys: a.pub, shell: /bin/sh}
services:
  - name: s
    listen: 127.0.0.1:2222
    client_zones: [z, office]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: kh}
    policy:
      pty: 1
      exec: {allow: ["("]}
`
	want := []string{
		`t.yaml:3: gateway.login_grace_time: bad duration "2 minutes": want a number with a unit, like 30s or 5m`,
		`t.yaml:5: zones[z].parent: unknown zone "nowhere"`,
		`t.yaml:7: users[alice].shell: unknown key`,
		`t.yaml:11: services[s].client_zones[1]: unknown zone "office"`,
		`t.yaml:16: services[s].policy.pty: want true or false, got number 1`,
		"t.yaml:17: services[s].policy.exec.allow[0]: bad pattern: missing closing ): `(`",
	}
	if got := errorLines(t, text); !slices.Equal(got, want) {
		t.Errorf("errors:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}
