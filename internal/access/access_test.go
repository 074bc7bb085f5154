package access

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
)

const base = `gateway: {name: gw}
zones:
  - {name: z, networks: ["127.0.0.0/8"]}
users:
  - {name: alice, authorized_keys: a.pub}
  - {name: bob, authorized_keys: b.pub, groups: [ops]}
  - {name: carol, authorized_keys: c.pub, groups: [dba, ops]}
services:
  - name: s
    listen: 127.0.0.1:2222
    client_zones: [z]
    server_zones: [z]
    router: {inband: true}
    upstream: {known_hosts: kh}
`

const inventory = `hosts:
  - {name: db1, address: "127.0.0.1:22", labels: {env: prod, role: db}}
  - {name: db2, address: "127.0.0.2:22", labels: {env: dev, role: db}}
  - {name: web1, address: "127.0.0.3:22", labels: {env: prod, role: web}}
  - {name: "db1.prod", address: "127.0.0.4:22"}
roles:
  - name: dba
    users: [alice]
    hosts: [db1]
    logins: [postgres, app]
    policy: {shell: true}
  - name: ops
    groups: [ops]
    hosts: ["*"]
    logins: [root, ops]
    policy: {pty: true, shell: true}
  - name: dba-group
    groups: [dba]
    hosts: ["role=db"]
    logins: [postgres]
  - name: prod-readers
    groups: [dba]
    hosts: ["env=prod,role=web", "db?"]
    logins: [reader]
    hours: {days: [mon-fri], from: "08:00", to: "18:00", time_zone: Europe/Berlin}
`

// testSpec turns the policy keys the tests use into a Spec.
func testSpec(p config.Policy) policy.Spec { return policy.Spec{Pty: p.PTY, Shell: p.Shell} }

func compile(t testing.TB, text string) (*Rules, *config.Config) {
	t.Helper()
	cfg, err := config.Parse("/etc/sluice/t.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: got error\n%v\nwant none", err)
	}
	r, err := Compile(cfg, testSpec)
	if err != nil {
		t.Fatal(err)
	}
	return r, cfg
}

// A Monday at noon in Berlin, and a Sunday.
var (
	monday = time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	sunday = time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
)

