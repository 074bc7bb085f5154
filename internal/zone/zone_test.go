package zone

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func testTree(t testing.TB) *Tree {
	t.Helper()
	tr, err := New([]Spec{
		{Name: "internet", Networks: pfx("0.0.0.0/0", "::/0")},
		{Name: "office", Parent: "internet", Networks: pfx("10.0.0.0/8", "2001:db8::/32")},
		{Name: "lab", Parent: "office", Networks: pfx("10.1.0.0/16", "2001:db8:1::/48")},
		{Name: "bench", Parent: "lab", Networks: pfx("10.1.2.0/24")},
		{Name: "host", Networks: pfx("10.1.2.3/32", "2001:db8:1::1/128")},
		{Name: "admin"},
		{Name: "dmz", Parent: "admin", Networks: pfx("192.168.0.0/24", "192.168.1.0/24")},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tr
}

func TestLookup(t *testing.T) {
	tr := testTree(t)
	tests := []struct {
		addr     string
		want     string
		wantNone bool
	}{
		{addr: "8.8.8.8", want: "internet"},
		{addr: "10.200.0.1", want: "office"},
		{addr: "10.1.9.9", want: "lab"},
		{addr: "10.1.2.4", want: "bench"},
		{addr: "10.1.2.3", want: "host"},
		{addr: "10.1.2.2", want: "bench"},
		{addr: "::ffff:10.1.2.3", want: "host"},
		{addr: "::ffff:10.1.9.9", want: "lab"},
		{addr: "192.168.1.77", want: "dmz"},
		{addr: "192.168.0.0", want: "dmz"},
		{addr: "192.168.2.1", want: "internet"},
		{addr: "2001:db8::5", want: "office"},
		{addr: "2001:db8:1::1", want: "host"},
		{addr: "2001:db8:1::2", want: "lab"},
		{addr: "2001:db9::1", want: "internet"},
		{addr: "::1", want: "internet"},
		{addr: "0.0.0.0", want: "internet"},
		{addr: "255.255.255.255", want: "internet"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			z, ok := tr.Lookup(netip.MustParseAddr(tt.addr))
			if !ok {
				t.Fatalf("Lookup(%s): got no zone, want %q", tt.addr, tt.want)
			}
			if z.Name() != tt.want {
				t.Errorf("Lookup(%s): got %q, want %q", tt.addr, z.Name(), tt.want)
			}
		})
	}
}

func TestLookupNoZone(t *testing.T) {
	tr, err := New([]Spec{
		{Name: "office", Networks: pfx("10.0.0.0/8")},
		{Name: "v6", Networks: pfx("2001:db8::/32")},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, a := range []netip.Addr{
		netip.MustParseAddr("11.0.0.1"),
		netip.MustParseAddr("9.255.255.255"),
		netip.MustParseAddr("2001:db9::1"),
		netip.MustParseAddr("::ffff:11.0.0.1"),
		netip.MustParseAddr("::a00:1"), // 10.0.0.1 as IPv4-compatible, not mapped: an IPv6 address
		{},
	} {
		if z, ok := tr.Lookup(a); ok {
			t.Errorf("Lookup(%s): got zone %q, want none", a, z.Name())
		}
	}
	if _, ok := (&Tree{}).Lookup(netip.MustParseAddr("1.2.3.4")); ok {
		t.Errorf("empty tree Lookup: got a zone, want none")
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		specs []Spec
		want  string
	}{
		{"empty name", []Spec{{Name: ""}}, "empty zone name"},
		{"duplicate name", []Spec{{Name: "a"}, {Name: "a"}}, `duplicate zone name "a"`},
		{"unknown parent", []Spec{{Name: "a", Parent: "b"}}, `zone "a": unknown parent "b"`},
		{"self parent", []Spec{{Name: "a", Parent: "a"}}, "parent cycle: a -> a"},
		{"cycle", []Spec{{Name: "a", Parent: "b"}, {Name: "b", Parent: "c"}, {Name: "c", Parent: "a"}}, "parent cycle"},
		{"network in two zones", []Spec{
			{Name: "a", Networks: pfx("10.0.0.0/8")},
			{Name: "b", Networks: pfx("10.0.0.0/8")},
		}, `network 10.0.0.0/8 is in zones "a" and "b"`},
		{"mapped duplicate", []Spec{
			{Name: "a", Networks: pfx("10.0.0.0/8")},
			{Name: "b", Networks: pfx("::ffff:10.0.0.0/104")},
		}, `network 10.0.0.0/8 is in zones "a" and "b"`},
		{"twice in one zone", []Spec{{Name: "a", Networks: pfx("10.0.0.0/8", "10.0.0.0/8")}}, `zone "a" lists network 10.0.0.0/8 twice`},
		{"host bits", []Spec{{Name: "a", Networks: pfx("10.1.2.3/8")}}, "host bits set"},
		{"invalid prefix", []Spec{{Name: "a", Networks: []netip.Prefix{{}}}}, "invalid prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.specs)
			if err == nil {
				t.Fatalf("New: got nil error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "zone: ") {
				t.Errorf("New: got %q, want it to start with \"zone: \" and contain %q", err, tt.want)
			}
		})
	}
}

func TestWithinAndParents(t *testing.T) {
	tr := testTree(t)
	tests := []struct {
		zone, within string
		want         bool
	}{
		{"bench", "bench", true},
		{"bench", "lab", true},
		{"bench", "office", true},
		{"bench", "internet", true},
		{"office", "lab", false},
		{"host", "internet", false},
		{"dmz", "admin", true},
		{"dmz", "internet", false},
		{"internet", "", false},
	}
	for _, tt := range tests {
		z := tr.Zone(tt.zone)
		if z == nil {
			t.Fatalf("Zone(%q): got nil, want a zone", tt.zone)
		}
		if got := z.Within(tt.within); got != tt.want {
			t.Errorf("%s.Within(%q): got %v, want %v", tt.zone, tt.within, got, tt.want)
		}
	}
	if got := tr.Zone("bench").Parent().Parent().Name(); got != "office" {
		t.Errorf("bench grandparent: got %q, want office", got)
	}
	if p := tr.Zone("internet").Parent(); p != nil {
		t.Errorf("internet parent: got %q, want nil", p.Name())
	}
	if z := tr.Zone("nope"); z != nil {
		t.Errorf("Zone(nope): got %q, want nil", z.Name())
	}
	if got := tr.Zone("dmz").Networks(); len(got) != 2 || got[1] != netip.MustParsePrefix("192.168.1.0/24") {
		t.Errorf("dmz networks: got %v, want [192.168.0.0/24 192.168.1.0/24]", got)
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "127.0.0.1", want: "127.0.0.1/32"},
		{in: "::1", want: "::1/128"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:1.2.3.4", want: "1.2.3.4/32"},
		{in: "::ffff:0.0.0.0/96", want: "0.0.0.0/0"},
		{in: "10.1.2.3/8", wantErr: true},
		{in: "::ffff:0.0.0.0/80", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "fe80::%eth0/64", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "10.0.0/8", wantErr: true},
		{in: "", wantErr: true},
		{in: "example.com", wantErr: true},
		{in: "10.0.0.0/8 ", wantErr: true},
		{in: "010.0.0.0/8", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePrefix(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParsePrefix(%q): got %s, want an error", tt.in, got)
			} else if !strings.HasPrefix(err.Error(), "zone: ") {
				t.Errorf("ParsePrefix(%q) error: got %q, want prefix \"zone: \"", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePrefix(%q): got error %v, want %s", tt.in, err, tt.want)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParsePrefix(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "127.0.0.1", "::1", "2001:db8::/32", "::ffff:10.0.0.0/104",
		"::ffff:1.2.3.4", "10.1.2.3/8", "fe80::1%eth0", "0.0.0.0/0", "::/0", "", "/", "1.2.3.4/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q): got non-normal prefix %s", s, p)
		}
		// A parsed network must round-trip and be usable in a tree whose
		// lookup of its own address finds it.
		again, err := ParsePrefix(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePrefix(%q) = %s: re-parse got %s, %v", s, p, again, err)
		}
		tr, err := New([]Spec{{Name: "z", Networks: []netip.Prefix{p}}})
		if err != nil {
			t.Fatalf("New with %s: %v", p, err)
		}
		if _, ok := tr.Lookup(p.Addr()); !ok {
			t.Fatalf("Lookup(%s) in tree of %s: got no zone", p.Addr(), p)
		}
	})
}

// randomPrefixes returns n distinct random networks, about a third IPv6.
func randomPrefixes(r *rand.Rand, n int) []netip.Prefix {
	seen := make(map[netip.Prefix]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		var p netip.Prefix
		if r.IntN(3) == 0 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			b[0] = 0x20
			p = netip.PrefixFrom(netip.AddrFrom16(b), 16+r.IntN(113)).Masked()
		} else {
			var b [4]byte
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			p = netip.PrefixFrom(netip.AddrFrom4(b), 8+r.IntN(25)).Masked()
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func specsFor(ps []netip.Prefix, zones int) []Spec {
	specs := make([]Spec, zones)
	for i := range specs {
		specs[i].Name = fmt.Sprintf("z%d", i)
	}
	for i, p := range ps {
		specs[i%zones].Networks = append(specs[i%zones].Networks, p)
	}
	return specs
}

// TestLookupMatchesScan checks the trie against the obvious linear
// longest-prefix scan on random networks and addresses near them.
func TestLookupMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ps := randomPrefixes(r, 3000)
	tr, err := New(specsFor(ps, 37))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	owner := map[netip.Prefix]string{}
	for _, s := range specsFor(ps, 37) {
		for _, p := range s.Networks {
			owner[p] = s.Name
		}
	}
	for i := range 5000 {
		base := ps[r.IntN(len(ps))].Addr()
		b := base.AsSlice()
		b[len(b)-1-r.IntN(len(b))] ^= byte(1 << r.IntN(8))
		a, _ := netip.AddrFromSlice(b)
		if i%2 == 0 {
			a = base
		}
		want, wantBits := "", -1
		for _, p := range ps {
			if p.Contains(a) && p.Bits() > wantBits {
				want, wantBits = owner[p], p.Bits()
			}
		}
		z, ok := tr.Lookup(a)
		got := ""
		if ok {
			got = z.Name()
		}
		if got != want {
			t.Fatalf("Lookup(%s): got %q, want %q", a, got, want)
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	tr := testTree(t)
	a := netip.MustParseAddr("2001:db8:1::1")
	m := netip.MustParseAddr("::ffff:10.1.2.3")
	if n := testing.AllocsPerRun(100, func() { tr.Lookup(a); tr.Lookup(m) }); n != 0 {
		t.Errorf("Lookup allocations: got %v, want 0", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, uint64(n)))
			ps := randomPrefixes(r, n)
			tr, err := New(specsFor(ps, 100))
			if err != nil {
				b.Fatalf("New: %v", err)
			}
			addrs := make([]netip.Addr, 1024)
			for i := range addrs {
				addrs[i] = ps[r.IntN(len(ps))].Addr().Next()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tr.Lookup(addrs[i&1023])
				i++
			}
		})
	}
}
