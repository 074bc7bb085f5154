package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/target"
)

// runTarget is `sluice target --listen ADDR --state DIR --authorized-keys
// FILE`: the built-in target server on its own, until SIGINT or SIGTERM.
func runTarget(args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("target", "--listen ADDR --state DIR --authorized-keys FILE", "Run the built-in SSH target server (shell, exec, SFTP) on its own, until\nSIGINT or SIGTERM: a target for tests and demos, not a production server.", stdout, stderr)
	listen := cl.fs.String("listen", "127.0.0.1:2200", "listen `ADDR`")
	state := cl.fs.String("state", "", "state `DIR` holding the host key")
	akPath := cl.fs.String("authorized-keys", "", "authorized_keys `FILE` of the keys allowed in")
	if _, code, ok := cl.parse(args, 0); !ok {
		return code
	}
	if *state == "" || *akPath == "" {
		return cl.fail("--state and --authorized-keys are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveTarget(ctx, *listen, *state, *akPath, stderr)
}

// serveTarget runs the target server until ctx is cancelled and returns
// the exit code. It logs the bound address ("target listening addr=...").
func serveTarget(ctx context.Context, listen, state, akPath string, stderr io.Writer) int {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	keys, err := auth.ReadPublicKeys(akPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	signers, err := hostkey.LoadOrGenerate(state, nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: allowKeys(keys)}
	for _, s := range signers {
		cfg.AddHostKey(s)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: target: %v\n", err)
		return 1
	}
	logger.Info("target listening", "addr", l.Addr().String())
	if err := target.New(logger, target.Options{AcceptEnv: acceptLocaleEnv}).Serve(ctx, l, cfg); err != nil {
		logger.Error("target stopped", "err", err)
		return 1
	}
	return 0
}

// acceptLocaleEnv accepts what Debian's sshd_config accepts by default:
// LANG and LC_*.
func acceptLocaleEnv(name, _ string) bool {
	return name == "LANG" || len(name) > 3 && name[:3] == "LC_"
}

// allowKeys authenticates any user name that offers one of keys.
func allowKeys(keys []ssh.PublicKey) func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
	return func(_ ssh.ConnMetadata, offered ssh.PublicKey) (*ssh.Permissions, error) {
		b := offered.Marshal()
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), b) {
				return &ssh.Permissions{}, nil
			}
		}
		return nil, errors.New("sluice: key not authorized")
	}
}
