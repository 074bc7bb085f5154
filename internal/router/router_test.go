package router

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestRoute(t *testing.T) {
	full := Params{
		Service:  "ssh-in",
		Inband:   true,
		Directed: []string{"10.0.0.5:22", "10.0.0.6:22"},
		Users:    map[string]string{"carol": "db9:2200"},
	}
	tests := []struct {
		name        string
		params      Params
		gatewayUser string
		sshUser     string
		wantTargets []string
		wantRule    string
		wantErr     error
	}{
		{"per-user map", full, "carol", "carol", []string{"db9:2200"}, "services[ssh-in].router.users[carol]", nil},
		{"per-user map beats inband", full, "carol", "carol+elsewhere", []string{"db9:2200"}, "services[ssh-in].router.users[carol]", nil},
		{"inband", full, "alice", "alice+db1", []string{"db1:22"}, "services[ssh-in].router.inband", nil},
		{"inband with port", full, "alice", "alice+db1:2222", []string{"db1:2222"}, "services[ssh-in].router.inband", nil},
		{"inband ipv6", full, "alice", "alice+[::1]:2222", []string{"[::1]:2222"}, "services[ssh-in].router.inband", nil},
		{"inband beats directed", full, "alice", "alice+db1", []string{"db1:22"}, "services[ssh-in].router.inband", nil},
		{"inband malformed", full, "alice", "alice+db1:0", nil, "services[ssh-in].router.inband", ErrBadPort},
		{"inband login without roles", full, "alice", "alice+a+b", nil, "services[ssh-in].upstream.user", ErrLoginNotAllowed},
		{"inband third plus", full, "alice", "alice+a+b+c", nil, "services[ssh-in].router.inband", ErrExtraPlus},
		{"inband underscore port", full, "alice", "alice+10.0.0.5_2222", []string{"10.0.0.5:2222"}, "services[ssh-in].router.inband", nil},
		{"directed in order", full, "alice", "alice", []string{"10.0.0.5:22", "10.0.0.6:22"}, "services[ssh-in].router.directed", nil},
		{"inband name refused when inband off", Params{Service: "ssh-in", Directed: []string{"10.0.0.5:22"}}, "alice", "alice+db1", nil, "services[ssh-in].router.inband", ErrInbandDisabled},
		{"nothing configured", Params{Service: "ssh-in"}, "alice", "alice", nil, "services[ssh-in].router", ErrNoRoute},
		{"inband only, plain name", Params{Service: "ssh-in", Inband: true}, "alice", "alice", nil, "services[ssh-in].router", ErrNoRoute},
		{"user mismatch", full, "carol", "alice+db1", nil, "services[ssh-in].router", ErrUserMismatch},
		{"empty gateway user", full, "", "+db1", nil, "services[ssh-in].router", ErrUserMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.params)
			got, err := r.Route(tt.gatewayUser, tt.sshUser)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got (%+v, %v), want error %v", got, err, tt.wantErr)
				}
				var re *RouteError
				if !errors.As(err, &re) || re.Rule != tt.wantRule {
					t.Errorf("got error %#v, want *RouteError with Rule %q", err, tt.wantRule)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			want := Route{User: tt.gatewayUser, Targets: tt.wantTargets, Rule: tt.wantRule}
			if got.User != want.User || got.Rule != want.Rule || !slices.Equal(got.Targets, want.Targets) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestRouterCopiesParams(t *testing.T) {
	p := Params{Service: "s", Directed: []string{"a:22"}, Users: map[string]string{"u": "b:22"}}
	r := New(p)
	p.Directed[0] = "changed:22"
	p.Users["u"] = "changed:22"
	got, err := r.Route("x", "x")
	if err != nil || got.Targets[0] != "a:22" {
		t.Errorf("got (%+v, %v), want target a:22", got, err)
	}
	got.Targets[0] = "mutated:22"
	if got, _ := r.Route("x", "x"); got.Targets[0] != "a:22" {
		t.Errorf("got target %q after mutating a returned Route, want a:22", got.Targets[0])
	}
	if got, _ := r.Route("u", "u"); got.Targets[0] != "b:22" {
		t.Errorf("got target %q, want b:22", got.Targets[0])
	}
}

func TestRouteInventory(t *testing.T) {
	p := Params{
		Service:   "ssh-in",
		Inband:    true,
		Hosts:     map[string]string{"db1": "10.0.0.5:22", "db2": "[2001:db8::7]:2222", "web": "web.internal:22"},
		NamesOnly: true,
	}
	tests := []struct {
		name      string
		params    Params
		sshUser   string
		wantHost  string
		wantLogin string
		wantAddr  string
		wantErr   error
	}{
		{"name", p, "alice+db1", "db1", "", "10.0.0.5:22", nil},
		{"name with login", p, "alice+db1+postgres", "db1", "postgres", "10.0.0.5:22", nil},
		{"name in capitals", p, "alice+DB1", "db1", "", "10.0.0.5:22", nil},
		{"address of an inventory host", p, "alice+10.0.0.5", "db1", "", "10.0.0.5:22", nil},
		{"address with port separator", p, "alice+10.0.0.5_22+app", "db1", "app", "10.0.0.5:22", nil},
		{"ipv6 address of an inventory host", p, "alice+[2001:DB8::7]_2222", "db2", "", "[2001:DB8::7]:2222", nil},
		{"dns name of an inventory host", p, "alice+WEB.internal", "web", "", "WEB.internal:22", nil},
		{"raw address not in inventory", p, "alice+10.0.0.6", "", "", "", ErrNotInInventory},
		{"inventory address on another port", p, "alice+10.0.0.5_2222", "", "", "", ErrNotInInventory},
		{"name with a port is raw", p, "alice+db1_22", "", "", "", ErrNotInInventory},
		{"unknown name", p, "alice+db3", "", "", "", ErrNotInInventory},
		{"directed outside inventory", Params{Service: "s", Directed: []string{"10.0.0.9:22"}, NamesOnly: true}, "alice", "", "", "", ErrNotInInventory},
		{"failover pair", Params{Service: "s", Directed: []string{"10.0.0.5:22", "10.0.0.5:22"}, Hosts: p.Hosts, NamesOnly: true}, "alice", "", "", "", ErrNotInInventory},
		{"directed inventory host", Params{Service: "s", Directed: []string{"10.0.0.5:22"}, Hosts: p.Hosts, NamesOnly: true}, "alice", "db1", "", "10.0.0.5:22", nil},
		{"raw allowed without roles", Params{Service: "s", Inband: true, Hosts: p.Hosts}, "alice+10.0.0.6", "", "", "10.0.0.6:22", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.params).Route("alice", tt.sshUser)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got (%+v, %v), want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got.Host != tt.wantHost || got.Login != tt.wantLogin || len(got.Targets) != 1 || got.Targets[0] != tt.wantAddr {
				t.Errorf("got %+v, want host %q login %q target %q", got, tt.wantHost, tt.wantLogin, tt.wantAddr)
			}
		})
	}
}

