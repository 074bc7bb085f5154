package policy

import (
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/shellcmd"
	"github.com/sluice-ssh/sluice/internal/sniff"
)

const svc = "ssh-in"

func mustCompile(t *testing.T, s Spec) *Policy {
	t.Helper()
	p, err := Compile(svc, s)
	if err != nil {
		t.Fatalf("Compile: got error %v, want nil", err)
	}
	return p
}

// fwds is a forward_local list in the string form.
func fwds(to ...string) []Forward {
	var fs []Forward
	for _, s := range to {
		fs = append(fs, Forward{To: s})
	}
	return fs
}

func checkVerdict(t *testing.T, got Verdict, wantAccept bool, wantRule string) {
	t.Helper()
	if got.Accept != wantAccept || got.Rule != wantRule {
		t.Errorf("got {Accept:%v Rule:%q}, want {Accept:%v Rule:%q}", got.Accept, got.Rule, wantAccept, wantRule)
	}
	if got.Reason == "" {
		t.Errorf("got empty Reason, want one")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		wantSub string
	}{
		{"bad allow regexp", Spec{ExecAllow: []string{"ok", "("}}, "services[ssh-in].policy.exec.allow[1]"},
		{"bad deny regexp", Spec{ExecDeny: []string{"[z-a]"}}, "services[ssh-in].policy.exec.deny[0]"},
		{"empty env pattern", Spec{Env: []string{""}}, "services[ssh-in].policy.env[0]"},
		{"env pattern with =", Spec{Env: []string{"LANG", "A=B"}}, "services[ssh-in].policy.env[1]"},
		{"empty subsystem", Spec{Subsystems: []string{""}}, "services[ssh-in].policy.subsystems"},
		{"forward no port", Spec{ForwardLocal: fwds("db")}, "forward_local[0]"},
		{"forward empty port", Spec{ForwardLocal: fwds("db:")}, "forward_local[0]"},
		{"forward port 0", Spec{ForwardLocal: fwds("db:0")}, "forward_local[0]"},
		{"forward port too big", Spec{ForwardLocal: fwds("db:65536")}, "forward_local[0]"},
		{"forward signed port", Spec{ForwardLocal: fwds("db:+22")}, "forward_local[0]"},
		{"forward named port", Spec{ForwardLocal: fwds("db:ssh")}, "forward_local[0]"},
		{"forward empty host", Spec{ForwardLocal: fwds(":22")}, "forward_local[0]"},
		{"forward bare ipv6", Spec{ForwardLocal: fwds("::1:22")}, "forward_local[0]"},
		{"forward unterminated bracket", Spec{ForwardLocal: fwds("[::1:22")}, "forward_local[0]"},
		{"forward bracketed name", Spec{ForwardLocal: fwds("[db]:22")}, "forward_local[0]"},
		{"forward bracketed ipv4", Spec{ForwardLocal: fwds("[127.0.0.1]:22")}, "forward_local[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(svc, tt.spec)
			if err == nil {
				t.Fatalf("got nil error, want one containing %q", tt.wantSub)
			}
			if !strings.HasPrefix(err.Error(), "policy: ") || !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("got error %q, want prefix %q and %q", err, "policy: ", tt.wantSub)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	on := mustCompile(t, Spec{Pty: true, Shell: true, ForwardRemote: true, Agent: true, X11: true})
	off := mustCompile(t, Spec{})
	none := Restrictions{}
	all := Restrictions{NoPty: true, NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}
	tests := []struct {
		name       string
		got        Verdict
		wantAccept bool
		wantRule   string
	}{
		{"pty on", on.Pty(none), true, "services[ssh-in].policy.pty"},
		{"pty off", off.Pty(none), false, "services[ssh-in].policy.pty"},
		{"pty no-pty key", on.Pty(Restrictions{NoPty: true}), false, "authorized_keys no-pty"},
		{"pty other restrictions", on.Pty(Restrictions{NoPortForwarding: true, NoAgentForwarding: true, NoX11Forwarding: true}), true, "services[ssh-in].policy.pty"},
		{"shell on", on.Shell(), true, "services[ssh-in].policy.shell"},
		{"shell off", off.Shell(), false, "services[ssh-in].policy.shell"},
		{"forward remote on", on.ForwardRemote(none), true, "services[ssh-in].policy.forward_remote"},
		{"forward remote off", off.ForwardRemote(none), false, "services[ssh-in].policy.forward_remote"},
		{"forward remote no-port-forwarding", on.ForwardRemote(all), false, "authorized_keys no-port-forwarding"},
		{"forward remote other restrictions", on.ForwardRemote(Restrictions{NoPty: true, NoAgentForwarding: true, NoX11Forwarding: true}), true, "services[ssh-in].policy.forward_remote"},
		{"agent on", on.Agent(none), true, "services[ssh-in].policy.agent"},
		{"agent off", off.Agent(none), false, "services[ssh-in].policy.agent"},
		{"agent no-agent-forwarding", on.Agent(Restrictions{NoAgentForwarding: true}), false, "authorized_keys no-agent-forwarding"},
		{"agent other restrictions", on.Agent(Restrictions{NoPty: true, NoPortForwarding: true, NoX11Forwarding: true}), true, "services[ssh-in].policy.agent"},
		{"x11 on", on.X11(none), true, "services[ssh-in].policy.x11"},
		{"x11 off", off.X11(none), false, "services[ssh-in].policy.x11"},
		{"x11 no-x11-forwarding", on.X11(Restrictions{NoX11Forwarding: true}), false, "authorized_keys no-x11-forwarding"},
		{"x11 other restrictions", on.X11(Restrictions{NoPty: true, NoPortForwarding: true, NoAgentForwarding: true}), true, "services[ssh-in].policy.x11"},
		{"key restriction beats disabled service", off.Pty(all), false, "authorized_keys no-pty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, tt.got, tt.wantAccept, tt.wantRule)
		})
	}
}

func TestExec(t *testing.T) {
	p := mustCompile(t, Spec{
		ExecAllow: []string{`ls( .*)?`, `git (pull|push)`, `echo .*`},
		ExecDeny:  []string{`.*rm .*`, `ls /secret.*`},
	})
	tests := []struct {
		name       string
		cmd        string
		wantAccept bool
		wantRule   string
	}{
		{"allow first", "ls", true, "services[ssh-in].policy.exec.allow[0]"},
		{"allow first with args", "ls -la /tmp", true, "services[ssh-in].policy.exec.allow[0]"},
		{"allow second", "git pull", true, "services[ssh-in].policy.exec.allow[1]"},
		{"anchored at start", "xgit pull", false, "services[ssh-in].policy.exec.allow"},
		{"anchored at end", "git pulls", false, "services[ssh-in].policy.exec.allow"},
		{"alternation anchored as a whole", "git push --force", false, "services[ssh-in].policy.exec.allow"},
		{"no allow match", "cat /etc/passwd", false, "services[ssh-in].policy.exec.allow"},
		{"empty command", "", false, "services[ssh-in].policy.exec.allow"},
		{"deny wins over allow", "echo x; rm -rf /", false, "services[ssh-in].policy.exec.deny[0]"},
		{"second deny", "ls /secret/keys", false, "services[ssh-in].policy.exec.deny[1]"},
		{"newline cannot pass allow", "echo hi\ncat /etc/shadow", false, "services[ssh-in].policy.exec.allow"},
		{"newline cannot hide from deny", "echo hi\nrm -rf /", false, "services[ssh-in].policy.exec.deny[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, p.Exec(tt.cmd), tt.wantAccept, tt.wantRule)
		})
	}

	empty := mustCompile(t, Spec{})
	checkVerdict(t, empty.Exec("ls"), false, "services[ssh-in].policy.exec.allow")
	all := mustCompile(t, Spec{ExecAllow: []string{".*"}})
	checkVerdict(t, all.Exec("anything at all"), true, "services[ssh-in].policy.exec.allow[0]")
}

