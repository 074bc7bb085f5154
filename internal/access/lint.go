package access

import (
	"fmt"
	"slices"

	"github.com/sluice-ssh/sluice/internal/config"
)

// Lint returns the warnings `sluice check` prints about cfg's hosts and
// roles, by line: a role whose selectors match no host or that names no
// user who exists (a group nobody is in), a host no role reaches, a user
// no role names (who can log in but reach nothing). When single sign-on
// takes groups from the identity provider (oidc.groups_claim), membership
// is not known from the file, and the last two are not said.
func Lint(cfg *config.Config) []*config.Error {
	if len(cfg.Roles) == 0 {
		return nil
	}
	var out []*config.Error
	warn := func(line int, key, format string, args ...any) {
		out = append(out, &config.Error{File: cfg.Path, Line: line, Key: key, Msg: "warning: " + fmt.Sprintf(format, args...)})
	}
	providerGroups := cfg.OIDC != nil && cfg.OIDC.GroupsClaim != ""
	reached := make([]bool, len(cfg.Hosts))
	named := map[string]bool{}
	for _, cr := range cfg.Roles {
		key := "roles[" + cr.Name + "]"
		matched := false
		for _, s := range cr.Hosts {
			sel := parseSelector(s)
			for i := range cfg.Hosts {
				if sel.match(&cfg.Hosts[i]) {
					matched, reached[i] = true, true
				}
			}
		}
		if !matched {
			warn(cr.Line, key+".hosts", "role %s matches no host of the inventory", cr.Name)
		}
		members := 0
		for _, u := range cfg.Users {
			if slices.Contains(cr.Users, u.Name) || slices.ContainsFunc(u.Groups, func(g string) bool { return slices.Contains(cr.Groups, g) }) {
				members++
				named[u.Name] = true
			}
		}
		if members == 0 && len(cfg.TrustedUserCAKeys) == 0 && !providerGroups {
			warn(cr.Line, key+".groups", "role %s matches no user: none is in groups %v", cr.Name, cr.Groups)
		}
	}
	for i, h := range cfg.Hosts {
		if !reached[i] {
			warn(h.Line, "hosts["+h.Name+"]", "no role reaches host %s", h.Name)
		}
	}
	for _, u := range cfg.Users {
		if !named[u.Name] && !providerGroups {
			warn(u.Line, "users["+u.Name+"]", "user %s may log in but no role names them or their groups: every session is refused", u.Name)
		}
	}
	slices.SortStableFunc(out, func(a, b *config.Error) int { return a.Line - b.Line })
	return out
}
