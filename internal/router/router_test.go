package router

import (
	"errors"
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
		{"inband second plus", full, "alice", "alice+a+b", nil, "services[ssh-in].router.inband", ErrExtraPlus},
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