// TestExecCommands tries to get a denied program past a deny pattern, and
// an unlisted one past an allowlist, through the shell: every simple
// command is decided, and what cannot be decided statically is refused.
func TestExecCommands(t *testing.T) {
	const (
		deny0    = "services[ssh-in].policy.exec.deny[0]"
		allowAny = "services[ssh-in].policy.exec.allow[0]"
		noAllow  = "services[ssh-in].policy.exec.allow"
		match    = "services[ssh-in].policy.exec.match"
	)
	denyRm := mustCompile(t, Spec{ExecAllow: []string{".*"}, ExecDeny: []string{"rm( .*)?"}})
	for _, tt := range []struct {
		cmd        string
		wantAccept bool
		wantRule   string
	}{
		{"ls", true, allowAny},
		{"ls -l /tmp", true, allowAny},
		{"rm x", false, deny0},
		{"rm", false, deny0},
		{"true; rm x", false, deny0},
		{"true && rm x", false, deny0},
		{"false || rm x", false, deny0},
		{"ls | rm x", false, deny0},
		{"/bin/rm x", false, deny0},
		{"r''m x", false, deny0},
		{`r\m x`, false, deny0},
		{`"rm" x`, false, deny0},
		{"sh -c 'rm x'", false, deny0},
		{"bash -c \"ls; rm x\"", false, deny0},
		{"echo $(rm x)", false, deny0},
		{"(rm x)", false, deny0},
		{"sudo rm x", false, deny0},
		{"env /bin/rm x", false, deny0},
		{"nohup nice -n 5 rm x", false, deny0},
		{"xargs rm < list", false, deny0},
		{"find . -exec /bin/rm {} \\;", false, deny0},
		{"eval 'rm x'", false, deny0},
		{"f() { rm x; }; f", false, deny0},
		{"rmdir x", true, allowAny},
		{"echo rm x", true, allowAny},
		{"$x", false, match},
		{"$(echo rm) x", false, match},
		{"/bin/r? x", false, match},
		{"eval $x", false, match},
		{"sh -c \"$x\"", false, match},
		{"bash -s", false, match},
		{"sh < script", false, match},
		{"PATH=/tmp ls", false, match},
		{"ls '", false, match},
	} {
		t.Run("deny "+tt.cmd, func(t *testing.T) {
			checkVerdict(t, denyRm.Exec(tt.cmd), tt.wantAccept, tt.wantRule)
		})
	}

	allowlist := mustCompile(t, Spec{ExecAllow: []string{"ls( .*)?", "uptime", "git-upload-pack '[^']*'"}})
	for _, tt := range []struct {
		cmd        string
		wantAccept bool
		wantRule   string
	}{
		{"ls -l", true, allowAny},
		{"uptime", true, "services[ssh-in].policy.exec.allow[1]"},
		{"ls; uptime", true, allowAny},
		{"ls; cat /etc/shadow", false, noAllow},
		{"ls && cat x", false, noAllow},
		{"ls $(cat x)", false, noAllow},
		{"/bin/ls", false, noAllow}, // allow matches the program as written
		{"uptime > /etc/passwd", false, noAllow},
		{"$x", false, match},
		{"ls; bash -s", false, match},
	} {
		t.Run("allowlist "+tt.cmd, func(t *testing.T) {
			checkVerdict(t, allowlist.Exec(tt.cmd), tt.wantAccept, tt.wantRule)
		})
	}

	// Everything permitted: nothing to decide, so dynamic commands run.
	all := mustCompile(t, Spec{ExecAllow: []string{"(.*)"}})
	checkVerdict(t, all.Exec("$x; bash -s"), true, allowAny)

	// The whole-string form, kept for operators who rely on it.
	whole := mustCompile(t, Spec{ExecAllow: []string{".*"}, ExecDeny: []string{"rm( .*)?"}, ExecWhole: true})
	checkVerdict(t, whole.Exec("rm x"), false, deny0)
	checkVerdict(t, whole.Exec("true; rm x"), true, allowAny)
}

