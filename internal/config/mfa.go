package config

import (
	"maps"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-ssh/sluice/internal/policy"
)

// mfa decodes services[].mfa: {required: BOOL} or {required_for: [KIND...]}.
func (d *decoder) mfa(n *yaml.Node, key string, dst *MFA) {
	dst.Line = n.Line
	forLine := 0
	d.mapping(n, key, []field{
		{"required", false, func(n *yaml.Node, k string) { d.boolean(n, k, &dst.Required) }},
		{"required_for", false, func(n *yaml.Node, k string) {
			forLine = n.Line
			d.strList(n, k, &dst.RequiredFor, func(n *yaml.Node, k, s string) bool {
				if msg := policy.CheckKind(s); msg != "" {
					d.errorf(n, k, "%s", msg)
					return false
				}
				return true
			})
		}},
	})
	if dst.Required && len(dst.RequiredFor) > 0 {
		d.errorAt(forLine, key+".required_for", "required: true asks every login already; drop required_for, or set required: false to ask only for these")
	}
}

// checkMFA warns of users a service's mfa will refuse: those without a
// totp_file (a key marked for automation still logs in where only
// required_for is set); and of a step-up that leaves exec open while an
// exec.allow pattern matches every command: a key marked for automation
// could run any program, a shell included, unasked.
func (d *decoder) checkMFA(c *Config) {
	for _, s := range c.Services {
		if !s.MFA.On() {
			continue
		}
		if !s.MFA.Required && !slices.Contains(s.MFA.RequiredFor, policy.KindExec) {
			owners := map[string]Policy{"services[" + s.Name + "].policy": s.Policy}
			if len(c.Roles) > 0 {
				owners = map[string]Policy{}
				for _, r := range c.Roles {
					owners["roles["+r.Name+"].policy"] = r.Policy
				}
			}
			for _, owner := range slices.Sorted(maps.Keys(owners)) {
				for _, a := range owners[owner].Exec.Allow {
					if policy.MatchesEverything(a.Text) {
						d.warns = append(d.warns, &Error{File: d.file, Line: s.MFA.Line, Key: "services[" + s.Name + "].mfa.required_for",
							Msg: "warning: " + owner + ".exec.allow " + strconv.Quote(a.Text) + " matches every command: a key marked for automation runs any program, a shell included, without a second factor; add exec to required_for or narrow the allowlist"})
						break
					}
				}
			}
		}
		for _, u := range c.Users {
			if u.TOTPFile == "" {
				d.warns = append(d.warns, &Error{File: d.file, Line: u.Line, Key: "users[" + u.Name + "].totp_file",
					Msg: "warning: services[" + s.Name + "].mfa asks for a second factor and user " + u.Name + " has no totp_file: refused there, but for keys marked for automation where only required_for is set"})
			}
		}
	}
}
