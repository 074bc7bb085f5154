package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"flag"
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

	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/target"
)

// demoUser is the SSH user name of `sluice demo`.
const demoUser = "demo"

// runDemo is `sluice demo [--listen ADDR] [--state DIR]`: everything needed
// to try Sluice from one command, until SIGINT or SIGTERM.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2222", "listen `ADDR` of the gateway")
	state := fs.String("state", "./sluice-demo", "state `DIR` for keys and known_hosts")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: sluice demo [--listen ADDR] [--state DIR]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demo(ctx, *listen, *state, stdout, stderr)
}

// demo runs the demo until ctx is cancelled and returns the exit code.
func demo(ctx context.Context, listen, state string, stdout, stderr io.Writer) int {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	d, err := setupDemo(listen, state)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprint(stdout, d.instructions())
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() != demoUser {
				return nil, fmt.Errorf("sluice: demo: user %q is not %q", c.User(), demoUser)
			}
			return allowKeys([]ssh.PublicKey{d.userKey})(c, k)
		},
	}
	cfg.AddHostKey(d.hostKey)
	if err := target.New(logger, target.Options{AcceptEnv: acceptLocaleEnv}).Serve(ctx, d.listener, cfg); err != nil {
		logger.Error("demo stopped", "err", err)
		return 1
	}
	return 0
}

// demoSetup is what the demo prepared before serving: its state folder,
// the demo user's key, the host key clients see, and the bound listener.
type demoSetup struct {
	stateDir   string // absolute
	keyPath    string // DIR/demo_ed25519, its public half next to it
	userKey    ssh.PublicKey
	hostKey    ssh.Signer
	knownHosts string // DIR/known_hosts, naming hostKey at the listen address
	listener   net.Listener
}

// setupDemo creates (once) the state folder, the host key and the demo
// user's key, binds listen and writes known_hosts for the bound address.
func setupDemo(listen, state string) (*demoSetup, error) {
	dir, err := filepath.Abs(state)
	if err != nil {
		return nil, fmt.Errorf("sluice: demo: %w", err)
	}
	signers, err := hostkey.LoadOrGenerate(dir, nil)
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "demo_ed25519")
	userKey, err := loadOrGenerateUserKey(keyPath)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("sluice: demo: %w", err)
	}
	d := &demoSetup{
		stateDir:   dir,
		keyPath:    keyPath,
		userKey:    userKey,
		hostKey:    signers[0],
		knownHosts: filepath.Join(dir, "known_hosts"),
		listener:   l,
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(l.Addr().String())}, d.hostKey.PublicKey())
	if err := os.WriteFile(d.knownHosts, []byte(line+"\n"), 0o644); err != nil {
		l.Close()
		return nil, fmt.Errorf("sluice: demo: %w", err)
	}
	return d, nil
}

// loadOrGenerateUserKey returns the public key of the OpenSSH private key
// at path, generating an ed25519 key there (mode 0600, with path.pub) when
// there is none.
func loadOrGenerateUserKey(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("sluice: demo key %s: %w", path, err)
		}
		return s.PublicKey(), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sluice: demo key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sluice: demo key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sluice demo user")
	if err != nil {
		return nil, fmt.Errorf("sluice: demo key: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sluice: demo key: %w", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		return nil, fmt.Errorf("sluice: demo key: %w", err)
	}
	// The private key last: its presence means the pair is complete.
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("sluice: demo key: %w", err)
	}
	return s.PublicKey(), nil
}

// sshCommand is the OpenSSH command line that logs in to the demo; tool is
// "ssh" or "sftp" (which spells the port flag -P).
func (d *demoSetup) sshCommand(tool string, extra ...string) string {
	host, port, _ := net.SplitHostPort(d.listener.Addr().String())
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
	fmt.Fprintf(&b, "sluice demo listening on %s (state in %s)\n\n", d.listener.Addr(), d.stateDir)
	fmt.Fprintf(&b, "Run a command:\n  %s echo hello\n", d.sshCommand("ssh"))
	fmt.Fprintf(&b, "Open a shell:\n  %s\n", d.sshCommand("ssh", "-t"))
	fmt.Fprintf(&b, "Transfer files:\n  %s\n\n", d.sshCommand("sftp"))
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