func TestEnv(t *testing.T) {
	p := mustCompile(t, Spec{Env: []string{"LANG", "LC_*", "X?Y", "*_DEBUG*"}})
	tests := []struct {
		name       string
		env        string
		wantAccept bool
		wantRule   string
	}{
		{"exact", "LANG", true, "services[ssh-in].policy.env[0]"},
		{"exact is case-sensitive", "lang", false, "services[ssh-in].policy.env"},
		{"exact is whole", "LANGUAGE", false, "services[ssh-in].policy.env"},
		{"star", "LC_ALL", true, "services[ssh-in].policy.env[1]"},
		{"star empty run", "LC_", true, "services[ssh-in].policy.env[1]"},
		{"star needs prefix", "XLC_ALL", false, "services[ssh-in].policy.env"},
		{"question", "XAY", true, "services[ssh-in].policy.env[2]"},
		{"question needs one", "XY", false, "services[ssh-in].policy.env"},
		{"question only one", "XABY", false, "services[ssh-in].policy.env"},
		{"two stars", "MY_DEBUG_LEVEL", true, "services[ssh-in].policy.env[3]"},
		{"no match", "LD_PRELOAD", false, "services[ssh-in].policy.env"},
		{"empty name", "", false, "services[ssh-in].policy.env"},
		{"name with =", "LC_A=B", false, "services[ssh-in].policy.env"},
		{"name with NUL", "LC_A\x00", false, "services[ssh-in].policy.env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, p.Env(tt.env, "x"), tt.wantAccept, tt.wantRule)
		})
	}
	// Even a policy that accepts every name keeps SSH_ORIGINAL_COMMAND for
	// forced commands: a client must not choose what a wrapper reads.
	all := mustCompile(t, Spec{Env: []string{"*"}})
	checkVerdict(t, all.Env("SSH_ORIGINAL_COMMAND", "id"), false, "services[ssh-in].policy.env")
	checkVerdict(t, all.Env("SSH_ORIGINAL_COMMANDX", "id"), true, "services[ssh-in].policy.env[0]")
	// GIT_PROTOCOL is accepted by default, in git's form only.
	none := mustCompile(t, Spec{})
	for v, want := range map[string]bool{"version=2": true, "version=2:object-format=sha256": true, "version=1": true,
		"": false, "version=2;rm -rf /": false, "version=2\n": false, "$(id)": false, strings.Repeat("v", 257): false} {
		wantRule := "services[ssh-in].policy.env (GIT_PROTOCOL)"
		if !want {
			wantRule = "services[ssh-in].policy.env"
		}
		checkVerdict(t, none.Env("GIT_PROTOCOL", v), want, wantRule)
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*a", "bba", true},
		{"*a", "bab", false},
		{"a**", "a", true},
		{"?*", "", false},
		{"*?", "x", true},
		{"a*a*a*a*b", strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		if got := MatchGlob(tt.pattern, tt.name); got != tt.want {
			t.Errorf("MatchGlob(%q, %q): got %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestSubsystem(t *testing.T) {
	p := mustCompile(t, Spec{Subsystems: []string{"sftp", "netconf"}})
	tests := []struct {
		name       string
		sub        string
		wantAccept bool
		wantRule   string
	}{
		{"first", "sftp", true, "services[ssh-in].policy.subsystems.sftp"},
		{"second", "netconf", true, "services[ssh-in].policy.subsystems.netconf"},
		{"case-sensitive", "SFTP", false, "services[ssh-in].policy.subsystems"},
		{"unknown", "shell", false, "services[ssh-in].policy.subsystems"},
		{"empty", "", false, "services[ssh-in].policy.subsystems"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, p.Subsystem(tt.sub), tt.wantAccept, tt.wantRule)
		})
	}
	checkVerdict(t, mustCompile(t, Spec{}).Subsystem("sftp"), false, "services[ssh-in].policy.subsystems")
}

func TestForwardLocal(t *testing.T) {
	p := mustCompile(t, Spec{ForwardLocal: fwds(
		"127.0.0.1:5432",
		"DB.example.com:*",
		"*:8080",
		"[::1]:22",
		"[2001:db8::1]:*",
	)})
	none := Restrictions{}
	tests := []struct {
		name       string
		host       string
		port       uint32
		restr      Restrictions
		wantAccept bool
		wantRule   string
	}{
		{"ipv4 exact", "127.0.0.1", 5432, none, true, "services[ssh-in].policy.forward_local[0]"},
		{"ipv4 wrong port", "127.0.0.1", 5433, none, false, "services[ssh-in].policy.forward_local"},
		{"ipv4-mapped matches ipv4", "::ffff:127.0.0.1", 5432, none, true, "services[ssh-in].policy.forward_local[0]"},
		{"ipv4 other host", "127.0.0.2", 5432, none, false, "services[ssh-in].policy.forward_local"},
		{"name any port", "db.example.com", 1, none, true, "services[ssh-in].policy.forward_local[1]"},
		{"name case-insensitive", "Db.Example.COM", 65535, none, true, "services[ssh-in].policy.forward_local[1]"},
		{"name is not a suffix match", "evil.db.example.com", 5432, none, false, "services[ssh-in].policy.forward_local"},
		{"any host", "anything.test", 8080, none, true, "services[ssh-in].policy.forward_local[2]"},
		{"any host, ip", "10.1.2.3", 8080, none, true, "services[ssh-in].policy.forward_local[2]"},
		{"ipv6", "::1", 22, none, true, "services[ssh-in].policy.forward_local[3]"},
		{"ipv6 long form", "0:0:0:0:0:0:0:1", 22, none, true, "services[ssh-in].policy.forward_local[3]"},
		{"ipv6 bracketed request is not an address", "[::1]", 22, none, false, "services[ssh-in].policy.forward_local"},
		{"ipv6 any port", "2001:DB8::1", 443, none, true, "services[ssh-in].policy.forward_local[4]"},
		{"ipv6 wrong port", "::1", 23, none, false, "services[ssh-in].policy.forward_local"},
		{"name does not match address", "localhost", 5432, none, false, "services[ssh-in].policy.forward_local"},
		{"port 0", "127.0.0.1", 0, none, false, "services[ssh-in].policy.forward_local"},
		{"port above 65535", "anything", 8080 + 65536, none, false, "services[ssh-in].policy.forward_local"},
		{"empty host", "", 8080, none, false, "services[ssh-in].policy.forward_local"},
		// Unspecified addresses reach the target itself: refused even
		// under "*:8080", in every spelling its resolver takes.
		{"0.0.0.0", "0.0.0.0", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"::", "::", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"[::]", "[::]", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"::ffff:0.0.0.0", "::ffff:0.0.0.0", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{":: with zone", "::%lo", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"inet_aton 0", "0", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"inet_aton 0.0", "0.0", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"inet_aton hex", "0x0", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"inet_aton octal", "00.000.0.0", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"trailing dot", "0.0.0.0.", 8080, none, false, "services[ssh-in].policy.forward_local"},
		{"0.0.0.1 is a host", "0.0.0.1", 8080, none, true, "services[ssh-in].policy.forward_local[2]"},
		{"0x1 is a host", "0x1", 8080, none, true, "services[ssh-in].policy.forward_local[2]"},
		{"name starting with 0", "0.example", 8080, none, true, "services[ssh-in].policy.forward_local[2]"},
		{"no-port-forwarding", "127.0.0.1", 5432, Restrictions{NoPortForwarding: true}, false, "authorized_keys no-port-forwarding"},
		{"permitopen match", "127.0.0.1", 5432, Restrictions{PermitOpen: []string{"localhost:1", "127.0.0.1:5432"}}, true, "services[ssh-in].policy.forward_local[0]"},
		{"permitopen any port", "db.example.com", 7, Restrictions{PermitOpen: []string{"db.example.com:*"}}, true, "services[ssh-in].policy.forward_local[1]"},
		{"permitopen miss", "127.0.0.1", 5432, Restrictions{PermitOpen: []string{"127.0.0.1:5433"}}, false, "authorized_keys permitopen"},
		{"permitopen malformed matches nothing", "127.0.0.1", 5432, Restrictions{PermitOpen: []string{"127.0.0.1"}}, false, "authorized_keys permitopen"},
		{"permitopen allows, service does not", "10.0.0.1", 22, Restrictions{PermitOpen: []string{"10.0.0.1:22"}}, false, "services[ssh-in].policy.forward_local"},
		{"permitopen ipv6", "::1", 22, Restrictions{PermitOpen: []string{"[::1]:22"}}, true, "services[ssh-in].policy.forward_local[3]"},
		{"other restrictions ignored", "127.0.0.1", 5432, Restrictions{NoPty: true, NoAgentForwarding: true, NoX11Forwarding: true}, true, "services[ssh-in].policy.forward_local[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, p.ForwardLocal(tt.host, tt.port, tt.restr), tt.wantAccept, tt.wantRule)
		})
	}
	empty := mustCompile(t, Spec{})
	checkVerdict(t, empty.ForwardLocal("127.0.0.1", 5432, none), false, "services[ssh-in].policy.forward_local")
}

func TestForcedCommand(t *testing.T) {
	plain := mustCompile(t, Spec{})
	forcing := mustCompile(t, Spec{ForcedCommand: "/usr/bin/menu"})
	keyForced := Restrictions{ForcedCommand: "/usr/bin/backup"}
	certForced := Restrictions{ForcedCommand: "id", ForcedCommandRule: "trusted_user_ca_keys force-command"}
	tests := []struct {
		name     string
		p        *Policy
		restr    Restrictions
		wantCmd  string
		wantOK   bool
		wantRule string
	}{
		{"nothing forced", plain, Restrictions{}, "", false, ""},
		{"service forces", forcing, Restrictions{}, "/usr/bin/menu", true, "services[ssh-in].policy.exec.forced_command"},
		{"key forces", plain, keyForced, "/usr/bin/backup", true, "authorized_keys command"},
		{"certificate forces", plain, certForced, "id", true, "trusted_user_ca_keys force-command"},
		// sshd(8): ForceCommand in sshd_config beats the key's command=.
		{"service beats key", forcing, keyForced, "/usr/bin/menu", true, "services[ssh-in].policy.exec.forced_command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, rule, ok := tt.p.ForcedCommand(tt.restr)
			if cmd != tt.wantCmd || ok != tt.wantOK || rule != tt.wantRule {
				t.Errorf("got (%q, %q, %v), want (%q, %q, %v)", cmd, rule, ok, tt.wantCmd, tt.wantRule, tt.wantOK)
			}
		})
	}
}

