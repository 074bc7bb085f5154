package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Host is one entry of the host inventory: what users type after '+'.
type Host struct {
	Name    string            // lowercase DNS-style name, unique
	Address string            // host:port to connect to
	Labels  map[string]string // for role selectors; never nil
	Line    int               // of the name, for check warnings
}

// Role grants its users and groups access to a set of hosts, as some
// logins, under a policy. What a role leaves out is denied.
type Role struct {
	Name   string
	Users  []string
	Groups []string
	// Hosts are selectors as written: a host name glob ("db*", '*' and
	// '?' only) or label conditions "key=value[,key=value...]", all of
	// which must hold.
	Hosts  []string
	Logins []string // the first is the default
	Policy Policy
	// Hours, when set, limits when sessions may start.
	Hours *Hours
	// MaxSessionLength ends a session this long after it started; 0 = no
	// limit.
	MaxSessionLength Duration
	// MaxSessionsPerUser bounds a user's live sessions under this role,
	// across services; 0 = no limit.
	MaxSessionsPerUser int
	Line               int // of the name
}

// Hours is a weekly access window in a time zone.
type Hours struct {
	Days     [7]bool // indexed by time.Weekday
	From, To int     // minutes after midnight; To <= From spans midnight
	Location *time.Location
	Text     string // as written, for explain
}

// Contains reports whether t falls in the window.
func (h *Hours) Contains(t time.Time) bool {
	t = t.In(h.Location)
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if h.From < h.To {
		return h.Days[day] && m >= h.From && m < h.To
	}
	// Spanning midnight: the evening part belongs to the day it starts,
	// the morning part to the day before.
	if m >= h.From {
		return h.Days[day]
	}
	return m < h.To && h.Days[(day+6)%7]
}

// inventoryNameRE is an inventory host name: RFC 1123 labels, so that the
// inband parser (internal/router) reads it back; no '_' (the raw port
// separator) and no glob characters.
var inventoryNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)

// labelRE is a label key or value.
var labelRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)

// hostGlobRE is a host name glob in a role: name characters, '*' and '?'.
var hostGlobRE = regexp.MustCompile(`^[a-zA-Z0-9.*?-]+$`)

// loginRE is an upstream login a role may use: a portable user name
// (POSIX.1-2017 §3.437) not starting with '-'.
var loginRE = regexp.MustCompile(`^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*$`)

func (d *decoder) hosts(n *yaml.Node, key string, dst *[]Host) {
	*dst = []Host{}
	seen := map[string]int{}
	addrs := map[string]string{} // CanonicalAddress -> first host's name
	d.namedSeq(n, key, func(e *yaml.Node, k string) {
		h := Host{Labels: map[string]string{}}
		ok := d.mapping(e, k, []field{
			{"name", true, func(n *yaml.Node, k string) {
				var s string
				if !d.str(n, k, &s) {
					return
				}
				_, ipErr := netip.ParseAddr(s)
				last := s[strings.LastIndexByte(s, '.')+1:]
				if !inventoryNameRE.MatchString(s) || len(s) > 253 || ipErr == nil || strings.TrimLeft(last, "0123456789") == "" {
					d.errorf(n, k, "bad host name %q: want a DNS-style name of letters, digits, '-' and '.', not an address", s)
					return
				}
				h.Name, h.Line = strings.ToLower(s), n.Line
			}},
			{"address", true, func(n *yaml.Node, k string) {
				var s string
				if d.str(n, k, &s) && d.target(n, k, s) {
					h.Address = s
				}
			}},
			{"labels", false, func(n *yaml.Node, k string) {
				d.dict(n, k, func(kn, v *yaml.Node, k string) {
					var s string
					if !labelRE.MatchString(kn.Value) {
						d.errorf(kn, k, "bad label name %q: want letters, digits and _ . - only", kn.Value)
						return
					}
					if d.str(v, k, &s) {
						if !labelRE.MatchString(s) {
							d.errorf(v, k, "bad label value %q: want letters, digits and _ . - only", s)
							return
						}
						h.Labels[kn.Value] = s
					}
				})
			}},
		})
		if !ok || h.Name == "" || h.Address == "" {
			return
		}
		if first, dup := seen[h.Name]; dup {
			d.errorAt(h.Line, k+".name", "duplicate host name %q (first at line %d; names compare without case)", h.Name, first)
			return
		}
		seen[h.Name] = h.Line
		// A route to an address finds its host by the address: two hosts
		// with one address would make the name (and so the roles and
		// labels that decide) a matter of chance.
		if first, dup := addrs[CanonicalAddress(h.Address)]; dup {
			d.errorAt(h.Line, k+".address", "host %s has the address of host %s (%s): give one host one entry, with the labels of both", h.Name, first, h.Address)
			return
		}
		addrs[CanonicalAddress(h.Address)] = h.Name
		*dst = append(*dst, h)
	})
}

