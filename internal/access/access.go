package access

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
)

// Request is what a decision is about: who, where, as whom, when.
type Request struct {
	User   string
	Groups []string
	// Host is an inventory host name; it compares without case.
	Host string
	// Login is the upstream login asked for; "" asks for the default, the
	// first login of the deciding role.
	Login string
	// Time is when the session starts, for the roles' hours.
	Time time.Time
}

// Decision is the outcome of Decide. A refusal has Accept false and names
// the rule and reason; an acceptance also carries what the role grants.
type Decision struct {
	Accept bool
	// Role is the deciding role, or "" when no role matched.
	Role string
	// Rule names the config rule that decided: the matching host selector
	// ("roles[dba].hosts[0]") when accepted, or the rule that refused
	// ("hosts", "roles", "roles[dba].logins", "roles[dba].hours").
	Rule string
	// LoginRule names the logins entry used ("roles[dba].logins[0]").
	LoginRule string
	// Reason says why in words, for an operator; never sent to the client.
	Reason string
	// Host is the inventory host's name and Address its "host:port".
	Host, Address string
	// Login is the upstream login.
	Login string
	// Policy is the role's compiled policy.
	Policy *policy.Policy
	// MaxSessionLength ends the session this long after it started; 0 =
	// no limit.
	MaxSessionLength time.Duration
	// MaxSessionsPerUser bounds the user's live sessions under Role; 0 =
	// no limit.
	MaxSessionsPerUser int
}

// Step is one rule Explain looked at and what it found.
type Step struct {
	Rule   string
	Result string
}

// Rules is a compiled inventory and role list. It holds no mutable state
// and is safe for concurrent use.
type Rules struct {
	roles   []role
	byUser  map[string][]int // user -> indexes of roles naming them
	byGroup map[string][]int // group -> indexes of roles naming it
	hosts   map[string]*config.Host
}

type role struct {
	name       string
	users      map[string]bool
	selectors  []selector
	logins     []string
	policy     *policy.Policy
	hours      *config.Hours
	maxLength  time.Duration
	maxPerUser int
}

// Kinds of host selectors, by specificity (higher is more specific).
const (
	selectLabels = iota + 1
	selectGlob
	selectName
)

type selector struct {
	kind   int
	text   string
	labels [][2]string // selectLabels: key, value pairs that must all hold
}

func (s selector) match(h *config.Host) bool {
	switch s.kind {
	case selectName:
		return s.text == h.Name
	case selectGlob:
		return policy.MatchGlob(s.text, h.Name)
	}
	for _, kv := range s.labels {
		if v, ok := h.Labels[kv[0]]; !ok || v != kv[1] {
			return false
		}
	}
	return true
}

// Compile prepares cfg's hosts and roles for decisions. spec turns a
// config policy into a policy.Spec (the gateway's conversion, the same for
// services and roles).
func Compile(cfg *config.Config, spec func(config.Policy) policy.Spec) (*Rules, error) {
	r := &Rules{
		byUser:  map[string][]int{},
		byGroup: map[string][]int{},
		hosts:   make(map[string]*config.Host, len(cfg.Hosts)),
	}
	for i := range cfg.Hosts {
		h := &cfg.Hosts[i]
		r.hosts[strings.ToLower(h.Name)] = h
	}
	for i, cr := range cfg.Roles {
		pol, err := policy.CompileAt("roles["+cr.Name+"].policy", spec(cr.Policy))
		if err != nil {
			return nil, fmt.Errorf("access: %w", err)
		}
		ro := role{
			name:       cr.Name,
			users:      map[string]bool{},
			logins:     cr.Logins,
			policy:     pol,
			hours:      cr.Hours,
			maxLength:  cr.MaxSessionLength.Std(),
			maxPerUser: cr.MaxSessionsPerUser,
		}
		for _, u := range cr.Users {
			ro.users[u] = true
			r.byUser[u] = append(r.byUser[u], i)
		}
		for _, g := range cr.Groups {
			r.byGroup[g] = append(r.byGroup[g], i)
		}
		for _, s := range cr.Hosts {
			ro.selectors = append(ro.selectors, parseSelector(s))
		}
		r.roles = append(r.roles, ro)
	}
	return r, nil
}

// parseSelector reads a selector config has checked.
func parseSelector(s string) selector {
	if !strings.Contains(s, "=") {
		s = strings.ToLower(s)
		if strings.ContainsAny(s, "*?") {
			return selector{kind: selectGlob, text: s}
		}
		return selector{kind: selectName, text: s}
	}
	sel := selector{kind: selectLabels, text: s}
	for c := range strings.SplitSeq(s, ",") {
		k, v, _ := strings.Cut(c, "=")
		sel.labels = append(sel.labels, [2]string{k, v})
	}
	return sel
}

// Hosts returns the inventory as lowercase name -> "host:port", for the
// router.
func (r *Rules) Hosts() map[string]string {
	m := make(map[string]string, len(r.hosts))
	for name, h := range r.hosts {
		m[name] = h.Address
	}
	return m
}

// Decide decides req. Among the roles that name the user (or one of the
// groups), select the host by one of their selectors, list the login
// (any role, for the default login) and are within their hours, the most
// specific decides: a selector naming the host beats a glob, which beats a
// label selector; then a role naming the user beats one naming a group;
// then the first in the file. Permissions of several roles are never
// merged.
func (r *Rules) Decide(req Request) Decision { return r.decide(req, nil) }

