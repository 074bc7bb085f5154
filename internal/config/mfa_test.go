package config

import (
	"slices"
	"strings"
	"testing"
)

func TestMFA(t *testing.T) {
	text := strings.Replace(minimal, "  - {name: alice, authorized_keys: a.pub}\n",
		"  - {name: alice, authorized_keys: a.pub, totp_file: totp/alice}\n  - {name: bob, authorized_keys: a.pub}\n", 1) +
		"    mfa: {required_for: [pty, shell, subsystem:sftp]}\n"
	c := mustParse(t, text)
	if got, want := c.Users[0].TOTPFile, "/etc/sluice/totp/alice"; got != want {
		t.Errorf("totp_file: got %q, want %q", got, want)
	}
	m := c.Services[0].MFA
	if m.Required || !slices.Equal(m.RequiredFor, []string{"pty", "shell", "subsystem:sftp"}) || !m.On() {
		t.Errorf("mfa: got %+v, want required_for [pty shell subsystem:sftp]", m)
	}
	var warns []string
	for _, w := range c.Warnings {
		warns = append(warns, w.Error())
	}
	if want := `/etc/sluice/t.yaml:6: users[bob].totp_file: warning: services[s].mfa asks for a second factor and user bob has no totp_file: refused there, but for keys marked for automation where only required_for is set`; !slices.Equal(warns, []string{want}) {
		t.Errorf("warnings:\ngot  %q\nwant %q", warns, []string{want})
	}
	if c := mustParse(t, minimal); c.Services[0].MFA.On() || len(c.Warnings) != 0 {
		t.Errorf("no mfa: got %+v and warnings %v, want off and none", c.Services[0].MFA, c.Warnings)
	}
}

func TestMFAErrors(t *testing.T) {
	for _, tc := range []struct{ mfa, want string }{
		{"{required: true, required_for: [pty]}", "t.yaml:13: services[s].mfa.required_for: required: true asks every login already"},
		{"{required_for: [ptty]}", `t.yaml:13: services[s].mfa.required_for[0]: unknown request kind "ptty"`},
		{"{required_for: [\"subsystem:\"]}", `t.yaml:13: services[s].mfa.required_for[0]: bad subsystem name`},
		{"{requird: true}", `t.yaml:13: services[s].mfa.requird: unknown key (did you mean "required"?)`},
		{"{required: yes please}", `t.yaml:13: services[s].mfa.required:`},
	} {
		_, err := Parse("t.yaml", []byte(minimal+"    mfa: "+tc.mfa+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.mfa, err, tc.want)
		}
	}
}

func TestMFAWarnsOfAnOpenExec(t *testing.T) {
	text := strings.Replace(minimal, "{name: alice, authorized_keys: a.pub}", "{name: alice, authorized_keys: a.pub, totp_file: t}", 1) +
		"    policy: {exec: {allow: [\"uptime\", \".*\"]}}\n"
	for _, tc := range []struct {
		mfa  string
		warn bool
	}{
		{"{required_for: [pty]}", true},
		{"{required_for: [pty, exec]}", false},
		{"{required: true}", false},
	} {
		c := mustParse(t, text+"    mfa: "+tc.mfa+"\n")
		got := false
		for _, w := range c.Warnings {
			got = got || strings.Contains(w.Error(), `services[s].policy.exec.allow ".*" matches every command`)
		}
		if got != tc.warn {
			t.Errorf("%s: got warning %v, want %v (%v)", tc.mfa, got, tc.warn, c.Warnings)
		}
	}
}