func TestDecide(t *testing.T) {
	r, _ := compile(t, base+inventory)
	tests := []struct {
		name      string
		req       Request
		accept    bool
		role      string
		rule      string
		login     string
		loginRule string
	}{
		{"default login", Request{User: "alice", Host: "db1"}, true, "dba", "roles[dba].hosts[0]", "postgres", "roles[dba].logins[0]"},
		{"explicit login", Request{User: "alice", Host: "db1", Login: "app"}, true, "dba", "roles[dba].hosts[0]", "app", "roles[dba].logins[1]"},
		{"host in capitals", Request{User: "alice", Host: "DB1"}, true, "dba", "roles[dba].hosts[0]", "postgres", "roles[dba].logins[0]"},
		{"other host refused", Request{User: "alice", Host: "db2"}, false, "", "roles", "", ""},
		{"login outside role", Request{User: "alice", Host: "db1", Login: "root"}, false, "dba", "roles[dba].logins", "", ""},
		{"unknown host", Request{User: "alice", Host: "db9"}, false, "", "hosts", "", ""},
		{"login case", Request{User: "alice", Host: "db1", Login: "POSTGRES"}, false, "dba", "roles[dba].logins", "", ""},
		{"user case", Request{User: "Alice", Host: "db1"}, false, "", "roles", "", ""},
		{"label selector is not a host", Request{User: "carol", Groups: []string{"dba"}, Host: "role=db"}, false, "", "hosts", "", ""},
		{"glob is not a host", Request{User: "bob", Host: "*"}, false, "", "hosts", "", ""},
		{"group reaches all", Request{User: "bob", Groups: []string{"ops"}, Host: "db2"}, true, "ops", "roles[ops].hosts[0]", "root", "roles[ops].logins[0]"},
		{"group other login", Request{User: "bob", Groups: []string{"ops"}, Host: "web1", Login: "ops"}, true, "ops", "roles[ops].hosts[0]", "ops", "roles[ops].logins[1]"},
		// carol is in dba and ops: glob "*" beats labels, so ops decides
		// the default login; asking for postgres leaves dba-group alone.
		{"glob beats labels", Request{User: "carol", Groups: []string{"dba", "ops"}, Host: "db2"}, true, "ops", "roles[ops].hosts[0]", "root", "roles[ops].logins[0]"},
		{"login picks the role", Request{User: "carol", Groups: []string{"dba", "ops"}, Host: "db2", Login: "postgres"}, true, "dba-group", "roles[dba-group].hosts[0]", "postgres", "roles[dba-group].logins[0]"},
		{"no merging of logins", Request{User: "carol", Groups: []string{"dba"}, Host: "db2", Login: "root"}, false, "prod-readers", "roles[prod-readers].logins", "", ""},
		{"hours open", Request{User: "carol", Groups: []string{"dba"}, Host: "web1", Time: monday}, true, "prod-readers", "roles[prod-readers].hosts[0]", "reader", "roles[prod-readers].logins[0]"},
		{"hours closed", Request{User: "carol", Groups: []string{"dba"}, Host: "web1", Time: sunday}, false, "prod-readers", "roles[prod-readers].hours", "", ""},
		// The glob "db?" beats "role=db" for db1, but outside its hours
		// the less specific role decides.
		{"hours closed falls back", Request{User: "carol", Groups: []string{"dba"}, Host: "db1", Time: sunday}, true, "dba-group", "roles[dba-group].hosts[0]", "postgres", "roles[dba-group].logins[0]"},
		{"glob does not cross dots", Request{User: "carol", Groups: []string{"dba"}, Host: "db1.prod", Time: monday}, false, "", "roles", "", ""},
		{"user name is not a group", Request{User: "ops", Host: "db1"}, false, "", "roles", "", ""},
		{"groups the config does not give", Request{User: "alice", Groups: []string{"ops"}, Host: "db2"}, true, "ops", "roles[ops].hosts[0]", "root", "roles[ops].logins[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Time.IsZero() {
				tt.req.Time = monday
			}
			d := r.Decide(tt.req)
			if d.Accept != tt.accept || d.Role != tt.role || d.Rule != tt.rule || d.Login != tt.login || d.LoginRule != tt.loginRule {
				t.Errorf("got accept %v role %q rule %q login %q loginRule %q (%s), want %v %q %q %q %q",
					d.Accept, d.Role, d.Rule, d.Login, d.LoginRule, d.Reason, tt.accept, tt.role, tt.rule, tt.login, tt.loginRule)
			}
			if d.Accept != (d.Policy != nil) {
				t.Errorf("got policy %v with accept %v", d.Policy, d.Accept)
			}
			e, steps := r.Explain(tt.req)
			if e != d {
				t.Errorf("Explain decided %+v, Decide %+v", e, d)
			}
			if len(steps) == 0 {
				t.Error("Explain recorded no steps")
			}
		})
	}
}

func TestDecidePolicyIsTheRole(t *testing.T) {
	r, _ := compile(t, base+inventory)
	d := r.Decide(Request{User: "alice", Host: "db1", Time: monday})
	if v := d.Policy.Pty(policy.Restrictions{}); v.Accept || v.Rule != "roles[dba].policy.pty" {
		t.Errorf("got pty verdict %+v, want refused by roles[dba].policy.pty (left out is denied)", v)
	}
	if v := d.Policy.Shell(); !v.Accept || v.Rule != "roles[dba].policy.shell" {
		t.Errorf("got shell verdict %+v, want accepted by roles[dba].policy.shell", v)
	}
}

