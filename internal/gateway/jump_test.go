package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/hostcert"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// jumpTail is the inventory and role of the jump tests: alice reaches db1
// (the first sshd) as the sshd's login, may run echo and id, and sftp; db2
// (the second sshd) is no host of hers.
const jumpTail = `hosts:
  - {name: db1, address: "{sshd0}"}
  - {name: db2, address: "{sshd1}"}
roles:
  - name: dba
    users: [alice]
    hosts: [db1]
    logins: ["{user}"]
    policy:
      pty: true
      exec: {allow: ["echo .*", "id", "cat"]}
      subsystems: {sftp: {}}
`

// jumpWorld is a world whose service answers jumps (router.jump) and
// records, with jumpTail; service holds extra lines for the service.
func jumpWorld(t *testing.T, service string) *world {
	t.Helper()
	return newWorld(t, worldOptions{
		moreSshd: 1,
		router:   "      jump: true\n",
		service:  "    record: true\n" + service,
		tail:     jumpTail,
	})
}

// jumpClient writes an ssh_config for OpenSSH clients that jump through
// the gateway as alice ("Host gw"), trusting the gateway's host key by
// itself and everything else only by the host CA's @cert-authority line
// (withCA) or not at all, with strict host-key checking for both hops.
// ProxyJump hands the -F file, and no -o option, to the ssh it starts for
// the jump, so everything is in the file. It returns the file's path.
func (w *world) jumpClient(withCA bool) string {
	w.t.Helper()
	dir := w.t.TempDir()
	kh := sshtest.KnownHostsLine(net.JoinHostPort("127.0.0.1", strconv.Itoa(w.port)), w.hostKey) + "\n"
	if withCA {
		ca, err := hostcert.ReadPublicKey(filepath.Join(w.dir, "state"))
		if err != nil {
			w.t.Fatal(err)
		}
		hosts := map[string]string{"db1": w.sshd.Addr, "db2": w.more[0].Addr}
		kh += hostcert.KnownHostsLine(hostcert.Patterns(hosts), ca, "sluice gw1 host CA") + "\n"
	}
	khPath := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(khPath, []byte(kh), 0o600); err != nil {
		w.t.Fatal(err)
	}
	cfg := fmt.Sprintf(`Host gw
  HostName 127.0.0.1
  Port %d
  User alice
  BindAddress %s
Host *
  IdentityFile %s
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
`, w.port, clientAddr, w.aliceKey, khPath)
	path := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// innerOf matches the events of inner jump connections: sessions stacked
// as "ssh" in a direct-tcpip channel of the master.
func innerOf(e audit.Event) bool { return strings.Contains(e.SessionID, "/direct-tcpip:") }

// TestJumpOpenSSH: ssh -J through the gateway to db1 with strict host-key
// checking and only the host CA line for db1 runs a policy-checked,
// recorded session stacked under the jump connection, audited with db1 as
// target; a command outside the role's policy is refused.
func TestJumpOpenSSH(t *testing.T) {
	w := jumpWorld(t, "")
	cfg := w.jumpClient(true)
	dest := w.osUser + "@db1"
	port := strconv.Itoa(w.sshd.Port)
	r := w.run(nil, "ssh", "-F", cfg, "-J", "gw", "-p", port, dest, "echo jumped")
	if r.code != 0 || r.stdout != "jumped\n" {
		t.Fatalf("ssh -J: got exit %d, stdout %q, stderr %q, want 0 and jumped", r.code, r.stdout, r.stderr)
	}
	starts := w.events(audit.TypeSessionStart, innerOf)
	if len(starts) != 1 {
		t.Fatalf("inner session.start events: got %+v, want one", starts)
	}
	in := starts[0]
	if want := "gw1/ssh-in:"; !strings.HasPrefix(in.SessionID, want) || !strings.HasSuffix(in.SessionID, "/ssh/direct-tcpip:0/ssh") {
		t.Errorf("inner session id: got %q, want gw1/ssh-in:N/ssh/direct-tcpip:0/ssh", in.SessionID)
	}
	if in.User != "alice" || in.Target != w.sshd.Addr || in.ServerZone != "servers" || in.ClientZone != "office" {
		t.Errorf("inner session.start: got user %q target %q zones %q/%q, want alice, %s, office/servers", in.User, in.Target, in.ClientZone, in.ServerZone, w.sshd.Addr)
	}
	outer := strings.TrimSuffix(in.SessionID, "/ssh/direct-tcpip:0/ssh")
	jumps := w.events("forward.jump", func(e audit.Event) bool { return e.SessionID == outer+"/ssh/direct-tcpip:0" })
	if len(jumps) != 1 || jumps[0].Verdict != audit.Accept || jumps[0].Detail["inventory_host"] != "db1" {
		t.Errorf("forward.jump events: got %+v, want one accepted for db1", jumps)
	}
	acc := w.accessEvents(func(e audit.Event) bool { return e.SessionID == in.SessionID })
	if len(acc) != 1 || acc[0].Verdict != audit.Accept || acc[0].Detail["login"] != w.osUser || acc[0].Detail["role"] != "dba" {
		t.Errorf("inner access events: got %+v, want one accepted, role dba, login %s", acc, w.osUser)
	}
	// The inner session's recording holds the command's output.
	recs := w.events("record", func(e audit.Event) bool {
		return strings.HasPrefix(e.SessionID, in.SessionID+"/") && e.Verdict == audit.Accept
	})
	if len(recs) != 1 {
		t.Fatalf("inner record events: got %+v, want one", recs)
	}
	// The inner session's end lists the file once it is closed.
	ends := w.events(audit.TypeSessionEnd, func(e audit.Event) bool { return e.SessionID == in.SessionID })
	p, _ := recs[0].Detail["recording"].(string)
	if len(ends) != 1 || ends[0].Detail["recording"] != p {
		t.Fatalf("inner session.end: got %+v, want one listing %s", ends, p)
	}
	if played := readChannel(t, p, recs[0].SessionID).played; !strings.Contains(played, "jumped") {
		t.Errorf("recording %s: played %q, want the output", p, played)
	}

	// The role's exec policy decides inside the jump.
	r = w.run(nil, "ssh", "-F", cfg, "-J", "gw", "-p", port, dest, "cat /etc/hostname")
	if r.code == 0 {
		t.Errorf("a command outside the policy: got exit 0, stdout %q, want refused", r.stdout)
	}
	denied := w.events("exec", func(e audit.Event) bool { return innerOf(e) && e.Verdict == audit.Reject })
	if len(denied) == 0 {
		t.Error("no refused exec event in a jump")
	}
}

// TestJumpTransfers: scp -J and sftp -J through the gateway reach db1
// under the role's sftp policy.
func TestJumpTransfers(t *testing.T) {
	sshtest.RequireTool(t, "scp")
	sshtest.RequireTool(t, "sftp")
	w := jumpWorld(t, "")
	cfg := w.jumpClient(true)
	port := strconv.Itoa(w.sshd.Port)
	local := t.TempDir()
	src := filepath.Join(local, "up.txt")
	if err := os.WriteFile(src, []byte("through the jump\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := t.TempDir()
	r := w.run(nil, "scp", "-F", cfg, "-J", "gw", "-P", port, src, w.osUser+"@db1:"+filepath.Join(remote, "scp.txt"))
	if r.code != 0 {
		t.Fatalf("scp -J: got exit %d, stderr %q, want 0", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(remote, "scp.txt")); err != nil || string(b) != "through the jump\n" {
		t.Errorf("scp -J: file on db1 got %q, %v", b, err)
	}
	batch := filepath.Join(local, "batch")
	if err := os.WriteFile(batch, []byte("get "+filepath.Join(remote, "scp.txt")+" "+filepath.Join(local, "down.txt")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.run(nil, "sftp", "-F", cfg, "-J", "gw", "-P", port, "-b", batch, w.osUser+"@db1")
	if r.code != 0 {
		t.Fatalf("sftp -J: got exit %d, stderr %q, want 0", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(local, "down.txt")); err != nil || string(b) != "through the jump\n" {
		t.Errorf("sftp -J: downloaded %q, %v", b, err)
	}
	ops := w.events("sftp.open", innerOf)
	if len(ops) == 0 {
		t.Error("no sftp.open event of a jump: the transfer was not inspected")
	}
}

// TestJumpRefusals tries to get around the jump: a host outside the
// role, a login outside it, a port that is not an inventory host's SSH
// port, a session on the jump connection itself, and a client that does
// not trust the host CA (strict checking fails before any login).
func TestJumpRefusals(t *testing.T) {
	w := jumpWorld(t, "")
	cfg := w.jumpClient(true)
	port := strconv.Itoa(w.sshd.Port)

	r := w.run(nil, "ssh", "-F", cfg, "-J", "gw", "-p", strconv.Itoa(w.more[0].Port), w.osUser+"@db2", "echo no")
	if r.code == 0 {
		t.Errorf("db2, outside the role: got exit 0, want refused")
	}
	if acc := w.accessEvents(func(e audit.Event) bool { return innerOf(e) && e.Detail["host"] == "db2" && e.Verdict == audit.Reject }); len(acc) != 1 {
		t.Errorf("db2 access events: got %+v, want one refusal", acc)
	}

	r = w.run(nil, "ssh", "-F", cfg, "-J", "gw", "-p", port, "nobody@db1", "echo no")
	if r.code == 0 {
		t.Errorf("login nobody, outside the role: got exit 0, want refused")
	}
	if acc := w.accessEvents(func(e audit.Event) bool {
		return innerOf(e) && e.Detail["login_asked"] == "nobody" && e.Verdict == audit.Reject
	}); len(acc) != 1 {
		t.Errorf("login nobody access events: got %+v, want one refusal", acc)
	}

	// db1's address on another port: an opaque forward, which a
	// connection that serves jumps only refuses.
	r = w.run(nil, "ssh", "-F", cfg, "-W", "127.0.0.1:"+strconv.Itoa(w.gw.Addr("ssh-in").(*net.TCPAddr).Port), "gw")
	if r.code == 0 {
		t.Errorf("-W to a port that is no inventory host's: got exit 0, want refused")
	}
	// A session on the jump connection itself.
	r = w.run(nil, "ssh", "-F", cfg, "gw", "echo no")
	if r.code == 0 || strings.Contains(r.stdout, "no") {
		t.Errorf("a session on a jump-only connection: got exit %d, stdout %q, want refused", r.code, r.stdout)
	}
	refused := w.events("channel", func(e audit.Event) bool { return e.Rule == "services[ssh-in].router.jump" && e.Verdict == audit.Reject })
	if len(refused) != 2 {
		t.Errorf("refusals on jump-only connections: got %+v, want 2", refused)
	}

	// Without the CA line the client refuses db1's certificate: no
	// inner login happens.
	before := len(w.events(EventAccess, innerOf))
	r = w.run(nil, "ssh", "-F", w.jumpClient(false), "-J", "gw", "-p", port, w.osUser+"@db1", "echo no")
	if r.code == 0 || !strings.Contains(r.stderr, "Host key verification failed") {
		t.Errorf("without the CA line: got exit %d, stderr %q, want host key verification failed", r.code, r.stderr)
	}
	if after := len(w.events(EventAccess, innerOf)); after != before {
		t.Errorf("without the CA line: access events %d -> %d, want no inner login", before, after)
	}
}

// jumpGo opens, with x/crypto/ssh, an inner connection as login to the
// inventory host at hostport through a jump connection of alice's: the
// inner host key must be a host certificate of the gateway's host CA for
// the name in hostport.
func (w *world) jumpGo(t *testing.T, login, hostport string) (outer, inner *ssh.Client) {
	t.Helper()
	cfg := w.aliceConfigAs(t, "alice")
	outer = w.dial(t, cfg)
	t.Cleanup(func() { outer.Close() })
	return outer, w.jumpOn(t, outer, login, hostport, cfg.Auth...)
}

// jumpOn opens an inner connection as login to the inventory host at
// hostport through the jump connection outer, authenticating with auth
// (see jumpGo).
func (w *world) jumpOn(t *testing.T, outer *ssh.Client, login, hostport string, auth ...ssh.AuthMethod) *ssh.Client {
	t.Helper()
	c, err := w.jumpLogin(outer, login, hostport, auth...)
	if err != nil {
		t.Fatalf("inner login: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// jumpLogin is jumpOn returning the inner login's error.
func (w *world) jumpLogin(outer *ssh.Client, login, hostport string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	nc, err := outer.Dial("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("direct-tcpip to %s: %w", hostport, err)
	}
	ca, err := hostcert.ReadPublicKey(filepath.Join(w.dir, "state"))
	if err != nil {
		nc.Close()
		return nil, err
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return bytes.Equal(k.Marshal(), ca.Marshal())
	}}
	icfg := &ssh.ClientConfig{User: login, Auth: auth, HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second}
	c, chans, reqs, err := ssh.NewClientConn(nc, hostport, icfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// TestJumpOnlyIdleTimeout: a connection that serves jumps only is ended
// by the service's idle_timeout like any other: kept open while data
// moves through its jump, ended and audited once none has for the
// timeout (keepalives do not count), its inner session with it.
func TestJumpOnlyIdleTimeout(t *testing.T) {
	w := jumpWorld(t, "    idle_timeout: 2s\n")
	outer, inner := w.jumpGo(t, w.osUser, "db1:"+strconv.Itoa(w.sshd.Port))
	var last time.Time
	for range 4 { // data through the jump keeps both open past the timeout
		if out := runOn(t, inner, "echo alive"); out != "alive\n" {
			t.Fatalf("inner session: got %q", out)
		}
		last = time.Now()
		time.Sleep(700 * time.Millisecond)
	}
	// Keepalives, as ssh's ServerAliveInterval sends them, are no data:
	// they do not keep an idle connection open.
	go func() {
		for {
			if _, _, err := outer.SendRequest("keepalive@openssh.com", true, nil); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	if !endsWithin(outer, 15*time.Second) {
		t.Fatal("idle jump connection still open after 15s, want closed about 2s after the last data")
	}
	t.Logf("jump connection closed %v after the last data", time.Since(last))
	evs := w.events("idle", func(e audit.Event) bool { return !innerOf(e) })
	if len(evs) != 1 || evs[0].Rule != "services[ssh-in].idle_timeout" {
		t.Fatalf("got idle events of the jump connection %+v, want one by services[ssh-in].idle_timeout", evs)
	}
	if evs := w.events("session.end", func(e audit.Event) bool { return !innerOf(e) }); len(evs) != 1 || !strings.Contains(evs[0].Reason, "idle timeout") {
		t.Fatalf("got session.end %+v, want reason idle timeout", evs)
	}
}

// TestJumpReloadEndsInner: a reload that takes db1 from alice's role ends
// her inner session of a jump (on_reload: end), as it ends her direct
// sessions, while the jump connection itself stays.
func TestJumpReloadEndsInner(t *testing.T) {
	w := jumpWorld(t, "    on_reload: end\n")
	outer, inner := w.jumpGo(t, w.osUser, "db1:"+strconv.Itoa(w.sshd.Port))
	echoSession(t, inner)()
	if err := w.reloadWith(t, "hosts: [db1]", "hosts: [db2]"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	evs := w.events(EventReload, innerOf)
	if len(evs) != 1 || evs[0].Verdict != audit.Reject || evs[0].Detail["host"] != "db1" || evs[0].Detail["on_reload"] != "end" {
		t.Fatalf("reload events of inner sessions: got %+v, want one refusal", evs)
	}
	if !endsWithin(inner, 10*time.Second) {
		t.Fatal("the inner session still runs 10s after the reload")
	}
	if _, _, err := outer.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Errorf("jump connection after the reload: %v, want it open", err)
	}
}

// TestJumpKillInner: the inner sessions of a jump are listed as live by
// the admin socket under their own ids, with the user and the inventory
// host's address as target; killing one by its id ends that inner
// session alone, audited, while the jump connection and its other inner
// session go on.
func TestJumpKillInner(t *testing.T) {
	w := jumpWorld(t, "")
	hostport := "db1:" + strconv.Itoa(w.sshd.Port)
	outer, first := w.jumpGo(t, w.osUser, hostport)
	second := w.jumpOn(t, outer, w.osUser, hostport, w.aliceConfig(t).Auth...)
	echoSession(t, first)()
	echo := echoSession(t, second)
	echo()

	c := admin.NewClient(w.gw.cfg.Gateway.Admin.Socket)
	ctx := context.Background()
	list, err := c.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	var outers, inners []admin.Session
	for _, s := range list {
		if strings.Contains(s.ID, "/direct-tcpip:") {
			inners = append(inners, s)
		} else {
			outers = append(outers, s)
		}
	}
	if len(outers) != 1 || len(inners) != 2 {
		t.Fatalf("Sessions: got %+v, want the jump connection and its two inner sessions", list)
	}
	for _, s := range inners {
		if !strings.HasPrefix(s.ID, outers[0].ID+"/ssh/direct-tcpip:") || s.User != "alice" || s.Target != w.sshd.Addr || !strings.HasPrefix(s.Client, clientAddr+":") {
			t.Errorf("inner session: got %+v, want alice's, under %s, target %s, client %s", s, outers[0].ID, w.sshd.Addr, clientAddr)
		}
	}
	// The first inner session, by its channel number.
	victim := inners[0].ID
	if !strings.HasSuffix(victim, "/direct-tcpip:0/ssh") {
		t.Fatalf("inner ids %+v: want the first channel's first", inners)
	}
	if err := c.Kill(ctx, victim); err != nil {
		t.Fatalf("Kill %s: %v", victim, err)
	}
	if !endsWithin(first, 15*time.Second) {
		t.Fatal("the killed inner session still runs 15s after the kill")
	}
	echo()
	if _, _, err := outer.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Errorf("jump connection after the kill: %v, want it open", err)
	}
	kills := w.events("kill", nil)
	if len(kills) != 1 || kills[0].SessionID != victim || kills[0].Verdict != audit.Accept || kills[0].User != "alice" || kills[0].Rule != "admin" {
		t.Fatalf("kill events: got %+v, want one for %s", kills, victim)
	}
	ends := w.events(audit.TypeSessionEnd, func(e audit.Event) bool { return e.SessionID == victim })
	if len(ends) != 1 || !strings.Contains(ends[0].Reason, "revoked: by operator") {
		t.Errorf("inner session.end: got %+v, want one, revoked by operator", ends)
	}
	list, err = c.Sessions(ctx)
	if err != nil {
		t.Fatalf("Sessions: %v", err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if slices.Contains(ids, victim) || !slices.Contains(ids, inners[1].ID) || !slices.Contains(ids, outers[0].ID) {
		t.Errorf("Sessions after the kill: got %q, want %s gone, %s and %s live", ids, victim, inners[1].ID, outers[0].ID)
	}
	if err := c.Kill(ctx, victim); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("second Kill: got %v, want ErrNotFound", err)
	}
}

// TestJumpCertificateNames: the inner host certificate holds db1's
// inventory name and its address, so a client reaches db1 by either
// (x/crypto compares principals exactly; OpenSSH lowercases the host
// name first). That it holds no other name, hostcert's tests check.
func TestJumpCertificateNames(t *testing.T) {
	w := jumpWorld(t, "")
	port := strconv.Itoa(w.sshd.Port)
	for _, hp := range []string{"db1:" + port, "127.0.0.1:" + port} {
		_, inner := w.jumpGo(t, w.osUser, hp)
		if _, _, err := inner.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			t.Errorf("%s: %v", hp, err)
		}
	}
}

// TestJumpSetupCost measures, when SLUICE_BENCH=1, how long `ssh -J gw
// HOST echo ok` takes with the hop inspected (router.jump) and as an opaque
// forward (forward_ssh, the client logging in to sshd itself through the
// gateway's upstream connection), each against the same kind of sshd on
// loopback; docs/benchmarks.md has the figures. newWorld wants a
// *testing.T, hence a test rather than a benchmark.
func TestJumpSetupCost(t *testing.T) {
	if os.Getenv("SLUICE_BENCH") != "1" {
		t.Skip("set SLUICE_BENCH=1 to measure")
	}
	const n = 20
	measure := func(args ...string) []time.Duration {
		var ds []time.Duration
		for range n {
			w0 := time.Now()
			// w.run fails the test on anything but an exit status.
			cmd := exec.Command("ssh", args...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("ssh %q: %v\n%s", args, err, out)
			}
			ds = append(ds, time.Since(w0))
		}
		return ds
	}
	inspected := jumpWorld(t, "")
	in := measure("-F", inspected.jumpClient(true), "-J", "gw", "-p", strconv.Itoa(inspected.sshd.Port), inspected.osUser+"@db1", "echo ok")

	opaque := newWorld(t, worldOptions{policy: "      forward_local: [\"127.0.0.1:*\"]\n      forward_ssh: true\n"})
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	lines := sshtest.KnownHostsLine(net.JoinHostPort("127.0.0.1", strconv.Itoa(opaque.port)), opaque.hostKey) + "\n" + opaque.sshd.KnownHostsLine() + "\n"
	if err := os.WriteFile(kh, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`Host gw
  HostName 127.0.0.1
  Port %d
  User %s
  BindAddress %s
  IdentityFile %s
Host target
  HostName 127.0.0.1
  Port %d
  User %s
  IdentityFile %s
Host *
  IdentitiesOnly yes
  IdentityAgent none
  BatchMode yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
`, opaque.port, opaque.target(), clientAddr, opaque.aliceKey, opaque.sshd.Port, opaque.osUser, filepath.Join(opaque.dir, "upstream_ed25519"), kh)), 0o600); err != nil {
		t.Fatal(err)
	}
	op := measure("-F", cfg, "-J", "gw", "target", "echo ok")
	q := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(p*float64(len(s)-1))]
	}
	t.Logf("ssh -J gw HOST echo ok, %d runs each:", n)
	t.Logf("  inspected (router.jump): median %v, p10 %v, p90 %v", q(in, 0.5).Round(time.Millisecond), q(in, 0.1).Round(time.Millisecond), q(in, 0.9).Round(time.Millisecond))
	t.Logf("  opaque (forward_ssh):    median %v, p10 %v, p90 %v", q(op, 0.5).Round(time.Millisecond), q(op, 0.1).Round(time.Millisecond), q(op, 0.9).Round(time.Millisecond))
}

// TestJumpSecondLoginIsTheSamePerson: the inner login of alice's jump
// takes only alice's credentials. Bob, a user of the gateway too, cannot
// ride on her jump connection with his own key, whatever login he names
// (his own name included).
func TestJumpSecondLoginIsTheSamePerson(t *testing.T) {
	keys := t.TempDir()
	bob, bobKey := sshtest.NewKey(t, keys, "bob_ed25519")
	w := newWorld(t, worldOptions{
		moreSshd: 1,
		router:   "      jump: true\n",
		users:    fmt.Sprintf("  - name: bob\n    authorized_keys: %s.pub\n", bobKey),
		tail:     strings.Replace(jumpTail, "users: [alice]", "users: [alice, bob]", 1),
	})
	outer := w.dial(t, w.aliceConfigAs(t, "alice"))
	defer outer.Close()
	hostport := "db1:" + strconv.Itoa(w.sshd.Port)
	for _, login := range []string{w.osUser, "bob", "alice"} {
		nc, err := outer.Dial("tcp", hostport)
		if err != nil {
			t.Fatalf("direct-tcpip: %v", err)
		}
		icfg := &ssh.ClientConfig{User: login, Auth: []ssh.AuthMethod{ssh.PublicKeys(bob)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
		if c, _, _, err := ssh.NewClientConn(nc, hostport, icfg); err == nil {
			c.Close()
			t.Errorf("bob's key as %q in alice's jump: logged in, want refused", login)
		}
		nc.Close()
	}
	// One event per refused key (with its method), besides the
	// connection's failed handshake.
	refused := w.events("auth", func(e audit.Event) bool { return innerOf(e) && e.Verdict == audit.Reject && e.Detail["method"] != nil })
	if len(refused) < 3 {
		t.Errorf("inner auth refusals: got %+v, want one per attempt", refused)
	}
	for _, e := range refused {
		if e.User != "alice" {
			t.Errorf("inner auth refusal names user %q, want alice (the jump's)", e.User)
		}
	}
}

// TestJumpCarriesSecondFactor: under mfa.required_for, the inner login of
// a jump carries the code alice gave at the jump connection's login, so
// her key alone logs in inside and gets a pty, a step-up kind. Attempts
// around it: her key marked for automation, inside that same jump, takes
// nothing and is refused the pty; a jump connection logged in with the
// automation key has no code to carry, so her person key is asked for
// one inside it, refused without, and gets the pty with it.
func TestJumpCarriesSecondFactor(t *testing.T) {
	w := newWorld(t, worldOptions{
		moreSshd: 1,
		router:   "      jump: true\n",
		service:  "    mfa: {required_for: [pty]}\n",
		users:    "    totp_file: ./totp/alice\n",
		tail:     jumpTail,
	})
	codes := w.enrol("alice")
	robot, robotKey := sshtest.NewKey(t, t.TempDir(), "robot_ed25519")
	pub, err := os.ReadFile(robotKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(w.aliceKey+".pub", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(append([]byte("\nautomation "), pub...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	person := w.aliceConfigAs(t, "alice")
	code := func() ssh.AuthMethod {
		c := codes.next()
		return ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			out := make([]string, len(qs))
			for i := range out {
				out[i] = c
			}
			return out, nil
		})
	}
	hostport := "db1:" + strconv.Itoa(w.sshd.Port)
	pty := func(c *ssh.Client) bool {
		t.Helper()
		s, err := c.NewSession()
		if err != nil {
			t.Fatalf("inner session: %v", err)
		}
		defer s.Close()
		return s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}) == nil
	}
	const rule = "services[ssh-in].mfa.required_for"

	withCode := *person
	withCode.Auth = append(slices.Clone(person.Auth), code())
	outer := w.dial(t, &withCode)
	t.Cleanup(func() { outer.Close() })
	if !pty(w.jumpOn(t, outer, w.osUser, hostport, person.Auth...)) {
		t.Error("person key inside a jump logged in with a code: pty refused, want granted")
	}
	carried := w.events("auth", func(e audit.Event) bool { return innerOf(e) && e.Verdict == audit.Accept })
	if len(carried) != 1 || carried[0].Detail["second_factor"] != "totp" || carried[0].Detail["second_factor_carried"] != true {
		t.Errorf("inner auth events: got %+v, want one with second_factor totp, carried", carried)
	}
	if pty(w.jumpOn(t, outer, w.osUser, hostport, ssh.PublicKeys(robot))) {
		t.Error("automation key inside a jump logged in with a code: pty granted, want refused")
	}
	if got := w.events("pty", func(e audit.Event) bool { return innerOf(e) && e.Verdict == audit.Reject && e.Rule == rule }); len(got) != 1 {
		t.Errorf("refused inner pty events: got %+v, want one by %s", got, rule)
	}

	automation := *person
	automation.Auth = []ssh.AuthMethod{ssh.PublicKeys(robot)}
	robotOuter := w.dial(t, &automation)
	t.Cleanup(func() { robotOuter.Close() })
	if c, err := w.jumpLogin(robotOuter, w.osUser, hostport, person.Auth...); err == nil {
		c.Close()
		t.Error("person key without a code inside an automation jump: logged in, want a code asked")
	}
	in := w.jumpOn(t, robotOuter, w.osUser, hostport, append(slices.Clone(person.Auth), code())...)
	if !pty(in) {
		t.Error("person key with a code inside an automation jump: pty refused, want granted")
	}
	asked := w.events("auth", func(e audit.Event) bool {
		return innerOf(e) && e.Verdict == audit.Accept && e.Detail["second_factor"] == "totp" && e.Detail["second_factor_carried"] == nil
	})
	if len(asked) != 1 {
		t.Errorf("inner auth events with a code of their own: got %+v, want one", asked)
	}
}
