package gateway

import (
	"context"

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
// the sftp policy of pol, owner's (as for stackedProxies), so that exec is no way around it. scp in
// server mode, as OpenSSH's client runs it ("scp -O"), is stacked through
// the scp proxy, which applies the policy per file; every other such
// command (sftp-server, scp in a shell construct) is refused unless the
// policy permits everything (policy.DecideTransferExec).
func (g *Gateway) execTransfer(owner string, pol config.Policy) func(command string) (sshproxy.Transfer, bool) {
	var sftp *policy.Files
	var scp *scpproxy.Proxy
	if sub, ok := pol.Subsystems["sftp"]; ok {
		f := fileRules(sub)
		sftp = &f
		scp = scpproxy.New(scpproxy.Params{Service: owner, Policy: fileRules(sub), Audit: g.audit, Logger: g.logger})
	}
	return func(command string) (sshproxy.Transfer, bool) {
		if scp != nil {
			if c, err := scpproxy.ParseCommand(command); err == nil {
				t := sshproxy.Transfer{Verdict: scp.Decide(c), Name: "scp"}
				t.Proxy = func(ctx context.Context, st *session.Stacked, client, upstream sshproxy.Stream) (int64, int64, error) {
					if s, ok := client.(*sshsession.Session); ok {
						client = closableSession{s}
					}
					return scp.Relay(ctx, st, c, client, upstream)
				}
				return t, true
			}
		}
		v, ok := policy.DecideTransferExec(owner, sftp, command)
		return sshproxy.Transfer{Verdict: v}, ok
	}
}

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