func (d *decoder) roles(n *yaml.Node, key string, dst *[]Role) {
	*dst = []Role{}
	seen := map[string]int{}
	d.namedSeq(n, key, func(e *yaml.Node, k string) {
		r := Role{}
		ok := d.mapping(e, k, []field{
			{"name", true, func(n *yaml.Node, k string) {
				if d.name(n, k, nameRE, &r.Name) {
					r.Line = n.Line
				}
			}},
			{"users", false, func(n *yaml.Node, k string) {
				d.strList(n, k, &r.Users, func(n *yaml.Node, k, s string) bool {
					d.refs = append(d.refs, ref{"user", s, n.Line, k})
					return true
				})
			}},
			{"groups", false, func(n *yaml.Node, k string) {
				d.strList(n, k, &r.Groups, func(n *yaml.Node, k, s string) bool {
					if !nameRE.MatchString(s) {
						d.errorf(n, k, "bad group name %q", s)
						return false
					}
					return true
				})
			}},
			{"hosts", true, func(n *yaml.Node, k string) {
				d.strList(n, k, &r.Hosts, func(n *yaml.Node, k, s string) bool {
					if msg := checkSelector(s); msg != "" {
						d.errorf(n, k, "bad host selector %q: %s", s, msg)
						return false
					}
					return true
				})
			}},
			{"logins", true, func(n *yaml.Node, k string) {
				d.strList(n, k, &r.Logins, func(n *yaml.Node, k, s string) bool {
					if !loginRE.MatchString(s) || len(s) > 32 {
						d.errorf(n, k, "bad login %q: want at most 32 letters, digits, '_', '.' and '-', not starting with '-'", s)
						return false
					}
					if slices.Contains(r.Logins, s) {
						d.errorf(n, k, "login %q listed twice", s)
						return false
					}
					return true
				})
			}},
			{"policy", false, func(n *yaml.Node, k string) { d.policy(n, k, &r.Policy) }},
			{"hours", false, func(n *yaml.Node, k string) { r.Hours = d.hours(n, k) }},
			{"max_session_length", false, func(n *yaml.Node, k string) { d.duration(n, k, &r.MaxSessionLength) }},
			{"max_sessions_per_user", false, func(n *yaml.Node, k string) {
				d.intField(n, k, 0, 1<<30, &r.MaxSessionsPerUser)
			}},
		})
		if !ok || r.Name == "" {
			return
		}
		if r.Policy.Exec.Match == "" {
			r.Policy.Exec.Match = ExecMatchCommands
		}
		if len(r.Users) == 0 && len(r.Groups) == 0 {
			d.errorAt(r.Line, k, "role names nobody: set users or groups")
		}
		if len(r.Logins) == 0 {
			d.errorAt(r.Line, k+".logins", "must list at least one login")
		}
		if len(r.Hosts) == 0 {
			d.errorAt(r.Line, k+".hosts", "must list at least one host selector")
		}
		if first, dup := seen[r.Name]; dup {
			d.errorAt(r.Line, k+".name", "duplicate role name %q (first at line %d)", r.Name, first)
			return
		}
		seen[r.Name] = r.Line
		*dst = append(*dst, r)
	})
}