func TestInventoryHost(t *testing.T) {
	r := New(Params{Service: "s", Hosts: map[string]string{"db1": "10.0.0.5:22", "web": "[2001:db8::7]:2222"}, NamesOnly: true})
	for _, c := range []struct {
		host       string
		port       uint32
		name, addr string
	}{
		{"db1", 22, "db1", "10.0.0.5:22"},
		{"DB1", 22, "db1", "10.0.0.5:22"},
		{"10.0.0.5", 22, "db1", "10.0.0.5:22"},
		{"::ffff:10.0.0.5", 22, "db1", "10.0.0.5:22"},
		{"web", 2222, "web", "[2001:db8::7]:2222"},
		{"2001:DB8::7", 2222, "web", "[2001:db8::7]:2222"},
		// Another port of an inventory host is not its SSH port.
		{"db1", 5432, "", ""},
		{"10.0.0.5", 5432, "", ""},
		{"web", 22, "", ""},
		{"db2", 22, "", ""},
		{"10.0.0.6", 22, "", ""},
		{"db1", 0, "", ""},
		{"db1", 65536 + 22, "", ""},
	} {
		name, addr, ok := r.InventoryHost(c.host, c.port)
		if name != c.name || addr != c.addr || ok != (c.name != "") {
			t.Errorf("InventoryHost(%q, %d): got %q %q %v, want %q %q", c.host, c.port, name, addr, ok, c.name, c.addr)
		}
	}
}

func TestTransparent(t *testing.T) {
	lst := netip.MustParseAddrPort("10.0.0.1:2222")
	open := New(Params{Service: "s"})
	rt, err := open.Transparent("alice", netip.MustParseAddrPort("[::ffff:192.0.2.9]:22"), lst, "root")
	if err != nil || len(rt.Targets) != 1 || rt.Targets[0] != "192.0.2.9:22" || rt.Login != "root" || rt.User != "alice" || rt.Rule != "services[s].router.transparent" {
		t.Errorf("got %+v, %v, want 192.0.2.9:22 as root", rt, err)
	}
	for _, dst := range []netip.AddrPort{{}, lst, netip.MustParseAddrPort("10.0.0.2:0")} {
		if _, err := open.Transparent("alice", dst, lst, "root"); !errors.Is(err, ErrNoOriginalDestination) {
			t.Errorf("destination %v: got %v, want ErrNoOriginalDestination", dst, err)
		}
	}
	inv := New(Params{Service: "s", Hosts: map[string]string{"db1": "192.0.2.9:22"}, NamesOnly: true})
	if rt, err := inv.Transparent("alice", netip.MustParseAddrPort("192.0.2.9:22"), lst, "root"); err != nil || rt.Host != "db1" {
		t.Errorf("inventory address: got %+v, %v, want host db1", rt, err)
	}
	if _, err := inv.Transparent("alice", netip.MustParseAddrPort("192.0.2.10:22"), lst, "root"); !errors.Is(err, ErrNotInInventory) {
		t.Errorf("outside the inventory: got %v, want ErrNotInInventory", err)
	}
}
