package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// world is everything a run measures, on loopback in one temporary folder.
type world struct {
	dir     string
	osUser  string
	userKey string // the client's key, for all three paths
	kh      string // the client's known_hosts: target, jump host, Sluice

	// gwHost is the address of the jump host, Sluice and the TCP relay,
	// tgtHost the target's; both 127.0.0.1 on loopback. gwNS and tgtNS
	// are their network namespaces in the WAN mode (wan.go), "" otherwise.
	gwHost, tgtHost string
	gwNS, tgtNS     string

	targetPort, jumpPort, sluicePort, idlePort int
	recPort                                    int // Sluice's service with record: true
	relayPort                                  int // the plain TCP forwarder to the target
	// idleTargets are the ports of the built-in targets of the idle
	// sessions, which are spread over them.
	idleTargets []int

	sluice   *exec.Cmd // the gateway (`sluice serve`, or this program under SLUICE_CPUPROFILE)
	procs    []*exec.Cmd
	sluiceBn string
	// inProcess is set when the gateway is this program in gateway mode,
	// which reports its goroutines on SIGUSR1.
	inProcess bool
}

// path is one way from the client to the target.
type path struct {
	name string
	// args returns the options of tool ("ssh" or "sftp") with cipher
	// pinned, ending with the destination.
	args func(tool, cipher string) []string
}

// newWorld makes the temporary folder and keys. osUser is the account the
// client logs in as on the target ("" for the current user); when it is
// another account, the folder is opened to it and its "home" subfolder,
// where SFTP puts go, belongs to it.
func newWorld(osUser string) (*world, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	w := &world{dir: dir, osUser: u.Username, gwHost: "127.0.0.1", tgtHost: "127.0.0.1"}
	w.wanChild()
	if err := w.openTo(osUser); err != nil {
		return w, err
	}
	if os.Geteuid() == 0 {
		// Privilege separation chroots into /run/sshd when sshd runs as root.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return w, err
		}
	}
	for _, k := range []string{"client_ed25519", "upstream_ed25519", "target_host", "jump_host"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench "+k, "-f", w.file(k)).CombinedOutput(); err != nil {
			return w, fmt.Errorf("ssh-keygen %s: %v\n%s", k, err, out)
		}
	}
	w.userKey = w.file("client_ed25519")
	if err := concat(w.file("target_authorized_keys"), w.file("client_ed25519.pub"), w.file("upstream_ed25519.pub")); err != nil {
		return w, err
	}
	if err := concat(w.file("jump_authorized_keys"), w.file("client_ed25519.pub")); err != nil {
		return w, err
	}
	if w.targetPort, err = w.startSshd("target", w.tgtHost, w.tgtNS); err != nil {
		return w, err
	}
	if w.jumpPort, err = w.startSshd("jump", w.gwHost, w.gwNS); err != nil {
		return w, err
	}
	return w, nil
}

func (w *world) file(name string) string { return filepath.Join(w.dir, name) }

