//go:build linux

package gateway

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/hostcert"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// requireNetns skips the test, or fails it under SLUICE_INTEROP=require,
// unless it runs as root with ip and iptables.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatal("SLUICE_INTEROP=require: network namespaces need root")
		}
		t.Skip("network namespaces need root")
	}
	sshtest.RequireTool(t, "ip")
	sshtest.RequireTool(t, "iptables")
}

// must runs a command of the test's network setup, failing the test if it
// fails; undo, when not empty, is run at cleanup.
func must(t *testing.T, undo []string, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if len(undo) > 0 {
		t.Cleanup(func() { _ = exec.Command(undo[0], undo[1:]...).Run() })
	}
}

// TestTransparentNetns: a client in its own network namespace runs `ssh
// root@TARGET -p PORT` with strict host-key checking and only the host
// CA's line; the host's iptables REDIRECT sends the connection to the
// gateway, which proxies it to the original destination, records and
// audits it with that target and both zones checked. A destination
// outside server_zones is refused, and so is a connection to the
// gateway's own port (no original destination).
func TestTransparentNetns(t *testing.T) { testTransparent(t, false) }

// TestTransparentNetnsIPv6 is TestTransparentNetns over IPv6
// (IP6T_SO_ORIGINAL_DST, ip6tables).
func TestTransparentNetnsIPv6(t *testing.T) { testTransparent(t, true) }

// transparentNet is the network of the transparent tests: a client in
// network namespace ns reaches, through a veth pair, the host's addresses
// target (where an sshd and the gateway listen), elsewhere and other
// (nothing listens), and the host's iptables REDIRECT sends its
// connections to port to the gateway on gwPort. With TPROXY instead, the
// client also reaches remote, an address of no interface, through the
// host: the gateway answers for it, and the host's own connections to it
// go to the sshd (a DNAT rule in OUTPUT stands in for a server behind the
// host).
type transparentNet struct {
	w                                        *world
	ns, target, elsewhere, other, remote     string
	port, gwPort, targetAddr, osUser, client string
	aliceKey, knownHosts                     string
}

// transparentOptions are newTransparent's: IPv6, TPROXY rather than
// REDIRECT, and the service's lines after its router and more top-level
// keys (see transparentYAML).
type transparentOptions struct {
	v6, tproxy    bool
	service, tail string
}

// transparentYAML is the config of the transparent tests, with {client},
// {target}, {elsewhere}, {other} (each a host prefix), {listen},
// {target_addr} and {user} replaced; service holds the lines of the
// service after its router, tail more top-level keys.
const transparentYAML = `gateway: {name: gw1, state_dir: ./state}
zones:
  - {name: clients, networks: ["{client}"]}
  - {name: servers, networks: ["{target}", "{other}", "{remote}"]}
  - {name: elsewhere, networks: ["{elsewhere}"]}
users:
  - {name: alice, authorized_keys: ./alice_ed25519.pub}
services:
  - name: inline
    listen: "{listen}"
    client_zones: [clients]
    server_zones: [servers]
    router: {transparent: true, tproxy: {tproxy}}
    upstream: {identity: ./upstream_ed25519, known_hosts: ./known_hosts}
    record: true
%s
audit:
  sink: sqlite
%s`

