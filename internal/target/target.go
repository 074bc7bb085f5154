package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/sshsession"
)

// handshakeTimeout bounds the SSH handshake and authentication of one
// connection; OpenSSH's LoginGraceTime defaults to 120s, a loopback test
// server needs far less.
const handshakeTimeout = 30 * time.Second

// Options configures a Target.
type Options struct {
	// AcceptEnv decides which "env" requests are applied to programs. Nil
	// refuses all of them.
	AcceptEnv func(name, value string) bool
	// Shell runs shells and, as "Shell -c COMMAND", commands. Empty means
	// $SHELL, or /bin/sh when that is unset.
	Shell string
}

// Target runs programs for SSH sessions as the current OS user.
type Target struct {
	log   *slog.Logger
	opts  Options
	shell string
	home  string
	user  string
	path  string

	// inputs counts the goroutines copying client input to programs. Each
	// ends when its channel closes, which can be after the Handler's Serve
	// returned; Serve waits for them before it returns.
	inputs sync.WaitGroup
}

// New returns a Target that logs to logger.
func New(logger *slog.Logger, opts Options) *Target {
	t := &Target{log: logger, opts: opts, shell: opts.Shell}
	if t.shell == "" {
		t.shell = os.Getenv("SHELL")
	}
	if t.shell == "" {
		t.shell = "/bin/sh"
	}
	if u, err := user.Current(); err == nil {
		t.user, t.home = u.Username, u.HomeDir
	} else {
		t.user, t.home = os.Getenv("USER"), os.Getenv("HOME")
	}
	if t.home == "" {
		t.home = "/"
	}
	t.path = os.Getenv("PATH")
	if t.path == "" {
		// OpenSSH's _PATH_STDPATH.
		t.path = "/usr/bin:/bin:/usr/sbin:/sbin"
	}
	return t
}

// Handler returns the handler for one session channel of conn. It has the
// signature sshsession.ServeConn expects of newHandler.
func (t *Target) Handler(conn *ssh.ServerConn) sshsession.Handler {
	return &channel{t: t, conn: conn}
}

// Serve accepts SSH connections on l, authenticates them with cfg and
// serves their session channels until ctx is cancelled or l fails. On
// return l is closed, every connection has been closed and every program
// has been killed and reaped. It returns nil after ctx was cancelled and
// the error of Accept otherwise.
func (t *Target) Serve(ctx context.Context, l net.Listener, cfg *ssh.ServerConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var conns sync.WaitGroup
	defer func() {
		cancel()
		conns.Wait()
		t.inputs.Wait()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.Close()
			return fmt.Errorf("target: accept: %w", err)
		}
		conns.Go(func() { t.serveConn(ctx, nc, cfg) })
	}
}

// serveConn runs the SSH handshake on nc and serves its channels until the
// connection ends or ctx is cancelled.
func (t *Target) serveConn(ctx context.Context, nc net.Conn, cfg *ssh.ServerConfig) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	// Closing nc on cancellation also ends a handshake in progress.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	conn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		t.log.Debug("target: handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	t.log.Info("target: connection", "remote", nc.RemoteAddr().String(), "user", conn.User())
	err = sshsession.ServeConn(ctx, conn, chans, reqs, t.Handler, &sshsession.Config{AcceptEnv: t.opts.AcceptEnv})
	conn.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.log.Warn("target: connection ended", "remote", nc.RemoteAddr().String(), "err", err)
	}
}
