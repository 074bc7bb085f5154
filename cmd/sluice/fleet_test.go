package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// fleetLease is the nodes' gateway.fleet.lease in TestFleetHAProxy.
const fleetLease = 3 * time.Second

// fleetNode is one gateway of the test fleet.
type fleetNode struct {
	name      string
	cfg       string // config file
	adminPort int    // admin.listen: /readyz for HAProxy
	proc      *exec.Cmd
}

// fleetRig is what TestFleetHAProxy sets up: PostgreSQL, an sshd target,
// three gateways sharing a host key, a recordings folder and the store,
// and HAProxy in front of them with PROXY protocol v2.
type fleetRig struct {
	t       *testing.T
	dsn     string
	nodes   []*fleetNode
	front   int      // HAProxy's port
	sshArgs []string // ssh options for the front, trusting the fleet's one host key
	// writeConfig writes the config of a node called name.
	writeConfig func(name, state string, adminPort, port int) string
}

func newFleetRig(t *testing.T) *fleetRig {
	dsn := pgtest.Schema(t)
	haproxy := sshtest.RequireTool(t, "haproxy")
	sshtest.RequireTool(t, "ssh")
	dir := t.TempDir()
	upstream, upstreamKey := sshtest.NewKey(t, dir, "upstream_ed25519")
	target := sshtest.StartSshd(t, sshtest.SshdOptions{AuthorizedKeys: []ssh.PublicKey{upstream.PublicKey()}})
	_, aliceKey := sshtest.NewKey(t, dir, "alice_ed25519")
	host, hostKey := sshtest.NewKey(t, dir, "fleet_host_ed25519")
	knownHosts := filepath.Join(dir, "target_known_hosts")
	if err := os.WriteFile(knownHosts, []byte(target.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPEM, err := os.ReadFile(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	r := &fleetRig{t: t, dsn: dsn, front: sshtest.FreePort(t)}
	records := filepath.Join(dir, "recordings") // the shared folder
	r.writeConfig = func(name, state string, adminPort, port int) string {
		if err := os.MkdirAll(state, 0o700); err != nil {
			t.Fatal(err)
		}
		// One host identity: every node has the same host key.
		if err := os.WriteFile(filepath.Join(state, "ssh_host_ed25519_key"), hostPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`gateway:
  name: %s
  state_dir: %s
  drain_delay: 2s
  drain_timeout: 60s
  admin: {listen: "127.0.0.1:%d"}
  fleet: {lease: %s}
zones:
  - {name: lo, networks: ["127.0.0.0/8"]}
users:
  - {name: alice, authorized_keys: %s}
services:
  - name: ssh-in
    listen: "127.0.0.1:%d"
    proxy_protocol: {trusted: ["127.0.0.0/8"]}
    client_zones: [lo]
    server_zones: [lo]
    router: {directed: [%q]}
    upstream: {identity: %s, known_hosts: %s, user: root}
    policy: {pty: true, shell: true, exec: {allow: [".*"]}}
    record: true
audit: {sink: %q}
record: {dir: %s}
`, name, state, adminPort, fleetLease, aliceKey+".pub", port, target.Addr, upstreamKey, knownHosts, dsn, records)
		p := filepath.Join(state, "sluice.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// backends are the gateways HAProxy sends logins to, checked by
	// /readyz; sshChecks checks their SSH ports the other way HAProxy
	// can, with a PROXY v2 LOCAL header (check-send-proxy).
	var backends, sshChecks strings.Builder
	for i := 1; i <= 3; i++ {
		n := &fleetNode{name: "gw-" + strconv.Itoa(i), adminPort: sshtest.FreePort(t)}
		port := sshtest.FreePort(t)
		state := filepath.Join(dir, n.name)
		n.cfg = r.writeConfig(n.name, state, n.adminPort, port)
		fmt.Fprintf(&backends, "  server %s 127.0.0.1:%d send-proxy-v2 check port %d\n", n.name, port, n.adminPort)
		fmt.Fprintf(&sshChecks, "  server %s 127.0.0.1:%d send-proxy-v2 check check-send-proxy\n", n.name, port)
		r.nodes = append(r.nodes, n)
	}
	for _, n := range r.nodes {
		r.start(n)
	}
	hcfg := filepath.Join(dir, "haproxy.cfg")
	text := fmt.Sprintf(`global
  maxconn 200
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
  retries 3
  option redispatch
frontend ssh
  bind 127.0.0.1:%d
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 300ms fall 1 rise 1
%sbackend ssh_checks
  default-server inter 300ms
%s`, r.front, backends.String(), sshChecks.String())
	if err := os.WriteFile(hcfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	hp := exec.Command(haproxy, "-f", hcfg, "-db")
	hp.Stdout, hp.Stderr = t.Output(), t.Output()
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hp.Process.Kill(); _ = hp.Wait() })
	waitPort(t, r.front)
	time.Sleep(time.Second) // every server's first check
	// Clipped: the login loop and the test append to it concurrently.
	r.sshArgs = slices.Clip(append(sshtest.ClientArgs(t, "ssh", r.front, aliceKey, host.PublicKey()), "-o", "ConnectTimeout=20"))
	return r
}

// start runs node n and waits until it is ready.
func (r *fleetRig) start(n *fleetNode) {
	n.proc, _ = sluiceProcess(r.t, "serve", "-c", n.cfg)
	deadline := time.Now().Add(30 * time.Second)
	for readyz(n.adminPort) != http.StatusOK {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not ready within 30s", n.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyz returns the status of the node's /readyz, or 0.
func readyz(port int) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d not open within 20s", port)
		}
	}
}

// liveSession is an ssh session through the front that prints "started"
// and then runs on.
type liveSession struct {
	cmd    *exec.Cmd
	exited chan error
}

func (r *fleetRig) openSession(command string) *liveSession {
	r.t.Helper()
	cmd := exec.Command("ssh", append(r.sshArgs, "alice@127.0.0.1", "echo started; "+command)...)
	cmd.Stderr = r.t.Output()
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	s := &liveSession{cmd: cmd, exited: make(chan error, 1)}
	r.t.Cleanup(func() { _ = cmd.Process.Kill(); <-s.exited })
	br := bufio.NewReader(pipe)
	if l, err := br.ReadString('\n'); err != nil || l != "started\n" {
		r.t.Fatalf("session %q: got %q, %v, want started", command, l, err)
	}
	go func() {
		_, _ = io.Copy(io.Discard, br)
		err := cmd.Wait()
		s.exited <- err
		s.exited <- err // for the cleanup
	}()
	return s
}

// live returns the fleet's live sessions as node n's config sees them.
func (r *fleetRig) live(n *fleetNode) []audit.SessionSummary {
	r.t.Helper()
	code, out, errs := sluice("sessions", "-c", n.cfg, "--live", "--json")
	if code != 0 {
		r.t.Fatalf("sessions --live -c %s: exit %d: %s", n.name, code, errs)
	}
	return jsonLines[audit.SessionSummary](r.t, out)
}

// waitLive waits until the fleet lists want live sessions.
func (r *fleetRig) waitLive(want int) []audit.SessionSummary {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l := r.live(r.nodes[0])
		if len(l) == want || time.Now().After(deadline) {
			return l
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gatewayOf is the gateway part of a session id.
func gatewayOf(id string) string { return id[:strings.IndexByte(id, '/')] }

// TestFleetHAProxy is the fleet of issue #22 end to end: logins through
// HAProxy land on different nodes; every node lists the fleet's live
// sessions; a kill from one node ends a session on another; a second node
// with a taken name does not start; a SIGKILLed node's sessions are closed
// in the store within the lease; a recording replays from another node; a
// rolling restart under a steady stream of logins drops no live session
// and refuses no login.
func TestFleetHAProxy(t *testing.T) {
	r := newFleetRig(t)
	byNode := func(list []audit.SessionSummary) map[string]string {
		m := map[string]string{}
		for _, s := range list {
			m[gatewayOf(s.ID)] = s.ID
		}
		return m
	}

	// Three sessions land on three nodes; every node lists them all.
	var sessions []*liveSession
	for range 3 {
		sessions = append(sessions, r.openSession("sleep 3600"))
	}
	list := r.waitLive(3)
	placed := byNode(list)
	if len(placed) != 3 {
		t.Fatalf("live sessions: got %+v, want one on each of 3 nodes", list)
	}
	for _, n := range r.nodes {
		if got := r.live(n); len(got) != 3 {
			t.Fatalf("sessions --live on %s: got %+v, want 3", n.name, got)
		}
	}
	// A name a live node holds is refused, with one clear line, and
	// before the crash recovery of that name could end gw-1's session.
	dup := r.writeConfig("gw-1", t.TempDir(), sshtest.FreePort(t), sshtest.FreePort(t))
	wantStartupFailure(t, sluiceCmd(os.Args[0], "serve", "-c", dup), "sluice serve: cannot start: ", []string{"gateway name taken", `"gw-1" is held by a running node`})

	if got := r.live(r.nodes[2]); len(got) != 3 {
		t.Fatalf("sessions --live after the refused start: got %+v, want the 3 still live", got)
	}
	if code, out, _ := sluice("sessions", "-c", r.nodes[0].cfg, "--json"); code != 0 || strings.Contains(out, audit.ReasonCrashed) || strings.Contains(out, `"end"`) {
		t.Fatalf("stored sessions after the refused start: got %d %s, want none ended", code, out)
	}
	// Sessions are opened in order and listed by start time: the i-th
	// listed is the i-th opened.
	sessionOn := func(gw string) *liveSession {
		for i, s := range list {
			if gatewayOf(s.ID) == gw {
				return sessions[i]
			}
		}
		t.Fatalf("no session on %s", gw)
		return nil
	}

	// gw-1's admin socket (what the console's kill calls) ends the
	// session that gw-3 holds.
	victim := placed["gw-3"]
	socket := filepath.Join(filepath.Dir(r.nodes[0].cfg), "admin.sock")
	if err := admin.NewClient(socket).Kill(context.Background(), victim); err != nil {
		t.Fatalf("kill %s through gw-1's admin socket: %v", victim, err)
	}
	r.wantKilled(sessionOn("gw-3"), victim, 1)

	// gw-2 dies: its session is closed in the store by a survivor within
	// the lease (and a heartbeat).
	lost := placed["gw-2"]
	if err := r.nodes[1].proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = r.nodes[1].proc.Wait()
	died := time.Now()
	var end []audit.Event
	for deadline := died.Add(3 * fleetLease); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, out, _ := sluice("audit", "-c", r.nodes[0].cfg, "--json", "--session", lost, "--type", audit.TypeSessionEnd)
		if end = jsonLines[audit.Event](t, out); len(end) > 0 {
			break
		}
	}
	if len(end) != 1 || end[0].Reason != audit.ReasonLeaseExpired {
		t.Fatalf("session.end of %s after the SIGKILL: got %+v, want one with %q", lost, end, audit.ReasonLeaseExpired)
	}
	t.Logf("session of the SIGKILLed node closed in the store %v after the kill (lease %v)", time.Since(died).Round(100*time.Millisecond), fleetLease)
	if l := r.waitLive(1); len(l) != 1 || gatewayOf(l[0].ID) != "gw-1" {
		t.Fatalf("live sessions after the SIGKILL: got %+v, want gw-1's alone", l)
	}
	r.start(r.nodes[1]) // the name is free again
	time.Sleep(time.Second)

	// A recording made on one node replays from another.
	shell := exec.Command("ssh", append(r.sshArgs, "-tt", "alice@127.0.0.1")...)
	shell.Stdin = strings.NewReader("echo REPLAY-$((2+3))-MARK; exit 0\n")
	if out, err := shell.Output(); err != nil || !strings.Contains(string(out), "REPLAY-5-MARK") {
		t.Fatalf("shell: got %q, %v, want the marker", out, err)
	}
	stored := jsonLines[audit.SessionSummary](t, eventually(t, func(s string) bool {
		l := jsonLines[audit.SessionSummary](t, s)
		return len(l) > 0 && l[len(l)-1].Recording != "" && !l[len(l)-1].End.IsZero()
	}, "sessions", "-c", r.nodes[0].cfg, "--json"))
	rec := stored[len(stored)-1]
	for _, n := range r.nodes {
		if n.name == gatewayOf(rec.ID) {
			continue
		}
		if code, played, errs := sluice("replay", "-c", n.cfg, rec.ID, "--speed", "1000"); code != 0 || !strings.Contains(played, "REPLAY-5-MARK") {
			t.Fatalf("replay of %s from %s: got %d %q %q, want the marker", rec.ID, n.name, code, played, errs)
		}
	}

	// Rolling restart under a steady stream of logins.
	// sluice kill with gw-3's config ends gw-1's session (which would
	// hold gw-1's drain).
	if code, out, errs := sluice("kill", "-c", r.nodes[2].cfg, placed["gw-1"]); code != 0 || out != "killed "+placed["gw-1"]+"\n" {
		t.Fatalf("sluice kill %s with gw-3's config: got %d %q %q, want 0", placed["gw-1"], code, out, errs)
	}
	r.wantKilled(sessionOn("gw-1"), placed["gw-1"], 2)
	var logins, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := exec.CommandContext(ctx, "ssh", append(r.sshArgs, "alice@127.0.0.1", "echo ok")...).CombinedOutput()
			cancel()
			logins.Add(1)
			if err != nil || string(out) != "ok\n" {
				refused.Add(1)
				t.Errorf("login during the rolling restart: got %q, %v, want ok", out, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	for _, n := range r.nodes {
		// A session live on n when the drain starts must finish.
		var held *liveSession
		var open []*liveSession
		for range 6 {
			s := r.openSession("sleep 12; echo done")
			open = append(open, s)
			l := r.live(r.nodes[0])
			if len(l) > 0 && gatewayOf(l[len(l)-1].ID) == n.name {
				held = s
				break
			}
		}
		if held == nil {
			t.Fatalf("no session landed on %s in 6 logins", n.name)
		}
		if err := n.proc.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if code := readyz(n.adminPort); code != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz while draining: got %d, want 503", n.name, code)
		}
		if err := n.proc.Wait(); err != nil {
			t.Fatalf("%s after SIGTERM: %v, want exit 0", n.name, err)
		}
		for _, s := range open {
			if err := <-s.exited; err != nil {
				t.Fatalf("a session live during %s's restart: %v, want exit 0", n.name, err)
			}
		}
		r.start(n)
		time.Sleep(time.Second) // HAProxy's check sees it up
	}
	close(stop)
	wg.Wait()
	t.Logf("rolling restart of 3 nodes: %d logins, %d refused", logins.Load(), refused.Load())
	if logins.Load() < 10 {
		t.Errorf("got %d logins during the rolling restart, want a steady stream (10 or more)", logins.Load())
	}
	// HAProxy's checks of every node, every 300 ms throughout, left no
	// audit event.
	if code, out, errs := sluice("audit", "-c", r.nodes[0].cfg, "--json", "--type", "proxy_protocol"); code != 0 || out != "" {
		t.Errorf("proxy_protocol events: got %d %q %q, want none", code, out, errs)
	}
	r.storeFigures()
}

// wantKilled waits for the client of killed session id to exit with an
// error and for the store to hold kills kill events, the last of id.
func (r *fleetRig) wantKilled(s *liveSession, id string, kills int) {
	r.t.Helper()
	select {
	case err := <-s.exited:
		if err == nil {
			r.t.Fatalf("killed session %s: exited 0, want an error", id)
		}
	case <-time.After(15 * time.Second):
		r.t.Fatalf("session %s did not end within 15s of the kill", id)
	}
	got := jsonLines[audit.Event](r.t, eventually(r.t, func(s string) bool { return strings.Count(s, "\n") >= kills },
		"audit", "-c", r.nodes[1].cfg, "--json", "--type", "kill"))
	if len(got) != kills || got[kills-1].SessionID != id || got[kills-1].Verdict != audit.Accept {
		r.t.Fatalf("kill events: got %+v, want %d, the last of %s", got, kills, id)
	}
}

// storeFigures logs what the store took per session, for docs/fleet.md:
// the rows each table gained, changed and lost (PostgreSQL's statistics of
// this test's schema) over the sessions the test made.
func (r *fleetRig) storeFigures() {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, r.dsn)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close(ctx)
	var sessions int64
	if err := c.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'session.start'`).Scan(&sessions); err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the nodes' statistics reach the server
	if _, err := c.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		r.t.Fatal(err)
	}
	rows, err := c.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			table         string
			ins, upd, del int64
		)
		if err := rows.Scan(&table, &ins, &upd, &del); err != nil {
			r.t.Fatal(err)
		}
		n := float64(max(sessions, 1))
		r.t.Logf("store %-15s %6d inserts %6d updates %6d deletes: %.1f row writes per session (%d sessions)", table, ins, upd, del, float64(ins+upd+del)/n, sessions)
	}
	if err := rows.Err(); err != nil {
		r.t.Fatal(err)
	}
}
