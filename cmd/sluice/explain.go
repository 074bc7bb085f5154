package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/sluice-ssh/sluice/internal/access"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/gateway"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/zone"
)

// runExplain implements "sluice explain": it decides as the gateway does
// (gateway.CompileAccess and access.Rules.Explain, the same code) and
// prints the decision and every rule it looked at, each service's server
// zone check of the host's address and, for a COMMAND, the role policy's
// verdict on it. It exits 0 when permitted, 1 when denied, 2 on a usage or
// config error.
func runExplain(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("explain", "-c FILE USER HOST [--login LOGIN] [--at TIME] [-- COMMAND...]",
		"Decide as the gateway does whether USER may reach HOST (as LOGIN, and run\nCOMMAND), and print every rule that made the decision. Exit status 0 when\npermitted, 1 when denied, 2 on a usage or config error.", stdout, stderr)
	var a struct{ file, login, at string }
	cl.fs.StringVar(&a.file, "c", "", "the config `FILE`")
	cl.fs.StringVar(&a.file, "config", "", "the config `FILE` (same as -c)")
	cl.fs.StringVar(&a.login, "login", "", "the upstream `LOGIN` asked for (default: the deciding role's first)")
	cl.fs.StringVar(&a.at, "at", "", "decide at `TIME` (RFC 3339) instead of now, for roles' hours")
	pos, code, ok := cl.parse(args, -1)
	if !ok {
		return code
	}
	var command []string
	if cl.dashdash >= 0 {
		pos, command = pos[:cl.dashdash], pos[cl.dashdash:]
	}
	if a.file == "" {
		return cl.fail("-c FILE is required")
	}
	if len(pos) != 2 {
		return cl.fail("want USER and HOST")
	}
	var err error
	when := time.Now()
	if a.at != "" {
		if when, err = time.Parse(time.RFC3339, a.at); err != nil {
			fmt.Fprintf(stderr, "sluice explain: --at: want RFC 3339 time like 2026-12-07T09:00:00+01:00: %v\n", err)
			return 2
		}
	}
	cfg, err := config.Load(a.file)
	if err != nil {
		if errs, ok := errors.AsType[*config.Errors](err); ok {
			for _, e := range errs.List {
				fmt.Fprintln(stderr, e)
			}
		} else {
			fmt.Fprintf(stderr, "sluice explain: %v\n", err)
		}
		return 2
	}
	if len(cfg.Roles) == 0 {
		fmt.Fprintf(stderr, "sluice explain: %s has no roles: each service's policy applies to every host its server_zones reach\n", a.file)
		return 2
	}
	rules, err := gateway.CompileAccess(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice explain: %v\n", err)
		return 2
	}
	user, host := pos[0], pos[1]
	u := cfg.User(user)
	if u == nil {
		fmt.Fprintf(stdout, "DENIED  rule users: no user %q\n", user)
		return 1
	}
	d, steps := rules.Explain(access.Request{User: user, Groups: u.Groups, Host: host, Login: a.login, Time: when})
	for _, s := range steps {
		fmt.Fprintf(stdout, "  %-36s %s\n", s.Rule, s.Result)
	}
	if !d.Accept {
		fmt.Fprintf(stdout, "DENIED  rule %s: %s\n", d.Rule, d.Reason)
		return 1
	}
	fmt.Fprintf(stdout, "PERMITTED  role %s, rule %s, login %s (%s)\n", d.Role, d.Rule, d.Login, d.LoginRule)
	if d.MaxSessionLength > 0 {
		fmt.Fprintf(stdout, "  roles[%s].max_session_length %s\n", d.Role, d.MaxSessionLength)
	}
	if d.MaxSessionsPerUser > 0 {
		fmt.Fprintf(stdout, "  roles[%s].max_sessions_per_user %d\n", d.Role, d.MaxSessionsPerUser)
	}
	if !zonesPermit(cfg, d.Address, stdout) {
		fmt.Fprintf(stdout, "DENIED  rule server_zones: no service may connect to %s\n", d.Address)
		return 1
	}
	if len(command) > 0 {
		cmd := strings.Join(command, " ")
		v := d.Policy.Exec(cmd)
		if forced, rule, ok := d.Policy.ForcedCommand(policy.Restrictions{}); ok {
			v = policy.Verdict{Accept: true, Rule: rule, Reason: "forced command " + forced + " runs instead"}
		}
		if !v.Accept {
			fmt.Fprintf(stdout, "DENIED  command %q: rule %s: %s\n", cmd, v.Rule, v.Reason)
			return 1
		}
		fmt.Fprintf(stdout, "PERMITTED  command %q: rule %s: %s\n", cmd, v.Rule, v.Reason)
	}
	return 0
}

// zonesPermit prints each service's server_zones check of addr and
// reports whether one permits it. A DNS name is checked by the gateway
// once resolved; here it passes.
func zonesPermit(cfg *config.Config, addr string, stdout io.Writer) bool {
	host, port, _ := net.SplitHostPort(addr)
	ip, err := netip.ParseAddr(host)
	if err != nil {
		fmt.Fprintf(stdout, "  %-36s %s is a name: its addresses are checked when dialled\n", "server_zones", host)
		return true
	}
	specs := make([]zone.Spec, 0, len(cfg.Zones))
	for _, z := range cfg.Zones {
		specs = append(specs, zone.Spec{Name: z.Name, Parent: z.Parent, Networks: z.Networks})
	}
	tree, err := zone.New(specs)
	if err != nil {
		fmt.Fprintf(stdout, "  %-36s %v\n", "zones", err)
		return false
	}
	ap := netip.AddrPortFrom(ip.Unmap(), 0)
	if p, err := netip.ParseAddrPort(net.JoinHostPort(ip.Unmap().String(), port)); err == nil {
		ap = p
	}
	z, _ := tree.Lookup(ap.Addr())
	permitted := false
	for _, sc := range cfg.Services {
		rule := "services[" + sc.Name + "].server_zones"
		if err := session.Permit(session.StageServer, ap, z, sc.ServerZones, rule); err != nil {
			fmt.Fprintf(stdout, "  %-36s %v\n", rule, err)
			continue
		}
		permitted = true
		fmt.Fprintf(stdout, "  %-36s permits %s\n", rule, ap)
	}
	return permitted
}