// Explain is Decide that also returns every rule it looked at.
func (r *Rules) Explain(req Request) (Decision, []Step) {
	var steps []Step
	d := r.decide(req, &steps)
	return d, steps
}

// candidate is a role that matched, with its rank.
type candidate struct {
	index, selector int
	kind            int
	byUser          bool
}

func (c candidate) beats(o candidate) bool {
	if c.kind != o.kind {
		return c.kind > o.kind
	}
	if c.byUser != o.byUser {
		return c.byUser
	}
	return c.index < o.index
}

func (r *Rules) decide(req Request, steps *[]Step) Decision {
	note := func(rule, format string, args ...any) {
		if steps != nil {
			*steps = append(*steps, Step{Rule: rule, Result: fmt.Sprintf(format, args...)})
		}
	}
	h := r.hosts[strings.ToLower(req.Host)]
	if h == nil {
		note("hosts", "no host %q in the inventory", req.Host)
		return Decision{Rule: "hosts", Reason: fmt.Sprintf("no host %q in the inventory", req.Host)}
	}
	if steps != nil {
		note("hosts["+h.Name+"]", "address %s, labels %s", h.Address, labelText(h.Labels))
	}
	d := Decision{Host: h.Name, Address: h.Address}

	// The roles naming the user or a group, each once, in file order.
	idx := slices.Clone(r.byUser[req.User])
	for _, g := range req.Groups {
		idx = append(idx, r.byGroup[g]...)
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	if steps != nil {
		for i, ro := range r.roles {
			if !slices.Contains(idx, i) {
				note("roles["+ro.name+"]", "names neither user %q nor groups %v", req.User, req.Groups)
			}
		}
	}

	var best, loginMiss, hoursMiss *candidate
	for _, i := range idx {
		ro := &r.roles[i]
		prefix := "" // for the steps only
		if steps != nil {
			prefix = "roles[" + ro.name + "]"
		}
		c := candidate{index: i, selector: -1, byUser: ro.users[req.User]}
		for j, s := range ro.selectors {
			if s.match(h) && (c.selector < 0 || s.kind > c.kind) {
				c.selector, c.kind = j, s.kind
			}
		}
		if c.selector < 0 {
			if steps != nil {
				note(prefix+".hosts", "no selector matches %s", h.Name)
			}
			continue
		}
		if steps != nil {
			note(fmt.Sprintf("%s.hosts[%d]", prefix, c.selector), "%q matches %s", ro.selectors[c.selector].text, h.Name)
		}
		if req.Login != "" && !slices.Contains(ro.logins, req.Login) {
			if steps != nil {
				note(prefix+".logins", "login %q not in %v", req.Login, ro.logins)
			}
			if loginMiss == nil || c.beats(*loginMiss) {
				loginMiss = &c
			}
			continue
		}
		if ro.hours != nil && !ro.hours.Contains(req.Time) {
			if steps != nil {
				note(prefix+".hours", "%s is outside %s", req.Time.Format(time.RFC3339), ro.hours.Text)
			}
			if hoursMiss == nil || c.beats(*hoursMiss) {
				hoursMiss = &c
			}
			continue
		}
		if steps != nil {
			note(prefix, "matches (selector kind %s, named %s)", kindText(c.kind), byText(c.byUser))
		}
		if best == nil || c.beats(*best) {
			best = &c
		}
	}
	switch {
	case best != nil:
		ro := &r.roles[best.index]
		login, li := req.Login, slices.Index(ro.logins, req.Login)
		if login == "" {
			login, li = ro.logins[0], 0
		}
		d.Accept, d.Role, d.Login, d.Policy = true, ro.name, login, ro.policy
		d.Rule = fmt.Sprintf("roles[%s].hosts[%d]", ro.name, best.selector)
		d.LoginRule = fmt.Sprintf("roles[%s].logins[%d]", ro.name, li)
		d.Reason = fmt.Sprintf("role %s grants %s access to %s as %s", ro.name, req.User, h.Name, login)
		d.MaxSessionLength, d.MaxSessionsPerUser = ro.maxLength, ro.maxPerUser
	case hoursMiss != nil:
		ro := &r.roles[hoursMiss.index]
		d.Role, d.Rule = ro.name, "roles["+ro.name+"].hours"
		d.Reason = fmt.Sprintf("role %s grants access to %s only %s", ro.name, h.Name, ro.hours.Text)
	case loginMiss != nil:
		ro := &r.roles[loginMiss.index]
		d.Role, d.Rule = ro.name, "roles["+ro.name+"].logins"
		d.Reason = fmt.Sprintf("no role grants %s the login %q on %s (role %s allows %s)", req.User, req.Login, h.Name, ro.name, strings.Join(ro.logins, ", "))
	default:
		d.Rule = "roles"
		d.Reason = fmt.Sprintf("no role grants %s access to %s", req.User, h.Name)
	}
	return d
}

func byText(byUser bool) string {
	if byUser {
		return "as user"
	}
	return "by group"
}

func kindText(k int) string {
	switch k {
	case selectName:
		return "name"
	case selectGlob:
		return "glob"
	}
	return "labels"
}

func labelText(l map[string]string) string {
	if len(l) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
