package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"context"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/access"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// rolesTail is the inventory of two sshd and the roles of the access
// tests: alice (a user) reaches db1 as the sshd's login or nobody; group
// ops reaches both as the sshd's login.
const rolesTail = `hosts:
  - {name: db1, address: "{sshd0}", labels: {env: prod}}
  - {name: db2, address: "{sshd1}", labels: {env: dev}}
roles:
  - name: dba
    users: [alice]
    hosts: [db1]
    logins: ["{user}", nobody]
    policy:
      pty: true
      shell: true
      exec: {allow: [".*"]}
      subsystems: {sftp: {}}
  - name: ops
    groups: [ops]
    hosts: ["env=prod", "env=dev"]
    logins: ["{user}"]
    policy:
      exec: {allow: [".*"]}
`

// rolesWorld is a world with rolesTail and a user bob in group ops, whose
// key it returns.
func rolesWorld(t *testing.T, service string) (*world, string) {
	t.Helper()
	keys := t.TempDir()
	_, bobKey := sshtest.NewKey(t, keys, "bob_ed25519")
	w := newWorld(t, worldOptions{
		moreSshd:   1,
		users:      fmt.Sprintf("  - name: bob\n    authorized_keys: %s.pub\n    groups: [ops]\n", bobKey),
		tail:       rolesTail,
		service:    service,
		sshdConfig: []string{"AcceptEnv GIT_PROTOCOL"},
	})
	return w, bobKey
}

// as runs tool as the gateway user whose key is key (alice's when empty).
func (w *world) as(key, tool string) []string {
	if key == "" {
		key = w.aliceKey
	}
	return append(sshtest.ClientArgs(w.t, tool, w.port, key, w.hostKey), "-o", "BindAddress="+clientAddr)
}

// accessEvents returns the access events whose login_asked or host match.
func (w *world) accessEvents(match func(audit.Event) bool) []audit.Event {
	return w.events(EventAccess, match)
}