// checkSelector returns what is wrong with a role's host selector, or "".
func checkSelector(s string) string {
	if !strings.Contains(s, "=") {
		if !hostGlobRE.MatchString(s) {
			return "want a host name glob ('*' and '?' only) or key=value label conditions"
		}
		return ""
	}
	keys := map[string]bool{}
	for c := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(c, "=")
		if !ok || !labelRE.MatchString(k) || !labelRE.MatchString(v) {
			return "want key=value[,key=value...] with letters, digits and _ . - only"
		}
		if keys[k] {
			return fmt.Sprintf("label %q named twice", k)
		}
		keys[k] = true
	}
	return ""
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// hours decodes an access window: days (mon..sun, or ranges "mon-fri";
// all when absent), from and to as HH:MM, time_zone (an IANA name; UTC
// when absent).
func (d *decoder) hours(n *yaml.Node, key string) *Hours {
	h := &Hours{Location: time.UTC}
	var from, to string
	days := false
	zone := "UTC"
	ok := d.mapping(n, key, []field{
		{"days", false, func(n *yaml.Node, k string) {
			days = true
			d.seq(n, k, func(n *yaml.Node, k string) {
				var s string
				if !d.str(n, k, &s) {
					return
				}
				a, b, isRange := strings.Cut(strings.ToLower(s), "-")
				first, ok1 := weekdays[a]
				last, ok2 := weekdays[b]
				if !isRange {
					last, ok2 = first, ok1
				}
				if !ok1 || !ok2 {
					d.errorf(n, k, "bad day %q: want mon, tue, wed, thu, fri, sat, sun or a range like mon-fri", s)
					return
				}
				for w := first; ; w = (w + 1) % 7 {
					h.Days[w] = true
					if w == last {
						break
					}
				}
			})
		}},
		{"from", true, func(n *yaml.Node, k string) {
			if d.str(n, k, &from) {
				h.From = d.clock(n, k, from)
			}
		}},
		{"to", true, func(n *yaml.Node, k string) {
			if d.str(n, k, &to) {
				h.To = d.clock(n, k, to)
			}
		}},
		{"time_zone", false, func(n *yaml.Node, k string) {
			if !d.str(n, k, &zone) {
				return
			}
			loc, err := time.LoadLocation(zone)
			if err != nil || zone == "Local" {
				d.errorf(n, k, "unknown time zone %q: want an IANA name like Europe/Berlin or UTC", zone)
				return
			}
			h.Location = loc
		}},
	})
	if !ok {
		return nil
	}
	if !days {
		h.Days = [7]bool{true, true, true, true, true, true, true}
	}
	if h.From == h.To && from != "" {
		d.errorf(n, key, "from and to are equal: the window would be empty")
	}
	dayText := "every day"
	if days {
		var names []string
		for w := time.Sunday; w <= time.Saturday; w++ {
			if h.Days[w] {
				names = append(names, strings.ToLower(w.String()[:3]))
			}
		}
		dayText = strings.Join(names, ",")
	}
	h.Text = fmt.Sprintf("%s %s-%s %s", dayText, from, to, zone)
	return h
}

// clock parses HH:MM (24:00 allowed as the end of the day) into minutes.
func (d *decoder) clock(n *yaml.Node, key, s string) int {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := parseUint(hh, 24)
	m, err2 := parseUint(mm, 59)
	if !ok || len(hh) != 2 || len(mm) != 2 || err1 != nil || err2 != nil || h == 24 && m != 0 {
		d.errorf(n, key, "bad time %q: want HH:MM from 00:00 to 24:00", s)
		return 0
	}
	return h*60 + m
}

// CanonicalAddress spells a "host:port" one way: lowercase, addresses in their
// netip form (IPv4-mapped IPv6 unmapped), so that two spellings of
// one address compare equal.
func CanonicalAddress(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.ToLower(hostport)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}
