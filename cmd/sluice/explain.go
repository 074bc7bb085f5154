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

const explainUsage = `usage: sluice explain -c FILE USER HOST [--login LOGIN] [--at TIME] [-- COMMAND...]
  -c, --config FILE   the config file
  --login LOGIN       the upstream login asked for (default: the deciding role's first)
  --at TIME           decide at TIME (RFC 3339) instead of now, for roles' hours`

// explainArgs are the parsed arguments of sluice explain.
type explainArgs struct {
	file, login, at string
	pos, command    []string
}

// parseExplainArgs reads flags wherever they stand among USER and HOST;
// everything after "--" is the command.
func parseExplainArgs(args []string) (explainArgs, error) {
	var a explainArgs
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			a.command = args[i+1:]
			break
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			a.pos = append(a.pos, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		var dst *string
		switch name {
		case "c", "config":
			dst = &a.file
		case "login":
			dst = &a.login
		case "at":
			dst = &a.at
		default:
			return a, fmt.Errorf("unknown flag %s", arg)
		}
		if !hasValue {
			if i+1 >= len(args) {
				return a, fmt.Errorf("flag %s needs a value", arg)
			}
			i++
			value = args[i]
		}
		*dst = value
	}
	if a.file == "" || len(a.pos) != 2 {
		return a, errors.New("want -c FILE, USER and HOST")
	}
	return a, nil
}

// runExplain implements "sluice explain": it decides as the gateway does
// (gateway.CompileAccess and access.Rules.Explain, the same code) and
// prints the decision and every rule it looked at, each service's server
// zone check of the host's address and, for a COMMAND, the role policy's
// verdict on it. It exits 0 when permitted, 1 when denied, 2 on a usage or
// config error.
func runExplain(args []string, stdout, stderr io.Writer) int {
	a, err := parseExplainArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "sluice explain: %v\n%s\n", err, explainUsage)
		return 2
	}
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
	user, host := a.pos[0], a.pos[1]
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
	if len(a.command) > 0 {
		cmd := strings.Join(a.command, " ")
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