func TestHoursAcrossMidnight(t *testing.T) {
	h := &config.Hours{From: 22 * 60, To: 6 * 60, Location: time.UTC}
	h.Days[time.Friday] = true
	fri := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{fri.Add(23 * time.Hour), true},
		{fri.Add(24*time.Hour + 5*time.Hour), true}, // Saturday 05:00 belongs to Friday's night
		{fri.Add(24*time.Hour + 6*time.Hour), false},
		{fri.Add(5 * time.Hour), false}, // Friday 05:00 belongs to Thursday's night
		{fri.Add(21 * time.Hour), false},
	} {
		if got := h.Contains(tt.at); got != tt.want {
			t.Errorf("Contains(%s): got %v, want %v", tt.at, got, tt.want)
		}
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"glob in host name", "hosts:\n  - {name: \"db*\", address: \"127.0.0.1:22\"}\n", `t.yaml:16: hosts[0].name: bad host name "db*"`},
		{"underscore in host name", "hosts:\n  - {name: db_1, address: \"127.0.0.1:22\"}\n", `hosts[db_1].name: bad host name`},
		{"address as host name", "hosts:\n  - {name: 10.0.0.5, address: \"127.0.0.1:22\"}\n", `bad host name "10.0.0.5"`},
		{"duplicate without case", "hosts:\n  - {name: db1, address: \"127.0.0.1:22\"}\n  - {name: DB1, address: \"127.0.0.1:23\"}\n", `duplicate host name "db1"`},
		{"duplicate address", "hosts:\n  - {name: db1, address: \"127.0.0.1:22\"}\n  - {name: db2, address: \"127.0.0.1:22\"}\n", `hosts[db2].address: host db2 has the address of host db1`},
		{"duplicate address spelt otherwise", "hosts:\n  - {name: db1, address: \"[::ffff:127.0.0.1]:22\"}\n  - {name: db2, address: \"127.0.0.1:22\"}\n", `host db2 has the address of host db1`},
		{"duplicate address without case", "hosts:\n  - {name: db1, address: \"db.corp:22\"}\n  - {name: db2, address: \"DB.corp:22\"}\n", `host db2 has the address of host db1`},
		{"label injection", "hosts:\n  - {name: db1, address: \"127.0.0.1:22\", labels: {env: \"prod,role=db\"}}\n", `bad label value "prod,role=db"`},
		{"selector injection", "roles:\n  - {name: r, users: [alice], hosts: [\"env=prod=x\"], logins: [a]}\n", `bad host selector "env=prod=x"`},
		{"selector bracket", "roles:\n  - {name: r, users: [alice], hosts: [\"db[12]\"], logins: [a]}\n", `bad host selector "db[12]"`},
		{"selector comma glob", "roles:\n  - {name: r, users: [alice], hosts: [\"db1,db2\"], logins: [a]}\n", `bad host selector "db1,db2"`},
		{"login dash", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: [\"-oProxyCommand\"]}\n", `bad login "-oProxyCommand"`},
		{"login plus", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: [\"a+b\"]}\n", `bad login "a+b"`},
		{"unknown user", "roles:\n  - {name: r, users: [mallory], hosts: [db1], logins: [a]}\n", `unknown user "mallory"`},
		{"nobody", "roles:\n  - {name: r, hosts: [db1], logins: [a]}\n", `role names nobody`},
		{"no logins", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: []}\n", `must list at least one login`},
		{"bad zone", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: [a], hours: {from: \"08:00\", to: \"18:00\", time_zone: Mars/Base}}\n", `unknown time zone "Mars/Base"`},
		{"bad time", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: [a], hours: {from: \"8:00\", to: \"18:00\"}}\n", `bad time "8:00"`},
		{"bad day", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: [a], hours: {days: [mon-xyz], from: \"08:00\", to: \"18:00\"}}\n", `bad day "mon-xyz"`},
		{"unknown key", "roles:\n  - {name: r, users: [alice], hosts: [db1], logins: [a], login: [b]}\n", `unknown key (did you mean "logins"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("/etc/sluice/t.yaml", []byte(base+tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLint(t *testing.T) {
	_, cfg := compile(t, base+inventory+`  - name: nothing
    users: [alice]
    hosts: ["nosuch*", "env=staging"]
    logins: [x]
  - name: empty-group
    groups: [nobody-has-it]
    hosts: [db1]
    logins: [x]
`)
	var got []string
	for _, w := range Lint(cfg) {
		got = append(got, w.Error())
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{
		"t.yaml:40: roles[nothing].hosts: warning: role nothing matches no host of the inventory",
		"t.yaml:44: roles[empty-group].groups: warning: role empty-group matches no user",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("got warnings\n%s\nwant one %q", text, want)
		}
	}
	_, cfg = compile(t, base+`hosts:
  - {name: lonely, address: "127.0.0.1:22"}
  - {name: db1, address: "127.0.0.1:23"}
roles:
  - {name: r, users: [alice], hosts: [db1], logins: [a]}
`)
	text = ""
	for _, w := range Lint(cfg) {
		text += w.Error() + "\n"
	}
	for _, want := range []string{"t.yaml:6: users[bob]: warning: user bob may log in but no role names them", "t.yaml:16: hosts[lonely]: warning: no role reaches host lonely"} {
		if !strings.Contains(text, want) {
			t.Errorf("got warnings\n%s\nwant one %q", text, want)
		}
	}
	// With groups from the identity provider, who is in a group is not
	// known from the file: no warning says a role or a user is unreachable.
	cfg.OIDC = &config.OIDC{GroupsClaim: "groups"}
	cfg.Roles = append(cfg.Roles, config.Role{Name: "g", Groups: []string{"idp-only"}, Hosts: []string{"db1"}, Line: 99})
	for _, w := range Lint(cfg) {
		if strings.Contains(w.Msg, "matches no user") || strings.Contains(w.Msg, "no role names them") {
			t.Errorf("got warning %q with provider groups, want none about members", w)
		}
	}
}

// BenchmarkDecide decides one session against 10,000 hosts and 1,000
// roles of three selectors each: the user is in group "all", which 10
// roles name, and in 20 more groups, 10 of which a role names: 20
// candidate roles, two of which match the host.
func BenchmarkDecide(b *testing.B) {
	var y strings.Builder
	y.WriteString(`gateway: {name: gw}
zones:
  - {name: z, networks: ["127.0.0.0/8"]}
users:
  - {name: alice, authorized_keys: a.pub, groups: [all`)
	for g := range 20 {
		fmt.Fprintf(&y, ", g%d", g*50)
	}
	y.WriteString(`]}
services:
  - {name: s, listen: "127.0.0.1:2222", client_zones: [z], server_zones: [z], router: {inband: true}, upstream: {known_hosts: kh}}
hosts:
`)
	for i := range 10000 {
		fmt.Fprintf(&y, "  - {name: h%d.dc%d, address: \"10.%d.%d.%d:22\", labels: {env: e%d, team: t%d}}\n", i, i%10, i/65536, i/256%256, i%256, i%5, i%100)
	}
	y.WriteString("roles:\n")
	for i := range 1000 {
		group := fmt.Sprintf("g%d", i)
		if i%100 == 0 {
			group = "all"
		}
		fmt.Fprintf(&y, "  - {name: r%d, groups: [%s], hosts: [\"h%d*\", \"env=e%d,team=t%d\", h%d.dc%d], logins: [l%d, root], policy: {shell: true}}\n", i, group, i, i%5, i%100, i*7, i*7%10, i)
	}
	r, cfg := compile(b, y.String())
	groups := cfg.User("alice").Groups
	req := Request{User: "alice", Groups: groups, Host: "h9000.dc0", Login: "root", Time: monday}
	if d := r.Decide(req); !d.Accept {
		b.Fatalf("got %+v, want accepted", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Decide(req)
	}
}
