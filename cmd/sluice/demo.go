package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/gateway"
	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/target"
)

// demoUser is the SSH user name of `sluice demo`.
const demoUser = "demo"

// runDemo is `sluice demo [--listen ADDR] [--console ADDR] [--state DIR]`: everything needed
// to try Sluice from one command, until SIGINT or SIGTERM.
func runDemo(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("demo", "[--listen ADDR] [--console ADDR] [--state DIR]", "Try Sluice: a gateway, its console and a built-in target on loopback, with\nkeys and a config made in the state folder, until Ctrl-C. It prints how to\nlog in and the console's URL with a one-time login.", stdout, stderr)
	listen := cl.fs.String("listen", "127.0.0.1:2222", "listen `ADDR` of the gateway")
	state := cl.fs.String("state", "./sluice-demo", "state `DIR` for keys and known_hosts")
	consoleAddr := cl.fs.String("console", "127.0.0.1:8443", "listen `ADDR` of the console (HTTPS)")
	if _, code, ok := cl.parse(args, 0); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demo(ctx, *listen, *consoleAddr, *state, stdout, stderr)
}

// demo runs the demo until ctx is cancelled and returns the exit code: the
// built-in target on a loopback port, and in front of it a gateway whose
// policy shows a denial (rm -rf is refused), both with state in state.
func demo(ctx context.Context, listen, consoleAddr, state string, stdout, stderr io.Writer) int {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	d, err := setupDemo(state)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// The target accepts only the gateway's upstream key.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "sluice: demo:", err)
		return 1
	}
	tcfg := &ssh.ServerConfig{PublicKeyCallback: allowKeys([]ssh.PublicKey{d.upstreamKey})}
	tcfg.AddHostKey(d.targetKey)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	targetDone := make(chan error, 1)
	go func() {
		targetDone <- target.New(logger, target.Options{AcceptEnv: acceptLocaleEnv}).Serve(ctx, tl, tcfg)
	}()
	defer func() { <-targetDone }()

	cfgPath, err := d.writeConfig(listen, consoleAddr, tl.Addr().String())
	if err != nil {
		cancel()
		fmt.Fprintln(stderr, err)
		return 1
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		cancel()
		fmt.Fprintln(stderr, err)
		return 1
	}
	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		cancel()
		if errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "sluice demo: %s or %s is in use by another process; pick other addresses with --listen and --console, e.g. --listen 127.0.0.1:2223 --console 127.0.0.1:8444\n", listen, consoleAddr)
			return 1
		}
		fmt.Fprintln(stderr, "sluice demo:", err)
		return 1
	}
	d.addr = g.Addr(demoService)
	d.consoleURL = "https://" + g.ConsoleAddr().String()
	d.loginURL = d.consoleURL + g.Console().OneTimeLogin(demoOperator)
	if err := d.writeKnownHosts(); err != nil {
		cancel()
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, d.instructions())
	if err := g.Run(ctx); err != nil {
		logger.Error("demo stopped", "err", err)
		return 1
	}
	return 0
}

// demoService is the demo gateway's one service.
const demoService = "demo"

// demoSetup is what the demo prepared before serving: its state folder,
// the keys, and once the gateway listens, its address.
type demoSetup struct {
	stateDir    string // absolute
	keyPath     string // DIR/demo_ed25519, its public half next to it
	userKey     ssh.PublicKey
	upstreamKey ssh.PublicKey // DIR/upstream_ed25519: the gateway's login to the target
	hostKey     ssh.Signer    // the gateway's host key, DIR/ssh_host_ed25519_key
	targetKey   ssh.Signer    // the target's host key, DIR/target/ssh_host_ed25519_key
	knownHosts  string        // DIR/known_hosts, naming hostKey at addr
	addr        net.Addr      // where the gateway listens
	consoleURL  string        // the console, https://ADDR
	loginURL    string        // a one-time login to the console
}

// demoOperator is the console operator the demo's one-time login logs in.
const demoOperator = "operator"

// setupDemo creates (once) the state folder and every key the demo uses.
func setupDemo(state string) (*demoSetup, error) {
	dir, err := filepath.Abs(state)
	if err != nil {
		return nil, fmt.Errorf("sluice: demo: %w", err)
	}
	signers, err := hostkey.LoadOrGenerate(dir, nil)
	if err != nil {
		return nil, err
	}
	targetSigners, err := hostkey.LoadOrGenerate(filepath.Join(dir, "target"), nil)
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "demo_ed25519")
	user, err := hostkey.LoadOrGenerateFile(keyPath, "ed25519")
	if err != nil {
		return nil, err
	}
	upstream, err := hostkey.LoadOrGenerateFile(filepath.Join(dir, "upstream_ed25519"), "ed25519")
	if err != nil {
		return nil, err
	}
	return &demoSetup{
		stateDir:    dir,
		keyPath:     keyPath,
		userKey:     user.PublicKey(),
		upstreamKey: upstream.PublicKey(),
		hostKey:     signers[0],
		targetKey:   targetSigners[0],
		knownHosts:  filepath.Join(dir, "known_hosts"),
	}, nil
}