func TestRuleUsesServiceName(t *testing.T) {
	p, err := Compile("ops", Spec{Shell: true})
	if err != nil {
		t.Fatalf("Compile: got error %v, want nil", err)
	}
	if got, want := p.Shell().Rule, "services[ops].policy.shell"; got != want {
		t.Errorf("got rule %q, want %q", got, want)
	}
}

// FuzzExec: the per-command decision never panics, and whatever it
// accepts under deny "rm( .*)?" starts no rm that the parser can see.
func FuzzExec(f *testing.F) {
	for _, s := range []string{"ls", "true; rm x", "/bin/rm x", "sh -c 'rm x'", "r''m", "$(echo rm)", "sudo env rm", "find . -exec rm {} \\;"} {
		f.Add(s)
	}
	p, err := Compile("ssh-in", Spec{ExecAllow: []string{".*"}, ExecDeny: []string{"rm( .*)?"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		v := p.Exec(cmd)
		if !v.Accept {
			return
		}
		a, err := shellcmd.Parse(cmd)
		if err != nil {
			t.Fatalf("%q accepted but does not parse: %v", cmd, err)
		}
		if len(a.Dynamic) > 0 {
			t.Fatalf("%q accepted with dynamic parts %q", cmd, a.Dynamic)
		}
		for _, c := range a.Commands {
			if c.Program == "rm" {
				t.Fatalf("%q accepted (%s) but starts %q", cmd, v.Rule, c.Text)
			}
		}
	})
}

func TestForwardLocalPossible(t *testing.T) {
	list := mustCompile(t, Spec{ForwardLocal: []Forward{{To: "127.0.0.1:5432"}}})
	empty := mustCompile(t, Spec{ForwardRemote: true})
	for _, tc := range []struct {
		name  string
		p     *Policy
		restr Restrictions
		want  bool
	}{
		{"list", list, Restrictions{}, true},
		{"list, key no-port-forwarding", list, Restrictions{NoPortForwarding: true}, false},
		{"empty list", empty, Restrictions{}, false},
	} {
		if got := tc.p.ForwardLocalPossible(tc.restr); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestForwardStream(t *testing.T) {
	spec := Spec{ForwardLocal: []Forward{
		{To: "web:443", Protocols: []string{"tls"}, SNI: []string{"*.Corp."}, DenySNI: []string{"evil.corp"}},
		{To: "web:443", Protocols: []string{"http"}},
		{To: "web:80", Host: []string{"intranet", "*.intranet"}},
		{To: "db:5432", Protocols: []string{"postgresql"}},
		{To: "proxy:3128", DenyHost: []string{"*.bad"}},
		{To: "*:22"},
	}}
	p := mustCompile(t, spec)
	spec.ForwardSSH = true
	spec.ForwardLocal = append(spec.ForwardLocal, Forward{To: "jump:22", Protocols: []string{"ssh"}})
	withSSH := mustCompile(t, spec)
	tls := func(sni string) sniff.Result { return sniff.Result{Protocol: sniff.TLS, SNI: sni} }
	http := func(host string) sniff.Result { return sniff.Result{Protocol: sniff.HTTP, Host: host} }
	r := "services[ssh-in].policy."
	tests := []struct {
		name       string
		p          *Policy
		host       string
		port       uint32
		res        sniff.Result
		wantAccept bool
		wantRule   string
	}{
		{"sni allowed", p, "web", 443, tls("a.corp"), true, r + "forward_local[0]"},
		{"sni denied", p, "web", 443, tls("evil.corp"), false, r + "forward_local[0].deny_sni[0]"},
		{"sni not listed", p, "web", 443, tls("a.example"), false, r + "forward_local[0].sni"},
		{"no sni", p, "web", 443, tls(""), false, r + "forward_local[0].sni"},
		{"malformed hello", p, "web", 443, sniff.Result{Protocol: sniff.TLS, Malformed: "duplicate ClientHello extension"}, false, r + "forward_local[0].sni"},
		{"hello cut short", p, "web", 443, sniff.Result{Protocol: sniff.Unknown, Partial: sniff.TLS}, false, r + "forward_local[0].protocols"},
		{"second entry takes http", p, "web", 443, http("x"), true, r + "forward_local[1]"},
		{"host allowed", p, "web", 80, http("a.intranet"), true, r + "forward_local[2]"},
		{"host implies http only", p, "web", 80, sniff.Result{Protocol: sniff.Unknown}, false, r + "forward_local[2].protocols"},
		{"host not listed", p, "web", 80, http("intranet.evil"), false, r + "forward_local[2].host"},
		{"duplicate host", p, "web", 80, sniff.Result{Protocol: sniff.HTTP, Malformed: "more than one Host header"}, false, r + "forward_local[2].host"},
		{"postgresql", p, "db", 5432, sniff.Result{Protocol: sniff.PostgreSQL, User: "u"}, true, r + "forward_local[3]"},
		{"not postgresql", p, "db", 5432, http("db"), false, r + "forward_local[3].protocols"},
		{"deny host only", p, "proxy", 3128, http("x.bad"), false, r + "forward_local[4].deny_host[0]"},
		{"deny host, other host", p, "proxy", 3128, http("x.good"), true, r + "forward_local[4]"},
		{"deny host, tls passes", p, "proxy", 3128, tls("x.bad"), true, r + "forward_local[4]"},
		{"deny host, http cut short", p, "proxy", 3128, sniff.Result{Protocol: sniff.Unknown, Partial: sniff.HTTP}, false, r + "forward_local[4].deny_host"},
		{"plain entry, unknown", p, "anything", 22, sniff.Result{Protocol: sniff.Unknown}, true, r + "forward_local[5]"},
		{"ssh refused by default", p, "anything", 22, sniff.Result{Protocol: sniff.SSH}, false, r + "forward_ssh"},
		{"ssh with forward_ssh, any entry", withSSH, "anything", 22, sniff.Result{Protocol: sniff.SSH}, true, r + "forward_local[5]"},
		{"ssh with forward_ssh, ssh entry", withSSH, "jump", 22, sniff.Result{Protocol: sniff.SSH}, true, r + "forward_local[5]"},
		{"ssh entry refuses http", withSSH, "db", 5432, sniff.Result{Protocol: sniff.SSH}, false, r + "forward_local[3].protocols"},
		{"not listed", p, "other", 1, sniff.Result{Protocol: sniff.Unknown}, false, r + "forward_local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkVerdict(t, tt.p.ForwardStream(tt.host, tt.port, tt.res), tt.wantAccept, tt.wantRule)
		})
	}
	if _, err := Compile(svc, Spec{ForwardLocal: []Forward{{To: "a:22", Protocols: []string{"ssh"}}}}); err == nil {
		t.Error("ssh in protocols without forward_ssh: got no error, want one")
	}
	if _, err := Compile(svc, Spec{ForwardLocal: []Forward{{To: "a:22", Protocols: []string{"gopher"}}}}); err == nil {
		t.Error("unknown protocol: got no error, want one")
	}
}