// openTo makes name the target account, unless it is "" or the current
// user: the folder becomes searchable by it, and "home" is made its own.
func (w *world) openTo(name string) error {
	home := w.file("home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	if name == "" || name == w.osUser {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("--user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(home, uid, gid); err != nil {
		return fmt.Errorf("--user %s: %w", name, err)
	}
	w.osUser = name
	return os.Chmod(w.dir, 0o711)
}

// concat writes the files srcs, one after the other, to the
// authorized_keys file dst, readable by all: sshd reads it as the target
// account.
func concat(dst string, srcs ...string) error {
	var b []byte
	for _, s := range srcs {
		data, err := os.ReadFile(s)
		if err != nil {
			return err
		}
		b = append(b, data...)
	}
	return os.WriteFile(dst, b, 0o644)
}

// startSshd runs /usr/sbin/sshd -D as the current user with name's host key
// and authorized_keys, on host in network namespace ns, and returns its port.
func (w *world) startSshd(name, host, ns string) (int, error) {
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		cfg := w.file(name + "_sshd_config")
		lines := []string{
			"ListenAddress " + host + ":" + strconv.Itoa(port),
			"HostKey " + w.file(name+"_host"),
			"AuthorizedKeysFile " + w.file(name+"_authorized_keys"),
			"StrictModes no",
			"UsePAM no",
			"PidFile none",
			"LogLevel ERROR",
			"PermitRootLogin prohibit-password",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"AllowTcpForwarding yes",
			"MaxStartups 200",
			"Subsystem sftp internal-sftp",
			// The same server under another name, which Sluice relays as
			// a plain subsystem: the SFTP proxy's cost is the difference.
			"Subsystem " + unproxiedSubsystem + " internal-sftp",
		}
		if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return 0, err
		}
		cmd := inNS(ns, exec.Command("/usr/sbin/sshd", "-D", "-E", w.file(name+"_sshd.log"), "-f", cfg))
		if err := w.start(cmd); err != nil {
			return 0, err
		}
		err = waitBanner(host, port, cmd)
		if err == nil {
			if err := w.knownHost(host, port, w.file(name+"_host.pub")); err != nil {
				return 0, err
			}
			return port, nil
		}
		if attempt >= 2 {
			log, _ := os.ReadFile(w.file(name + "_sshd.log"))
			return 0, fmt.Errorf("sshd %s: %v\n%s", name, err, log)
		}
	}
}

// knownHost adds [host]:port with the key in pubFile to the client's
// known_hosts.
func (w *world) knownHost(host string, port int, pubFile string) error {
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return fmt.Errorf("bad public key in %s", pubFile)
	}
	w.kh = w.file("known_hosts")
	kf, err := os.OpenFile(w.kh, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(kf, "[%s]:%d %s %s\n", host, port, f[0], f[1])
	if cerr := kf.Close(); err == nil {
		err = cerr
	}
	return err
}