// TestRolesOpenSSHClients: alice reaches db1 as her role's default login,
// and names the login with "+LOGIN" unquoted in ssh, scp, sftp, rsync and
// git; a raw address with the '_' port separator reaches db1 because it
// is db1's address; db2, a login outside her role and an address outside
// the inventory are refused, each audited with its rule; bob, in group
// ops, reaches both.
func TestRolesOpenSSHClients(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"scp", "sftp", "rsync", "git"} {
		sshtest.RequireTool(t, tool)
	}
	w, bobKey := rolesWorld(t, "")
	login := w.osUser

	// ssh, default login.
	r := w.run(nil, "ssh", append(w.as("", "ssh"), "alice+db1@127.0.0.1", "id -un")...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != login {
		t.Fatalf("ssh alice+db1: got exit %d, %q (%s), want %s", r.code, r.stdout, r.stderr, login)
	}
	evs := w.accessEvents(func(e audit.Event) bool { return e.User == "alice" && e.Detail["host"] == "db1" })
	if len(evs) != 1 || evs[0].Verdict != audit.Accept || evs[0].Rule != "roles[dba].hosts[0]" || evs[0].Detail["role"] != "dba" || evs[0].Detail["login_rule"] != "roles[dba].logins[0]" {
		t.Fatalf("got access events %+v, want one accepted by roles[dba].hosts[0] with logins[0]", evs)
	}

	// The explicit login, unquoted, with each client.
	spelled := "alice+db1+" + login
	if r := w.run(nil, "ssh", append(w.as("", "ssh"), spelled+"@127.0.0.1", "id -un")...); r.code != 0 || strings.TrimSpace(r.stdout) != login {
		t.Fatalf("ssh %s: got exit %d, %q (%s)", spelled, r.code, r.stdout, r.stderr)
	}
	src := filepath.Join(w.dir, "src.txt")
	if err := os.WriteFile(src, []byte("hello roles\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(tool, path string) {
		t.Helper()
		if got, err := os.ReadFile(path); err != nil || string(got) != "hello roles\n" {
			t.Errorf("%s: got %q, %v; want the file copied", tool, got, err)
		}
	}
	dst := filepath.Join(w.dir, "via-scp.txt")
	if r := w.run(nil, "scp", append(w.as("", "scp"), src, spelled+"@127.0.0.1:"+dst)...); r.code != 0 {
		t.Fatalf("scp: exit %d: %s", r.code, r.stderr)
	}
	check("scp", dst)
	// A raw address with the '_' port separator, which scp takes too.
	raw := "alice+" + strings.Replace(w.sshd.Addr, ":", "_", 1) + "+" + login
	dst = filepath.Join(w.dir, "via-scp-raw.txt")
	if r := w.run(nil, "scp", append(w.as("", "scp"), src, raw+"@127.0.0.1:"+dst)...); r.code != 0 {
		t.Fatalf("scp %s: exit %d: %s", raw, r.code, r.stderr)
	}
	check("scp raw address", dst)
	dst = filepath.Join(w.dir, "via-sftp.txt")
	if r := w.run(strings.NewReader("put "+src+" "+dst+"\n"), "sftp", append(w.as("", "sftp"), "-b", "-", spelled+"@127.0.0.1")...); r.code != 0 {
		t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
	}
	check("sftp", dst)
	dst = filepath.Join(w.dir, "via-rsync.txt")
	sshCmd := "ssh " + strings.Join(w.as("", "ssh"), " ")
	if r := w.run(nil, "rsync", "-e", sshCmd, src, spelled+"@127.0.0.1:"+dst); r.code != 0 {
		t.Fatalf("rsync: exit %d: %s", r.code, r.stderr)
	}
	check("rsync", dst)
	repo := filepath.Join(w.dir, "repo.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	clone := filepath.Join(w.dir, "clone")
	if r := w.run(nil, "env", "GIT_SSH_COMMAND="+sshCmd, "git", "clone", "-q", spelled+"@127.0.0.1:"+repo, clone); r.code != 0 {
		t.Fatalf("git clone: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(clone, ".git")); err != nil {
		t.Fatalf("git clone: %v", err)
	}
	url := "ssh://" + spelled + "@127.0.0.1:" + strconv.Itoa(w.port) + repo
	if r := w.run(nil, "env", "GIT_SSH_COMMAND="+sshCmd, "git", "ls-remote", url); r.code != 0 {
		t.Fatalf("git ls-remote %s: exit %d: %s", url, r.code, r.stderr)
	}
	asked := w.accessEvents(func(e audit.Event) bool { return e.Detail["login_asked"] == login })
	if len(asked) < 7 {
		t.Errorf("got %d access events asking for login %s, want one per client (7)", len(asked), login)
	}
	for _, e := range asked {
		if e.Verdict != audit.Accept || e.Rule != "roles[dba].hosts[0]" {
			t.Errorf("got %+v, want accepted by roles[dba].hosts[0]", e)
		}
	}
	// The second login is chosen, whatever the target makes of it.
	w.run(nil, "ssh", append(w.as("", "ssh"), "alice+db1+nobody@127.0.0.1", "true")...)
	if evs := w.accessEvents(func(e audit.Event) bool { return e.Detail["login_asked"] == "nobody" }); len(evs) != 1 || evs[0].Verdict != audit.Accept || evs[0].Detail["login_rule"] != "roles[dba].logins[1]" {
		t.Errorf("got %+v, want nobody granted by roles[dba].logins[1]", evs)
	}

	// Refusals, each audited with its rule.
	refused := []struct{ name, rule, typ string }{
		{"alice+db2", "roles", EventAccess},
		{"alice+db1+daemon", "roles[dba].logins", EventAccess},
		{"alice+127.0.0.1_1", "hosts", "route"},
		{"alice+DB2", "roles", EventAccess},
	}
	for _, tt := range refused {
		r := w.run(nil, "ssh", append(w.as("", "ssh"), tt.name+"@127.0.0.1", "echo reached")...)
		if r.code == 0 || strings.Contains(r.stdout, "reached") {
			t.Errorf("ssh %s: got exit 0 (%q), want refused", tt.name, r.stdout)
		}
	}
	for _, tt := range refused {
		evs := w.events(tt.typ, func(e audit.Event) bool {
			return e.Verdict == audit.Reject && e.Rule == tt.rule && e.User == "alice"
		})
		if len(evs) == 0 {
			t.Errorf("%s: got no refusal by rule %q in %s events", tt.name, tt.rule, tt.typ)
		}
	}

	// bob, in group ops, reaches both hosts.
	for _, host := range []string{"db1", "db2"} {
		r := w.run(nil, "ssh", append(w.as(bobKey, "ssh"), "bob+"+host+"@127.0.0.1", "id -un")...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != login {
			t.Errorf("bob+%s: got exit %d, %q (%s), want %s", host, r.code, r.stdout, r.stderr, login)
		}
		evs := w.accessEvents(func(e audit.Event) bool { return e.User == "bob" && e.Detail["host"] == host })
		if len(evs) != 1 || evs[0].Verdict != audit.Accept || evs[0].Detail["role"] != "ops" {
			t.Errorf("bob+%s: got %+v, want accepted by role ops", host, evs)
		}
	}
}

// TestRolesReloadEndsSession: a reload that takes alice out of her role
// ends her live session (on_reload: end), audited with the rule that no
// longer grants it; a reload that removes user bob ends his session even
// under on_reload: finish.
func TestRolesReloadEndsSession(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"end", "finish"} {
		t.Run(mode, func(t *testing.T) {
			w, _ := rolesWorld(t, "    on_reload: "+mode+"\n")
			client := w.dial(t, w.aliceConfigAs(t, "alice+db1"))
			defer client.Close()
			rtt := echoSession(t, client)
			rtt()
			if err := w.reloadWith(t, "users: [alice]", "groups: [nobody-is-in-it]"); err != nil {
				t.Fatalf("reload: %v", err)
			}
			evs := w.events(EventReload, nil)
			if len(evs) != 1 || evs[0].Rule != "roles" || evs[0].Detail["role"] != "dba" || evs[0].Detail["on_reload"] != mode {
				t.Fatalf("got reload events %+v, want one by rule roles for role dba, on_reload %s", evs, mode)
			}
			switch ended := endsWithin(client, 5*time.Second); {
			case ended && mode == "finish":
				t.Fatal("finish: the live session was ended, want it kept")
			case !ended && mode == "end":
				t.Fatal("end: the live session still runs 5s after the reload")
			case !ended:
				rtt()
			}
		})
	}
}

// aliceConfigAs is aliceConfig with another SSH user name.
func (w *world) aliceConfigAs(t *testing.T, user string) *ssh.ClientConfig {
	cfg := w.aliceConfig(t)
	cfg.User = user
	return cfg
}

// TestExplainAgreesWithGateway: for every case, the decision the gateway
// audits for a connection is the one CompileAccess's rules (what `sluice
// explain` prints) make.
func TestExplainAgreesWithGateway(t *testing.T) {
	t.Parallel()
	w, _ := rolesWorld(t, "")
	cfg, err := config.Load(filepath.Join(w.dir, "sluice.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := CompileAccess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	login := w.osUser
	tests := []struct {
		sshUser, host, login string
	}{
		{"alice+db1", "db1", ""},
		{"alice+db1+" + login, "db1", login},
		{"alice+db1+nobody", "db1", "nobody"},
		{"alice+db1+daemon", "db1", "daemon"},
		{"alice+db2", "db2", ""},
		{"alice+Db1", "db1", ""},
		{"alice+db2+" + login, "db2", login},
		{"alice+" + strings.Replace(w.more[0].Addr, ":", "_", 1), "db2", ""},
	}
	for i, tt := range tests {
		t.Run(tt.sshUser, func(t *testing.T) {
			want, steps := rules.Explain(access.Request{User: "alice", Host: tt.host, Login: tt.login, Time: time.Now()})
			if len(steps) == 0 {
				t.Fatal("explain recorded no steps")
			}
			before := len(w.allEvents(EventAccess))
			if c, err := sshDialAs(w, w.aliceConfigAs(t, tt.sshUser)); err == nil {
				c.Close()
			}
			var evs []audit.Event
			for deadline := time.Now().Add(10 * time.Second); len(evs) <= before && time.Now().Before(deadline); sleepBriefly() {
				evs = w.allEvents(EventAccess)
			}
			if len(evs) != before+1 {
				t.Fatalf("case %d: got %d new access events, want 1", i, len(evs)-before)
			}
			got := evs[len(evs)-1]
			if got.Detail["host"] != tt.host || got.Detail["login_asked"] != nilIfEmpty(tt.login) {
				t.Fatalf("got event %+v, want host %s login %q", got, tt.host, tt.login)
			}
			if (got.Verdict == audit.Accept) != want.Accept || got.Rule != want.Rule || got.Detail["role"] != want.Role {
				t.Errorf("gateway: %s by %s (role %v); explain: accept %v by %s (role %s)", got.Verdict, got.Rule, got.Detail["role"], want.Accept, want.Rule, want.Role)
			}
		})
	}
}

// allEvents returns the audit events of typ stored so far, oldest first.
func (w *world) allEvents(typ string) []audit.Event {
	evs, err := w.gw.Store().Query(context.Background(), audit.Filter{Type: typ})
	if err != nil {
		w.t.Fatalf("audit query: %v", err)
	}
	return evs
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// sshDialAs connects and opens one session channel, so that the gateway
// routes and decides.
func sshDialAs(w *world, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	client := w.dial(w.t, cfg)
	s, err := client.NewSession()
	if err != nil {
		client.Close()
		return nil, err
	}
	s.Close()
	return client, nil
}

// bobConfig is an x/crypto client config for bob with SSH user name user.
func bobConfig(t *testing.T, w *world, key, user string) *ssh.ClientConfig {
	t.Helper()
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sshtest.ClientConfig(user, signer, w.hostKey)
	cfg.Timeout = 10 * time.Second
	return cfg
}

// TestReloadRemovingUserEndsSession: a reload that removes bob from users
// ends his live session although the service says on_reload: finish.
func TestReloadRemovingUserEndsSession(t *testing.T) {
	t.Parallel()
	w, bobKey := rolesWorld(t, "    on_reload: finish\n")
	client := w.dial(t, bobConfig(t, w, bobKey, "bob+db2"))
	defer client.Close()
	echoSession(t, client)()
	if err := w.reloadWith(t, "  - name: bob\n", "  - name: bobby\n"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	evs := w.events(EventReload, nil)
	if len(evs) != 1 || evs[0].Rule != "users" || evs[0].User != "bob" || evs[0].Detail["on_reload"] != "end" {
		t.Fatalf("got reload events %+v, want bob's session ended by rule users", evs)
	}
	if !endsWithin(client, 5*time.Second) {
		t.Fatal("bob's session still runs 5s after the reload removed him")
	}
}

// TestRoleLimits: max_sessions_per_user refuses a second live session,
// max_session_length ends the first, and hours outside the window refuse,
// each audited with its rule.
func TestRoleLimits(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	from, to := now.Add(2*time.Hour).Format("15:04"), now.Add(3*time.Hour).Format("15:04")
	tail := strings.Replace(rolesTail, "    logins: [\"{user}\", nobody]\n",
		"    logins: [\"{user}\", nobody]\n    max_sessions_per_user: 1\n    max_session_length: 15s\n", 1)
	tail = strings.Replace(tail, "    groups: [ops]\n", "    groups: [ops]\n    hours: {from: \""+from+"\", to: \""+to+"\", time_zone: UTC}\n", 1)
	keys := t.TempDir()
	_, bobKey := sshtest.NewKey(t, keys, "bob_ed25519")
	w := newWorld(t, worldOptions{
		moreSshd: 1,
		users:    fmt.Sprintf("  - name: bob\n    authorized_keys: %s.pub\n    groups: [ops]\n", bobKey),
		tail:     tail,
	})
	first := w.dial(t, w.aliceConfigAs(t, "alice+db1"))
	defer first.Close()
	started := time.Now()
	echoSession(t, first)()
	if c, err := sshDialAs(w, w.aliceConfigAs(t, "alice+db1")); err == nil {
		c.Close()
		t.Fatal("second session: got a channel, want refused by max_sessions_per_user")
	}
	if evs := w.events(EventAccess, func(e audit.Event) bool { return e.Rule == "roles[dba].max_sessions_per_user" }); len(evs) != 1 || evs[0].Verdict != audit.Reject {
		t.Errorf("got %+v, want one refusal by roles[dba].max_sessions_per_user", evs)
	}
	if !endsWithin(first, 60*time.Second) {
		t.Fatal("session still runs 60s after its max_session_length of 15s")
	}
	if d := time.Since(started); d < 14*time.Second {
		t.Errorf("session ended after %s, want about 15s", d)
	}
	if evs := w.events(EventAccess, func(e audit.Event) bool { return e.Rule == "roles[dba].max_session_length" }); len(evs) != 1 {
		t.Errorf("got %+v, want one event by roles[dba].max_session_length", evs)
	}
	// The ended session no longer counts.
	var again *ssh.Client
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; sleepBriefly() {
		if again, err = sshDialAs(w, w.aliceConfigAs(t, "alice+db1")); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("a session after the first ended: %v", err)
	}
	again.Close()
	// bob's role is outside its hours.
	if c, err := sshDialAs(w, bobConfig(t, w, bobKey, "bob+db2")); err == nil {
		c.Close()
		t.Fatal("bob outside his role's hours: got a channel, want refused")
	}
	if evs := w.events(EventAccess, func(e audit.Event) bool { return e.User == "bob" }); len(evs) != 1 || evs[0].Rule != "roles[ops].hours" || evs[0].Verdict != audit.Reject {
		t.Errorf("got %+v, want bob refused by roles[ops].hours", evs)
	}
}

// TestReloadAddingRolesRechecksSessions: a session that started before
// the config had roles is not granted by any: a reload adding roles ends
// it under on_reload: end.
func TestReloadAddingRolesRechecksSessions(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{service: "    on_reload: end\n"})
	client := w.dial(t, w.aliceConfig(t))
	defer client.Close()
	echoSession(t, client)()
	roles := strings.NewReplacer("{sshd0}", w.sshd.Addr, "{sshd1}", "127.0.0.1:1", "{user}", w.osUser).Replace(rolesTail)
	if err := w.reloadWith(t, "audit:\n  sink: sqlite\n", "audit:\n  sink: sqlite\n"+roles); err != nil {
		t.Fatalf("reload: %v", err)
	}
	evs := w.events(EventReload, nil)
	if len(evs) != 1 || evs[0].Rule != "roles" || evs[0].Detail["on_reload"] != "end" {
		t.Fatalf("got reload events %+v, want one by rule roles", evs)
	}
	if !endsWithin(client, 5*time.Second) {
		t.Fatal("the session still runs 5s after roles were added")
	}
}