// newTransparent builds a transparentNet and starts a gateway on it with
// transparentYAML around o's service and tail. The client trusts the host
// CA for target, elsewhere, other and remote on port, and for the
// gateway's own port.
func newTransparent(t *testing.T, o transparentOptions) *transparentNet {
	v6 := o.v6
	requireNetns(t)
	sshtest.RequireTool(t, "ssh")
	id := os.Getpid() % 100000
	net3 := 20 + os.Getpid()%200
	tag, prefix, bits, host, tables := "4", fmt.Sprintf("10.213.%d.", net3), "/24", "/32", "iptables"
	var nodad []string
	if v6 {
		tag, prefix, bits, host, tables = "6", fmt.Sprintf("fd00:213:%x::", net3), "/64", "/128", "ip6tables"
		nodad = []string{"nodad"}
		sshtest.RequireTool(t, "ip6tables")
	}
	ns, vh, vc := fmt.Sprintf("sltp%s%d", tag, id), fmt.Sprintf("sltp%sh%d", tag, id), fmt.Sprintf("sltp%sc%d", tag, id)
	target, elsewhere, other, client, remote := prefix+"1", prefix+"3", prefix+"4", prefix+"2", prefix+"9"
	must(t, []string{"ip", "netns", "del", ns}, "ip", "netns", "add", ns)
	must(t, []string{"ip", "link", "del", vh}, "ip", "link", "add", vh, "type", "veth", "peer", "name", vc)
	must(t, nil, "ip", "link", "set", vc, "netns", ns)
	// REDIRECT sends a connection to the interface's first IPv4
	// address, or to the IPv6 address of the destination's scope the
	// kernel lists first (the newest): make that target, where the
	// gateway listens.
	addrs := []string{target, elsewhere, other}
	if v6 {
		addrs = []string{other, elsewhere, target}
	}
	for _, a := range addrs {
		must(t, nil, append([]string{"ip", "addr", "add", a + bits, "dev", vh}, nodad...)...)
	}
	must(t, nil, "ip", "link", "set", vh, "up")
	must(t, nil, append([]string{"ip", "netns", "exec", ns, "ip", "addr", "add", client + bits, "dev", vc}, nodad...)...)
	must(t, nil, "ip", "netns", "exec", ns, "ip", "link", "set", vc, "up")
	must(t, nil, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	// remote is on no interface: the client sends it to the host.
	must(t, nil, "ip", "netns", "exec", ns, "ip", "route", "add", remote+host, "via", target)

	dir := t.TempDir()
	upSigner, _ := sshtest.NewKey(t, dir, "upstream_ed25519")
	_, aliceKey := sshtest.NewKey(t, dir, "alice_ed25519")
	sshPort := sshtest.FreePort(t)
	sshd := sshtest.StartSshd(t, sshtest.SshdOptions{
		AuthorizedKeys: []ssh.PublicKey{upSigner.PublicKey()},
		Config:         []string{"ListenAddress " + net.JoinHostPort(target, strconv.Itoa(sshPort))},
	})
	targetAddr := net.JoinHostPort(target, strconv.Itoa(sshPort))
	remoteAddr := net.JoinHostPort(remote, strconv.Itoa(sshPort))
	kh := sshtest.KnownHostsLine(targetAddr, sshd.HostKey) + "\n" + sshtest.KnownHostsLine(remoteAddr, sshd.HostKey) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	gwPort := sshtest.FreePort(t)
	port := strconv.Itoa(sshPort)
	listen := net.JoinHostPort(target, strconv.Itoa(gwPort))
	rule := []string{"nat", "PREROUTING", "-i", vh, "-p", "tcp", "--dport", port, "-j", "REDIRECT", "--to-ports", strconv.Itoa(gwPort)}
	if o.tproxy {
		// TPROXY hands the connection to the listener unchanged, marked
		// so that policy routing delivers it locally whatever its
		// destination; the listener answers for any address.
		listen = "0.0.0.0:" + strconv.Itoa(gwPort)
		if v6 {
			listen = "[::]:" + strconv.Itoa(gwPort)
		}
		mark, table := fmt.Sprintf("0x%x", 0x5100+id%0x100), strconv.Itoa(2130+id%100)
		rule = []string{"mangle", "PREROUTING", "-i", vh, "-p", "tcp", "--dport", port, "-j", "TPROXY", "--on-port", strconv.Itoa(gwPort), "--tproxy-mark", mark}
		ip := "-4"
		if v6 {
			ip = "-6"
		}
		must(t, []string{"ip", ip, "rule", "del", "fwmark", mark, "lookup", table}, "ip", ip, "rule", "add", "fwmark", mark, "lookup", table)
		must(t, []string{"ip", ip, "route", "del", "local", "default", "dev", "lo", "table", table}, "ip", ip, "route", "add", "local", "default", "dev", "lo", "table", table)
		dnat := []string{"OUTPUT", "-d", remote, "-p", "tcp", "--dport", port, "-j", "DNAT", "--to-destination", targetAddr}
		must(t, append([]string{tables, "-t", "nat", "-D"}, dnat...), append([]string{tables, "-t", "nat", "-A"}, dnat...)...)
	}
	add := append([]string{tables, "-t", rule[0], "-A"}, rule[1:]...)
	del := append([]string{tables, "-t", rule[0], "-D"}, rule[1:]...)
	must(t, del, add...)

	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer("{client}", client+host, "{target}", target+host, "{elsewhere}", elsewhere+host, "{other}", other+host,
		"{remote}", remote+host, "{listen}", listen, "{target_addr}", targetAddr, "{other_addr}", net.JoinHostPort(other, port),
		"{user}", u.Username, "{tproxy}", strconv.FormatBool(o.tproxy)).Replace(fmt.Sprintf(transparentYAML, o.service, o.tail))
	w := startGateway(t, dir, yaml, nil)

	ca, err := hostcert.ReadPublicKey(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	clientKH := filepath.Join(dir, "client_known_hosts")
	line := hostcert.KnownHostsLine([]string{"[" + target + "]:" + port, "[" + elsewhere + "]:" + port, "[" + other + "]:" + port, "[" + remote + "]:" + port, "[" + target + "]:" + strconv.Itoa(gwPort)}, ca, "sluice gw1 host CA")
	if err := os.WriteFile(clientKH, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &transparentNet{
		w: w, ns: ns, target: target, elsewhere: elsewhere, other: other, remote: remote,
		port: port, gwPort: strconv.Itoa(gwPort), targetAddr: targetAddr, osUser: u.Username, client: client,
		aliceKey: aliceKey, knownHosts: clientKH,
	}
}

// ssh runs, in the client's namespace, OpenSSH's ssh login@host -p port
// cmd with alice's key and strict host-key checking against the CA line.
func (n *transparentNet) ssh(login, host, port, cmd string) result {
	return n.w.run(nil, "ip", "netns", "exec", n.ns, "ssh", "-F", "/dev/null", "-p", port, "-i", n.aliceKey,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+n.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", login+"@"+host, cmd)
}

func testTransparent(t *testing.T, v6 bool) {
	n := newTransparent(t, transparentOptions{v6: v6, service: `    policy:
      pty: true
      exec: {allow: ["echo .*"]}`})
	w, target, elsewhere, port, targetAddr := n.w, n.target, n.elsewhere, n.port, n.targetAddr
	ssh := func(host, p, cmd string) result { return n.ssh(n.osUser, host, p, cmd) }

	r := ssh(target, port, "echo transparent")
	if r.code != 0 || r.stdout != "transparent\n" {
		t.Fatalf("ssh %s@%s: got exit %d, stdout %q, stderr %q, want transparent", n.osUser, target, r.code, r.stdout, r.stderr)
	}
	starts := w.events(audit.TypeSessionStart, nil)
	if len(starts) != 1 {
		t.Fatalf("session.start events: got %+v, want one", starts)
	}
	s := starts[0]
	if s.User != "alice" || s.Target != targetAddr || s.ClientZone != "clients" || s.ServerZone != "servers" || s.Detail["ssh_user"] != n.osUser {
		t.Errorf("session.start: got user %q target %q zones %q/%q ssh_user %v, want alice, %s, clients/servers, %s", s.User, s.Target, s.ClientZone, s.ServerZone, s.Detail["ssh_user"], targetAddr, n.osUser)
	}
	conns := w.events("connect", func(e audit.Event) bool { return e.Verdict == audit.Accept })
	if len(conns) != 1 || conns[0].Rule != "services[inline].router.transparent" {
		t.Errorf("connect events: got %+v, want one accepted by services[inline].router.transparent", conns)
	}
	if recs := w.events("record", func(e audit.Event) bool { return e.Verdict == audit.Accept }); len(recs) != 1 {
		t.Errorf("record events: got %+v, want one", recs)
	}
	// The policy decides: a command outside it is refused.
	if r := ssh(target, port, "id"); r.code == 0 {
		t.Errorf("a command outside the policy: got exit 0, stdout %q", r.stdout)
	}

	// A destination outside server_zones: redirected like the other,
	// refused before any dial.
	if r := ssh(elsewhere, port, "echo no"); r.code == 0 {
		t.Errorf("ssh to %s, outside server_zones: got exit 0, want refused", elsewhere)
	}
	refused := w.events("connect", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(refused) != 1 || refused[0].Rule != "services[inline].server_zones" {
		t.Errorf("connect refusals: got %+v, want one by services[inline].server_zones", refused)
	}

	// The gateway's own port: nothing was redirected, so there is no
	// original destination to go to.
	if r := ssh(target, n.gwPort, "echo no"); r.code == 0 {
		t.Errorf("ssh to the gateway's own port: got exit 0, want refused")
	}
	routes := w.events("route", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(routes) != 1 || routes[0].Rule != "services[inline].router.transparent" || !strings.Contains(routes[0].Reason, "no original destination") {
		t.Errorf("route refusals: got %+v, want one: no original destination", routes)
	}
}

// TestTransparentNetnsRoles: on a transparent service with roles, the
// roles decide the login (the SSH user name) and the host (the original
// destination, an inventory host's address). alice's login on db1 is
// proxied under her role; a login outside the role, an in-band name that
// tries to pick its own route, and db2 (an inventory host in the server
// zones but not in her role) are refused before any dial.
func TestTransparentNetnsRoles(t *testing.T) {
	n := newTransparent(t, transparentOptions{service: `    policy:
      exec: {allow: ["echo .*"]}`, tail: `hosts:
  - {name: db1, address: "{target_addr}"}
  - {name: db2, address: "{other_addr}"}
roles:
  - name: dba
    users: [alice]
    hosts: [db1]
    logins: ["{user}"]
    policy:
      exec: {allow: ["echo .*"]}
`})
	w := n.w
	if r := n.ssh(n.osUser, n.target, n.port, "echo roles"); r.code != 0 || r.stdout != "roles\n" {
		t.Fatalf("ssh %s@%s: got exit %d, stdout %q, stderr %q, want roles", n.osUser, n.target, r.code, r.stdout, r.stderr)
	}
	acc := w.accessEvents(func(e audit.Event) bool { return e.Verdict == audit.Accept })
	if len(acc) != 1 || acc[0].Detail["role"] != "dba" || acc[0].Detail["login"] != n.osUser || acc[0].Detail["host"] != "db1" || acc[0].User != "alice" {
		t.Fatalf("accepted access events: got %+v, want one for alice, role dba, host db1, login %s", acc, n.osUser)
	}
	starts := w.events(audit.TypeSessionStart, nil)
	if len(starts) != 1 || starts[0].Target != n.targetAddr || starts[0].ServerZone != "servers" {
		t.Errorf("session.start events: got %+v, want one to %s in servers", starts, n.targetAddr)
	}

	for _, c := range []struct{ login, host, why string }{
		{"nobody", n.target, "a login outside the role"},
		{"alice+db1+" + n.osUser, n.target, "an in-band name as the login"},
		{n.osUser, n.other, "db2, outside the role"},
	} {
		before := len(w.events("connect", nil))
		if r := n.ssh(c.login, c.host, n.port, "echo no"); r.code == 0 || strings.Contains(r.stdout, "no") {
			t.Errorf("%s (%s@%s): got exit %d, stdout %q, want refused", c.why, c.login, c.host, r.code, r.stdout)
		}
		refused := w.accessEvents(func(e audit.Event) bool { return e.Verdict == audit.Reject })
		if len(refused) == 0 || refused[len(refused)-1].User != "alice" {
			t.Errorf("%s: access refusals %+v, want the last one alice's", c.why, refused)
		}
		if after := len(w.events("connect", nil)); after != before {
			t.Errorf("%s: connect events %d -> %d, want no dial", c.why, before, after)
		}
	}
	refused := w.accessEvents(func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(refused) != 3 || refused[0].Detail["login_asked"] != "nobody" || refused[2].Detail["host"] != "db2" {
		t.Errorf("access refusals: got %+v, want nobody's, the in-band name's and db2's", refused)
	}
}

// TestTransparentNetnsTProxy: with router.tproxy the host's TPROXY rule
// and policy routing hand the gateway, listening with IP_TRANSPARENT on
// the wildcard, connections to any address: one to remote, an address of
// no interface, is answered by the gateway under a host certificate for
// remote, keeps the client's address, and is proxied to remote (both
// zones checked). A destination outside server_zones is refused, and a
// connection straight to the listen port has no original destination.
func TestTransparentNetnsTProxy(t *testing.T) { testTProxy(t, false) }

// TestTransparentNetnsTProxyIPv6 is TestTransparentNetnsTProxy over IPv6
// (IPV6_TRANSPARENT on the [::] listener, ip6tables, ip -6 rule).
func TestTransparentNetnsTProxyIPv6(t *testing.T) { testTProxy(t, true) }

func testTProxy(t *testing.T, v6 bool) {
	n := newTransparent(t, transparentOptions{v6: v6, tproxy: true, service: `    policy:
      exec: {allow: ["echo .*"]}`})
	w := n.w
	remoteAddr := net.JoinHostPort(n.remote, n.port)
	if r := n.ssh(n.osUser, n.remote, n.port, "echo tproxy"); r.code != 0 || r.stdout != "tproxy\n" {
		t.Fatalf("ssh %s@%s: got exit %d, stdout %q, stderr %q, want tproxy", n.osUser, n.remote, r.code, r.stdout, r.stderr)
	}
	starts := w.events(audit.TypeSessionStart, nil)
	if len(starts) != 1 {
		t.Fatalf("session.start events: got %+v, want one", starts)
	}
	s := starts[0]
	client, _, _ := net.SplitHostPort(s.ClientAddr)
	if s.User != "alice" || s.Target != remoteAddr || client != n.client || s.ClientZone != "clients" || s.ServerZone != "servers" {
		t.Errorf("session.start: got user %q target %q client %q zones %q/%q, want alice, %s, %s, clients/servers", s.User, s.Target, s.ClientAddr, s.ClientZone, s.ServerZone, remoteAddr, n.client)
	}
	// A destination that is the host's own address works the same way.
	if r := n.ssh(n.osUser, n.target, n.port, "echo local"); r.code != 0 || r.stdout != "local\n" {
		t.Errorf("ssh %s@%s: got exit %d, stdout %q, stderr %q, want local", n.osUser, n.target, r.code, r.stdout, r.stderr)
	}
	if r := n.ssh(n.osUser, n.elsewhere, n.port, "echo no"); r.code == 0 {
		t.Errorf("ssh to %s, outside server_zones: got exit 0, want refused", n.elsewhere)
	}
	refused := w.events("connect", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(refused) != 1 || refused[0].Rule != "services[inline].server_zones" {
		t.Errorf("connect refusals: got %+v, want one by services[inline].server_zones", refused)
	}
	if r := n.ssh(n.osUser, n.target, n.gwPort, "echo no"); r.code == 0 {
		t.Errorf("ssh to the listen port: got exit 0, want refused")
	}
	routes := w.events("route", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(routes) != 1 || routes[0].Rule != "services[inline].router.transparent" || !strings.Contains(routes[0].Reason, "no original destination") {
		t.Errorf("route refusals: got %+v, want one: no original destination", routes)
	}
}
