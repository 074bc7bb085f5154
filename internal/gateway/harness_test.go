package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/sshtest"
	"github.com/sluice-ssh/sluice/internal/target"
)

// clientAddr is where test clients connect from: the "office" zone, apart
// from the "servers" zone 127.0.0.1/32 where the target sshd listens.
const clientAddr = "127.0.0.2"

// world is a gateway in front of a real OpenSSH sshd, with a user alice
// whose key is in the temporary folder.
type world struct {
	t        *testing.T
	dir      string
	sshd     *sshtest.Sshd
	more     []*sshtest.Sshd // worldOptions.moreSshd
	gw       *Gateway
	port     int
	aliceKey string
	hostKey  ssh.PublicKey
	osUser   string
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

// worldOptions vary the config a world is built from.
type worldOptions struct {
	// policy is the YAML of services[0].policy, indented by 6 spaces.
	policy string
	// serverZones overrides the service's server_zones.
	serverZones string
	// zones holds extra zone lines, indented by 2 spaces.
	zones string
	// clientZones overrides the service's client_zones ("[office]"); a
	// client without a bind address (plink) connects from the servers
	// zone 127.0.0.1.
	clientZones string
	// knownHosts overrides the upstream known_hosts content.
	knownHosts *string
	// upstream holds extra YAML lines for the service's upstream, indented
	// by 6 spaces.
	upstream string
	// service holds extra YAML lines for the service, indented by 4 spaces.
	service string
	// router holds extra YAML lines for the service's router, indented
	// by 6 spaces.
	router string
	// gateway holds extra YAML lines for the gateway, indented by 2 spaces.
	gateway string
	// name is gateway.name ("gw1" when empty).
	name string
	// sink is audit.sink ("sqlite" when empty).
	sink string
	// tail is appended to the file after "audit:\n  sink: SINK\n": lines
	// indented by 2 spaces add audit keys, unindented ones top-level keys.
	tail string
	// loginGraceTime overrides gateway.login_grace_time (default "20s").
	loginGraceTime string
	// logs, when set, also receives the gateway's log as JSON lines, at
	// debug level; it must be safe for concurrent use.
	logs io.Writer
	// keyOptions, when set, prefixes alice's authorized_keys line with
	// these options (e.g. `command="id"`).
	keyOptions string
	// sshdConfig holds extra sshd_config lines for the target.
	sshdConfig []string
	// noSFTP starts the target's sshd without an sftp subsystem.
	noSFTP bool
	// users holds extra YAML lines for users, indented by 2 spaces.
	users string
	// moreSshd starts this many more OpenSSH sshd, accepting the same
	// upstream key and listed in known_hosts. In tail, "{sshd0}" is
	// replaced by the first sshd's host:port, "{sshd1}"... by the others',
	// and "{user}" by the login the sshd run as.
	moreSshd int
	// certOnly leaves the static upstream identity out of the config and
	// the target's authorized_keys empty: only a certificate of the
	// upstream user_ca the test configures can log in.
	certOnly bool
	// builtinTarget puts Sluice's built-in target server (internal/target,
	// running commands with /bin/sh) in sshd's place: a target whose
	// sessions do not depend on the machine's login shell and its startup
	// files.
	builtinTarget bool
	// startTarget, when set, starts the target in sshd's place: a server
	// accepting key for the gateway's upstream login, described as an
	// Sshd (address and host key).
	startTarget func(t *testing.T, dir string, key ssh.PublicKey) *sshtest.Sshd
}

const defaultPolicy = `      pty: true
      shell: true
      exec: {allow: [".*"], deny: ["rm -rf.*"]}
      env: ["LANG", "LC_*"]
      subsystems:
        sftp: {}
      forward_local: ["127.0.0.1:*"]
`

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	sshtest.RequireTool(t, "ssh")
	dir := t.TempDir()
	upSigner, upKey := sshtest.NewKey(t, dir, "upstream_ed25519")
	_ = upKey
	var sshd *sshtest.Sshd
	switch {
	case o.startTarget != nil:
		sshd = o.startTarget(t, dir, upSigner.PublicKey())
	case o.builtinTarget:
		sshd = startBuiltinTarget(t, dir, upSigner.PublicKey())
	default:
		authorized := []ssh.PublicKey{upSigner.PublicKey()}
		if o.certOnly {
			authorized = nil
		}
		sshd = sshtest.StartSshd(t, sshtest.SshdOptions{
			AuthorizedKeys: authorized,
			Config:         append([]string{"AcceptEnv LANG LC_*", "AllowTcpForwarding yes"}, o.sshdConfig...),
			NoSFTP:         o.noSFTP,
		})
	}
	_, aliceKey := sshtest.NewKey(t, dir, "alice_ed25519")
	if o.keyOptions != "" {
		pub, err := os.ReadFile(aliceKey + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(aliceKey+".pub", append([]byte(o.keyOptions+" "), pub...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	kh := sshd.KnownHostsLine() + "\n"
	if o.knownHosts != nil {
		kh = *o.knownHosts
	}
	tail := strings.NewReplacer("{sshd0}", sshd.Addr, "{user}", u.Username).Replace(o.tail)
	var more []*sshtest.Sshd
	for i := range o.moreSshd {
		s := sshtest.StartSshd(t, sshtest.SshdOptions{AuthorizedKeys: []ssh.PublicKey{upSigner.PublicKey()}, Config: o.sshdConfig})
		more = append(more, s)
		kh += s.KnownHostsLine() + "\n"
		tail = strings.ReplaceAll(tail, "{sshd"+strconv.Itoa(i+1)+"}", s.Addr)
	}
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := o.policy
	if pol == "" {
		pol = defaultPolicy
	}
	sz := o.serverZones
	if sz == "" {
		sz = "[servers]"
	}
	cz := o.clientZones
	if cz == "" {
		cz = "[office]"
	}
	identity := "      identity: ./upstream_ed25519\n"
	if o.certOnly {
		identity = ""
	}
	grace := o.loginGraceTime
	if grace == "" {
		grace = "20s"
	}
	name, sink := cmp.Or(o.name, "gw1"), cmp.Or(o.sink, "sqlite")
	port := sshtest.FreePort(t)
	yaml := fmt.Sprintf(`gateway:
  name: %s
  state_dir: ./state
  login_grace_time: %s
%szones:
  - {name: office, networks: ["127.0.0.0/8"]}
  - {name: servers, networks: ["127.0.0.1/32"]}
  - {name: elsewhere, networks: ["10.0.0.0/8"]}
%susers:
  - name: alice
    authorized_keys: ./alice_ed25519.pub
%sservices:
  - name: ssh-in
    listen: 127.0.0.1:%d
    client_zones: %s
    server_zones: %s
    router:
      inband: true
%s    upstream:
      user: %q
%s      known_hosts: ./known_hosts
%s%s    policy:
%s
audit:
  sink: %s
%s`, name, grace, o.gateway, o.zones, o.users, port, cz, sz, o.router, u.Username, identity, o.upstream, o.service, pol, sink, tail)
	w := startGateway(t, dir, yaml, o.logs)
	w.sshd, w.more, w.port, w.aliceKey, w.osUser = sshd, more, port, aliceKey, u.Username
	w.hostKey = readHostKey(t, filepath.Join(dir, "state"))
	return w
}

// startGateway writes yaml as dir/sluice.yaml, loads it and runs a
// gateway on it, logging to the test at DEBUG (and as JSON lines to logs,
// when not nil); the gateway stops when the test ends.
func startGateway(t *testing.T, dir, yaml string, logs io.Writer) *world {
	t.Helper()
	cfgPath := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	var h slog.Handler = slog.NewTextHandler(testWriter{t}, debug)
	if logs != nil {
		h = slog.NewMultiHandler(h, slog.NewJSONHandler(logs, debug))
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := New(ctx, cfg, slog.New(h))
	if err != nil {
		cancel()
		t.Fatalf("gateway: %v", err)
	}
	w := &world{t: t, dir: dir, gw: gw, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- gw.Run(ctx) }()
	t.Cleanup(w.stop)
	return w
}

// stop stops the gateway (once; the test's cleanup calls it too).
func (w *world) stop() { w.stopOnce.Do(w.stopNow) }

func (w *world) stopNow() {
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			w.t.Errorf("gateway Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		w.t.Error("gateway did not stop within 30s")
	}
}

// target is the inband login name that routes alice to the sshd.
func (w *world) target() string {
	return "alice+127.0.0.1:" + strconv.Itoa(w.sshd.Port)
}

// args returns OpenSSH client options for tool that reach the gateway as
// alice from the office zone.
func (w *world) args(tool string) []string {
	a := sshtest.ClientArgs(w.t, tool, w.port, w.aliceKey, w.hostKey)
	// Known hosts list the gateway by [127.0.0.1]:port; connect from the
	// office address.
	return append(a, "-o", "BindAddress="+clientAddr)
}

// result is what a client command did.
type result struct {
	stdout, stderr string
	code           int
}

// ssh runs the OpenSSH client through the gateway with the given extra
// options and remote command.
func (w *world) ssh(opts []string, remote ...string) result {
	w.t.Helper()
	args := append(w.args("ssh"), opts...)
	args = append(args, w.target()+"@127.0.0.1")
	args = append(args, remote...)
	return w.run(nil, "ssh", args...)
}

func (w *world) run(stdin io.Reader, name string, args ...string) result {
	w.t.Helper()
	return w.runEnv(stdin, nil, name, args...)
}

// runEnv is run with the environment env (nil: the test's own).
func (w *world) runEnv(stdin io.Reader, env []string, name string, args ...string) result {
	w.t.Helper()
	return w.runAttr(stdin, env, nil, name, args...)
}

// runAttr is runEnv with the process attributes attr (nil: none).
func (w *world) runAttr(stdin io.Reader, env []string, attr *syscall.SysProcAttr, name string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin, cmd.Env, cmd.SysProcAttr = &out, &errb, stdin, env, attr
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		w.t.Fatalf("%s: %v", name, err)
	}
	return r
}

// refusals lists the authentication refusals the gateway audited so far,
// one per line, for a test to show when a client failed in a way its own
// output does not explain (a handshake the gateway ended, say).
func (w *world) refusals() string {
	w.t.Helper()
	evs, err := w.gw.Store().Query(context.Background(), audit.Filter{Type: "auth", Verdict: audit.Reject})
	if err != nil {
		return fmt.Sprintf("audit query: %v", err)
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n%s %s: %s", e.SessionID, e.Rule, e.Reason)
	}
	return b.String()
}

// events returns the audit events of a type, waiting briefly for the queue
// to write them.
func (w *world) events(typ string, match func(audit.Event) bool) []audit.Event {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := -1
	for {
		all, err := w.gw.Store().Query(context.Background(), audit.Filter{Type: typ})
		if err != nil {
			w.t.Fatalf("audit query: %v", err)
		}
		var got []audit.Event
		for _, e := range all {
			if match == nil || match(e) {
				got = append(got, e)
			}
		}
		// Events of one happening reach the store in more than one batch:
		// return once some match and no more arrived for 150 ms.
		if len(got) > 0 && len(got) == last || time.Now().After(deadline) {
			return got
		}
		if len(got) > 0 {
			last = len(got)
			time.Sleep(150 * time.Millisecond)
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readHostKey(t *testing.T, stateDir string) ssh.PublicKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stateDir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatalf("gateway host key: %v", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// heapInUse returns the process's heap in use after a collection. The
// gateway runs in the test process, so this is its memory.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// dial opens an x/crypto/ssh client connection to the gateway from the
// office zone.
func (w *world) dial(t *testing.T, cfg *ssh.ClientConfig) *ssh.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}, Timeout: 10 * time.Second}
	addr := w.gw.Addr("ssh-in").String()
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.NewClient(c, chans, reqs)
}

// sleepBriefly waits a little between polls.
func sleepBriefly() { time.Sleep(50 * time.Millisecond) }

// startBuiltinTarget serves internal/target on a loopback port, accepting
// only key, and describes it as an Sshd (address and host key).
func startBuiltinTarget(t *testing.T, dir string, key ssh.PublicKey) *sshtest.Sshd {
	t.Helper()
	hostSigner, _ := sshtest.NewKey(t, dir, "target_host_ed25519")
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = target.New(slog.New(slog.DiscardHandler), target.Options{Shell: "/bin/sh"}).Serve(ctx, ln, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		<-done
	})
	port := ln.Addr().(*net.TCPAddr).Port
	return &sshtest.Sshd{Addr: ln.Addr().String(), Port: port, Dir: dir, HostKey: hostSigner.PublicKey()}
}

// endsWithin reports whether c's connection ends (its Wait returns)
// within d. A connection still open then is left open.
func endsWithin(c interface{ Wait() error }, d time.Duration) bool {
	ended := make(chan error, 1)
	go func() { ended <- c.Wait() }()
	select {
	case <-ended:
		return true
	case <-time.After(d):
		return false
	}
}