// demoConfig is the demo gateway's config: one service on listen in front
// of the built-in target, with a policy that allows a shell, commands,
// sftp and locale variables, and refuses rm -rf.
const demoConfig = `# Written by sluice demo; rewritten on every start.
gateway:
  name: demo
  state_dir: .
zones:
  - {name: loopback, networks: ["127.0.0.0/8", "::1/128"]}
users:
  - name: demo
    authorized_keys: ./demo_ed25519.pub
services:
  - name: demo
    listen: %q
    client_zones: [loopback]
    server_zones: [loopback]
    router:
      directed: [%q]
    upstream:
      identity: ./upstream_ed25519
      known_hosts: ./target_known_hosts
    policy:
      pty: true
      shell: true
      exec:
        allow: [".*"]
        deny: ["rm +-[a-zA-Z]*[rR][a-zA-Z]*[fF].*", "rm +-[a-zA-Z]*[fF][a-zA-Z]*[rR].*"]
      env: ["LANG", "LC_*"]
      subsystems:
        sftp: {}
    record: true
audit:
  sink: sqlite
console:
  listen: %q
`

// writeConfig writes the demo's config and the target's known_hosts into
// the state folder and returns the config's path.
func (d *demoSetup) writeConfig(listen, consoleAddr, targetAddr string) (string, error) {
	line := knownhosts.Line([]string{knownhosts.Normalize(targetAddr)}, d.targetKey.PublicKey())
	if err := os.WriteFile(filepath.Join(d.stateDir, "target_known_hosts"), []byte(line+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("sluice: demo: %w", err)
	}
	path := filepath.Join(d.stateDir, "sluice.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, demoConfig, listen, targetAddr, consoleAddr), 0o600); err != nil {
		return "", fmt.Errorf("sluice: demo: %w", err)
	}
	return path, nil
}

// writeKnownHosts writes the known_hosts file the printed commands use.
func (d *demoSetup) writeKnownHosts() error {
	line := knownhosts.Line([]string{knownhosts.Normalize(d.addr.String())}, d.hostKey.PublicKey())
	if err := os.WriteFile(d.knownHosts, []byte(line+"\n"), 0o644); err != nil {
		return fmt.Errorf("sluice: demo: %w", err)
	}
	return nil
}

// sshCommand is the OpenSSH command line that logs in to the demo; tool is
// "ssh" or "sftp" (which spells the port flag -P).
func (d *demoSetup) sshCommand(tool string, extra ...string) string {
	host, port, _ := net.SplitHostPort(d.addr.String())
	portFlag := "-p"
	if tool == "sftp" {
		portFlag = "-P"
	}
	args := []string{tool}
	args = append(args, extra...)
	args = append(args,
		"-i", d.keyPath,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+sshOptionValue(d.knownHosts),
		portFlag, port,
		demoUser+"@"+host)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// instructions is what the demo prints on start.
func (d *demoSetup) instructions() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sluice demo: gateway on %s in front of a built-in target (state in %s)\n\n", d.addr, d.stateDir)
	fmt.Fprintf(&b, "Run a command:\n  %s echo hello\n", d.sshCommand("ssh"))
	fmt.Fprintf(&b, "Open a shell (recorded):\n  %s\n", d.sshCommand("ssh", "-t"))
	fmt.Fprintf(&b, "Transfer files:\n  %s\n", d.sshCommand("sftp"))
	fmt.Fprintf(&b, "See the policy refuse a command:\n  %s rm -rf /tmp/nothing\n\n", d.sshCommand("ssh"))
	fmt.Fprintf(&b, "What happened is in the audit store: sluice audit -c %s\n", shellQuote(filepath.Join(d.stateDir, "sluice.yaml")))
	fmt.Fprintf(&b, "Watch it in the console at %s (a self-signed certificate, in %s);\n", d.consoleURL, filepath.Join(d.stateDir, "console", "cert.pem"))
	fmt.Fprintf(&b, "this link logs you in once, within an hour:\n  %s\n", d.loginURL)
	fmt.Fprintln(&b, "Press Ctrl-C to stop.")
	return b.String()
}

// sshOptionValue quotes a path for ssh -o: OpenSSH splits option values
// at whitespace unless double-quoted (ssh_config(5), UserKnownHostsFile).
func sshOptionValue(s string) string {
	if !strings.ContainsAny(s, " \t\"'") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