// startSluice builds Sluice (or copies the binary bin, when set), starts the built-in targets for idle idle
// sessions, writes the config (upstream.reuse and reuse_idle from reuse
// and reuseIdle) and serves it. Under SLUICE_CPUPROFILE the
// gateway is this program in gateway mode instead of the built binary.
func (w *world) startSluice(bin string, idle int, reuse string, reuseIdle int) error {
	w.sluiceBn = w.file("sluice")
	build := exec.Command("go", "build", "-o", w.sluiceBn, "./cmd/sluice")
	if bin != "" {
		build = exec.Command("cp", bin, w.sluiceBn)
	}
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("%s (run from the repository root): %v\n%s", strings.Join(build.Args, " "), err, out)
	}
	var err error
	if w.sluicePort, err = freePort(); err != nil {
		return err
	}
	if w.recPort, err = freePort(); err != nil {
		return err
	}
	upstreamKH := w.file("upstream_known_hosts")
	pub, _ := os.ReadFile(w.file("target_host.pub"))
	f := strings.Fields(string(pub))
	khLines := fmt.Sprintf("[%s]:%d %s %s\n", w.tgtHost, w.targetPort, f[0], f[1])
	idleService := ""
	if idle > 0 {
		targets, err := idleTargets(idle)
		if err != nil {
			return err
		}
		for i := range targets {
			port, hostLine, err := w.startTarget(fmt.Sprintf("target_state_%d", i))
			if err != nil {
				return err
			}
			w.idleTargets = append(w.idleTargets, port)
			khLines += hostLine
		}
		if w.idlePort, err = freePort(); err != nil {
			return err
		}
		// In-band routing: each session names its target in its user name.
		idleService = fmt.Sprintf(`  - name: idle
    listen: 127.0.0.1:%d
    client_zones: [lo]
    server_zones: [lo]
    router: {inband: true}
    upstream: {user: %q, identity: %s, known_hosts: %s}
    policy: {exec: {allow: [".*"]}}
`, w.idlePort, w.osUser, w.file("upstream_ed25519"), upstreamKH)
	}
	if err := os.WriteFile(upstreamKH, []byte(khLines), 0o600); err != nil {
		return err
	}
	// One zone for all of loopback, where clients and targets share
	// 127.0.0.1, and of the WAN mode's network (wan.go). Startup limits
	// are raised so that 16 parallel clients are not dropped.
	yaml := fmt.Sprintf(`gateway:
  name: bench
  state_dir: %s
  max_startups: "1000"
  per_source_max_startups: 0
  log: {level: warn}
zones:
  - {name: lo, networks: ["127.0.0.0/8", "%s"]}
users:
  - name: bench
    authorized_keys: %s
services:
  - name: ssh
    listen: %s:%d
    client_zones: [lo]
    server_zones: [lo]
    router: {directed: ["%s:%d"]}
    upstream: {user: %q, identity: %s, known_hosts: %s, reuse: %s, reuse_idle: %d}
    policy:
      pty: true
      shell: true
      exec: {allow: [".*"]}
      subsystems: {sftp: {deny_paths: ["/sluice-bench-none/*/.ssh"]}, %s: {}}
  - name: ssh-rec
    listen: %s:%d
    client_zones: [lo]
    server_zones: [lo]
    router: {directed: ["%s:%d"]}
    upstream: {user: %q, identity: %s, known_hosts: %s}
    policy: {exec: {allow: [".*"]}}
    record: true
%saudit:
  sink: jsonl:%s
`, w.file("state"), wanNet, w.file("client_ed25519.pub"), w.gwHost, w.sluicePort, w.tgtHost, w.targetPort, w.osUser,
		w.file("upstream_ed25519"), upstreamKH, reuse, reuseIdle, unproxiedSubsystem,
		w.gwHost, w.recPort, w.tgtHost, w.targetPort, w.osUser, w.file("upstream_ed25519"), upstreamKH,
		idleService, w.file("state/audit.jsonl"))
	cfg := w.file("sluice.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return err
	}
	var cmd *exec.Cmd
	if os.Getenv("SLUICE_CPUPROFILE") != "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd = exec.Command(self, gatewayCmd, "-c", cfg, "-stats", w.file("gateway.stats"))
		w.inProcess = true
	} else {
		cmd = exec.Command(w.sluiceBn, "serve", "-c", cfg)
	}
	logf, err := os.Create(w.file("sluice.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd = inNS(w.gwNS, cmd)
	if err := w.start(cmd); err != nil {
		return err
	}
	w.sluice = cmd
	if err := waitBanner(w.gwHost, w.sluicePort, cmd); err != nil {
		log, _ := os.ReadFile(w.file("sluice.log"))
		return fmt.Errorf("sluice: %v\n%s", err, log)
	}
	if err := w.knownHost(w.gwHost, w.sluicePort, w.file("state/ssh_host_ed25519_key.pub")); err != nil {
		return err
	}
	return w.knownHost(w.gwHost, w.recPort, w.file("state/ssh_host_ed25519_key.pub"))
}

var targetAddrRE = regexp.MustCompile(`addr=127\.0\.0\.1:(\d+)`)

// startTarget runs `sluice target` on a free port and returns the port and
// the known_hosts line for it.
func (w *world) startTarget(stateDir string) (int, string, error) {
	state := w.file(stateDir)
	cmd := exec.Command(w.sluiceBn, "target", "--listen", "127.0.0.1:0", "--state", state, "--authorized-keys", w.file("upstream_ed25519.pub"))
	out, err := cmd.StderrPipe()
	if err != nil {
		return 0, "", err
	}
	if err := w.start(cmd); err != nil {
		return 0, "", err
	}
	sc := bufio.NewScanner(out)
	port := 0
	for sc.Scan() {
		if m := targetAddrRE.FindStringSubmatch(sc.Text()); m != nil {
			port, _ = strconv.Atoi(m[1])
			break
		}
	}
	if port == 0 {
		return 0, "", errors.New("sluice target did not report its address")
	}
	go func() { // keep draining its log
		for sc.Scan() {
		}
	}()
	pub, err := os.ReadFile(filepath.Join(state, "ssh_host_ed25519_key.pub"))
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(pub))
	return port, fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, f[0], f[1]), nil
}

