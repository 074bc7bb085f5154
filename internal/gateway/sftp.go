package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/scpproxy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sftpproxy"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
	"github.com/sluice-ssh/sluice/sshsession"
)

// stackedProxies returns the stacked proxies of the subsystems of pol, the
// policy of owner (a service's name, or "roles[NAME]"): the SFTP proxy
// when the policy permits the "sftp" subsystem.
func (g *Gateway) stackedProxies(owner string, pol config.Policy) map[string]sshproxy.StackedProxy {
	sub, ok := pol.Subsystems["sftp"]
	if !ok {
		return nil
	}
	sp := sftpproxy.New(sftpproxy.Params{Service: owner, Policy: fileRules(sub), Audit: g.audit, Logger: g.logger, MaxOutstanding: sub.MaxOutstanding})
	return map[string]sshproxy.StackedProxy{
		"sftp": func(ctx context.Context, st *session.Stacked, client, upstream sshproxy.Stream) (int64, int64, error) {
			if s, ok := client.(*sshsession.Session); ok {
				client = closableSession{s}
			}
			return sp.Relay(ctx, st, peers(st), client, upstream)
		},
	}
}

// peers returns what the SFTP proxy needs to know of the two ends of st's
// connection.
func peers(st *session.Stacked) sftpproxy.Peers {
	cv, _ := session.Lookup(st, sshproxy.ClientVersion)
	sv, _ := session.Lookup(st, sshproxy.ServerVersion)
	return sftpproxy.Peers{ClientVersion: cv, ServerVersion: sv}
}

// closableSession lets a stacked proxy close the client's channel when it
// ends a session early (a protocol error from either side).
type closableSession struct{ *sshsession.Session }

func (s closableSession) Close() error { return s.Channel().Close() }

// execTransfer decides exec commands that run a file-transfer server by
// the sftp policy of pol, owner's (as for stackedProxies), so that exec is
// no way around it. scp in server mode, as OpenSSH's client runs it ("scp
// -O"), is stacked through the scp proxy, which applies the policy per
// file; every other such command (sftp-server, scp in a shell construct)
// is refused unless the policy permits everything
// (policy.DecideTransferExec). Under path rules the scp proxy resolves
// each path through the target's sftp subsystem, on a channel the gateway
// opens itself for the session (openResolver); where it cannot be opened,
// the command is refused.
func (g *Gateway) execTransfer(owner string, pol config.Policy) func(st *session.Stacked, command string) (sshproxy.Transfer, bool) {
	var files *policy.Files
	var scp *scpproxy.Proxy
	if sub, ok := pol.Subsystems["sftp"]; ok {
		f := fileRules(sub)
		files = &f
		scp = scpproxy.New(scpproxy.Params{Service: owner, Policy: fileRules(sub), Audit: g.audit, Logger: g.logger})
	}
	return func(st *session.Stacked, command string) (sshproxy.Transfer, bool) {
		if scp != nil {
			if c, err := scpproxy.ParseCommand(command); err == nil {
				return scpTransfer(st, scp, c), true
			}
		}
		v, ok := policy.DecideTransferExec(owner, files, command)
		return sshproxy.Transfer{Verdict: v}, ok
	}
}

// scpTransfer stacks the scp proxy p on command c of the session channel
// ch, with its resolver when p needs one.
func scpTransfer(ch *session.Stacked, p *scpproxy.Proxy, c scpproxy.Command) sshproxy.Transfer {
	t := sshproxy.Transfer{Verdict: p.Decide(c), Name: "scp"}
	var res *sftpResolver
	if t.Verdict.Accept && p.NeedsResolver() {
		var err error
		if res, err = openResolver(ch); err != nil {
			t.Verdict = p.Unresolved(err)
			return t
		}
		t.Release = res.close
	}
	t.Proxy = func(ctx context.Context, st *session.Stacked, client, upstream sshproxy.Stream) (int64, int64, error) {
		if s, ok := client.(*sshsession.Session); ok {
			client = closableSession{s}
		}
		if res == nil {
			return p.Relay(ctx, st, c, nil, client, upstream)
		}
		// A session that ends early does not wait on the target's answer.
		stop := context.AfterFunc(ctx, func() { _ = res.ch.Close() })
		defer stop()
		return p.Relay(ctx, st, c, res, client, upstream)
	}
	return t
}

// sftpResolver is the scp proxy's scpproxy.Resolver: the target's sftp
// subsystem on a channel of the gateway's own (sshproxy.OpenSubsystem),
// asked REALPATH.
type sftpResolver struct {
	ch ssh.Channel
	c  *sftp.Client
}

// openResolver opens the target's sftp subsystem beside st's channel.
func openResolver(st *session.Stacked) (*sftpResolver, error) {
	ch, err := sshproxy.OpenSubsystem(st, "sftp")
	if err != nil {
		return nil, err
	}
	c, err := sftp.NewClientPipe(ch, ch)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("gateway: starting sftp on the target: %w", err)
	}
	return &sftpResolver{ch: ch, c: c}, nil
}

// Realpath asks the target REALPATH p. A status (no such file, permission
// denied, any other failure) is no answer; anything else means the
// channel failed.
func (r *sftpResolver) Realpath(p string) (string, bool, error) {
	c, err := r.c.RealPath(p)
	var st *sftp.StatusError
	switch {
	case err == nil:
		return c, true, nil
	case errors.As(err, &st), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return "", false, nil
	}
	return "", false, err
}

// close ends the sftp session and its channel.
func (r *sftpResolver) close() { _ = r.c.Close() }

// fileRules converts a service's or role's sftp subsystem policy.
func fileRules(s config.Subsystem) policy.Files {
	return policy.Files{
		ReadOnly:      s.ReadOnly,
		AllowUpload:   s.AllowUpload,
		AllowDownload: s.AllowDownload,
		AllowPaths:    s.AllowPaths,
		DenyPaths:     s.DenyPaths,
		MaxUploadSize: s.MaxUploadSize,
		AllowRemove:   s.AllowRemove,
		AllowRename:   s.AllowRename,
		AllowMkdir:    s.AllowMkdir,
		AllowSymlink:  s.AllowSymlink,
		AllowSetstat:  s.AllowSetstat,
		NoContentHash: !s.ContentHash,
	}
}
