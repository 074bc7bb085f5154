package zone

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Spec describes one zone as configured: its name, the name of its parent
// zone ("" for a root zone) and the networks it holds. A zone may hold no
// networks at all and serve only as a parent.
type Spec struct {
	Name     string
	Parent   string
	Networks []netip.Prefix
}

// Zone is one node of the zone tree. It is immutable once the Tree is built
// and safe for concurrent use.
type Zone struct {
	name     string
	parent   *Zone
	networks []netip.Prefix
}

// Name returns the zone's name.
func (z *Zone) Name() string { return z.name }

// Parent returns the zone's administrative parent, or nil for a root zone.
func (z *Zone) Parent() *Zone { return z.parent }

// Networks returns a copy of the zone's normalised networks.
func (z *Zone) Networks() []netip.Prefix { return append([]netip.Prefix(nil), z.networks...) }

// Within reports whether z or one of its ancestors is named name. This is the
// admin_parent inheritance that access control relies on.
func (z *Zone) Within(name string) bool {
	for c := z; c != nil; c = c.parent {
		if c.name == name {
			return true
		}
	}
	return false
}

// Tree is an immutable set of zones with a longest-prefix lookup. It is safe
// for concurrent use.
type Tree struct {
	byName map[string]*Zone
	v4, v6 *node
}

// New builds a Tree from specs. It rejects empty and duplicate zone names,
// parents that name no zone, parent cycles, invalid prefixes and prefixes
// with host bits set, and a network listed twice (in one zone or in two).
func New(specs []Spec) (*Tree, error) {
	t := &Tree{byName: make(map[string]*Zone, len(specs))}
	for _, s := range specs {
		if s.Name == "" {
			return nil, errors.New("zone: empty zone name")
		}
		if _, dup := t.byName[s.Name]; dup {
			return nil, fmt.Errorf("zone: duplicate zone name %q", s.Name)
		}
		t.byName[s.Name] = &Zone{name: s.Name}
	}
	for _, s := range specs {
		if s.Parent == "" {
			continue
		}
		p, ok := t.byName[s.Parent]
		if !ok {
			return nil, fmt.Errorf("zone: zone %q: unknown parent %q", s.Name, s.Parent)
		}
		t.byName[s.Name].parent = p
	}
	for _, s := range specs {
		if err := checkCycle(t.byName[s.Name]); err != nil {
			return nil, err
		}
	}
	owner := make(map[netip.Prefix]*Zone)
	for _, s := range specs {
		z := t.byName[s.Name]
		for _, p := range s.Networks {
			n, err := normalise(p)
			if err != nil {
				return nil, fmt.Errorf("zone: zone %q: %w", s.Name, err)
			}
			if prev, dup := owner[n]; dup {
				if prev == z {
					return nil, fmt.Errorf("zone: zone %q lists network %s twice", s.Name, n)
				}
				return nil, fmt.Errorf("zone: network %s is in zones %q and %q", n, prev.name, z.name)
			}
			owner[n] = z
			z.networks = append(z.networks, n)
			if n.Addr().Is4() {
				insert(&t.v4, keyOf(n.Addr()), n.Bits(), z)
			} else {
				insert(&t.v6, keyOf(n.Addr()), n.Bits(), z)
			}
		}
	}
	return t, nil
}

// checkCycle follows z's parent chain; a chain longer than the number of
// zones is impossible without a cycle, but walking with a seen set names the
// zones involved.
func checkCycle(z *Zone) error {
	seen := map[*Zone]bool{}
	var path []string
	for c := z; c != nil; c = c.parent {
		if seen[c] {
			return fmt.Errorf("zone: parent cycle: %s -> %s", strings.Join(path, " -> "), c.name)
		}
		seen[c] = true
		path = append(path, c.name)
	}
	return nil
}

// Zone returns the zone named name, or nil when there is none.
func (t *Tree) Zone(name string) *Zone { return t.byName[name] }

// Lookup returns the zone holding the most specific network that contains
// addr. An IPv4-mapped IPv6 address is looked up as IPv4. It reports false
// for an invalid address or one that no zone contains. Lookup does not
// allocate.
func (t *Tree) Lookup(addr netip.Addr) (*Zone, bool) {
	if !addr.IsValid() {
		return nil, false
	}
	addr = addr.Unmap()
	var z *Zone
	if addr.Is4() {
		z = lookup(t.v4, keyOf(addr), 32)
	} else {
		z = lookup(t.v6, keyOf(addr), 128)
	}
	return z, z != nil
}

// ParsePrefix parses a network as written in configuration: a CIDR prefix
// ("10.0.0.0/8", "2001:db8::/32") or a bare address, which stands for the
// host prefix (/32 or /128). IPv4-mapped IPv6 input is normalised to IPv4.
// It rejects host bits set beyond the prefix length (10.1.2.3/8 is more
// likely a typo than a wish for 10.0.0.0/8), IPv6 zones (%eth0), and
// mapped prefixes shorter than /96, which do not name IPv4 networks.
func ParsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("zone: invalid network %q: %w", s, err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("zone: invalid network %q: %w", s, err)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zone: invalid network %q: address has an IPv6 zone", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	n, err := normalise(p)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("zone: invalid network %q: %w", s, err)
	}
	return n, nil
}

// normalise validates p and turns an IPv4-mapped IPv6 prefix into IPv4.
func normalise(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %s", p)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("prefix %s has host bits set (network is %s)", p, p.Masked())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped prefix %s is shorter than /96", p)
		}
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96), nil
	}
	return p, nil
}