// idleTargets returns how many built-in targets n idle sessions need. A
// process may hold as many files as the open-file limit (which main raised
// to the hard limit): the gateway holds two sockets per session, a target
// a socket, cat's three pipes and a pidfd (with room for one more).
func idleTargets(n int) (int, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	const spare = 256 // listeners, logs, the audit file, the Go runtime
	if need := uint64(2*n + spare); l.Cur < need {
		return 0, fmt.Errorf("%d idle sessions need %d open files in the gateway; the limit is %d (ulimit -Hn)", n, need, l.Cur)
	}
	perTarget := int(l.Cur-spare) / 6
	return (n + perTarget - 1) / perTarget, nil
}

func (w *world) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	w.procs = append(w.procs, cmd)
	return nil
}

// close stops what was started, the gateway first so that a CPU profile is
// written, and removes the folder unless keep.
func (w *world) close(keep bool) {
	for i := len(w.procs) - 1; i >= 0; i-- {
		p := w.procs[i]
		if p == w.sluice {
			// Stop the gateway first and wait, so its profile is complete.
			_ = p.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(40 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}
	for _, p := range w.procs {
		if p != w.sluice {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}
	if keep {
		fmt.Fprintf(os.Stderr, "bench: kept %s\n", w.dir)
		return
	}
	os.RemoveAll(w.dir)
}

// unproxiedSubsystem names the target's sftp-server under a subsystem name
// that has no stacked proxy in Sluice, so that Sluice relays its bytes
// unchanged, as it relays any permitted subsystem (sshproxy.Params.Stacked).
// Only the SFTP part uses it: the ratio of Sluice with and without the SFTP
// proxy is that proxy's cost. It is bench config, not a product switch: the
// "sftp" subsystem is always inspected.
const unproxiedSubsystem = "sftp-unproxied"

// sluiceUnproxied is the name of the path through Sluice to
// unproxiedSubsystem.
const sluiceUnproxied = "Sluice, SFTP unproxied"

// unproxied returns the path through Sluice to unproxiedSubsystem; only
// tool "sftp" makes sense on it.
func (w *world) unproxied() path {
	return path{sluiceUnproxied, func(tool, cipher string) []string {
		return append(w.base(tool, cipher, w.sluicePort), "-s", unproxiedSubsystem, "bench@"+w.gwHost)
	}}
}

// paths returns the three ways to the target: direct, ProxyJump and Sluice.
func (w *world) paths() []path {
	dest := w.osUser + "@" + w.tgtHost
	return []path{
		{"direct", func(tool, cipher string) []string {
			return append(w.base(tool, cipher, w.targetPort), dest)
		}},
		{"ProxyJump", func(tool, cipher string) []string {
			// `ssh -J` starts the first hop as `ssh -W` without the
			// command line's -o options, so the ciphers would not be pinned
			// there; this ProxyCommand is what -J expands to, with every
			// option repeated.
			hop := append([]string{"ssh"}, w.base("ssh", cipher, w.jumpPort)...)
			hop = append(hop, "-W", "%h:%p", w.osUser+"@"+w.gwHost)
			a := append(w.base(tool, cipher, w.targetPort), "-o", "ProxyCommand="+strings.Join(hop, " "))
			return append(a, dest)
		}},
		{"Sluice", func(tool, cipher string) []string {
			return append(w.base(tool, cipher, w.sluicePort), "bench@"+w.gwHost)
		}},
	}
}

// base returns the options of tool ("ssh" or "sftp") to port on loopback
// with cipher pinned, without the destination.
func (w *world) base(tool, cipher string, port int) []string {
	pf := "-p"
	if tool == "sftp" {
		pf = "-P"
	}
	return []string{
		"-F", "/dev/null", pf, strconv.Itoa(port), "-i", w.userKey,
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + w.kh, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
		"-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "Compression=no",
		"-o", "KexAlgorithms=curve25519-sha256", "-o", "Ciphers=" + cipher,
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitBanner polls host:port until it sends an SSH identification string
// (RFC 4253 §4.2) or 15 seconds pass.
func waitBanner(host string, port int, cmd *exec.Cmd) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cmd.ProcessState != nil {
			return errors.New("exited before listening")
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-") {
				return nil
			}
		}
		time.Sleep(30 * time.Millisecond)
	}
	return fmt.Errorf("no SSH banner on %s", addr)
}
