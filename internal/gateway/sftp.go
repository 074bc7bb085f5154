package gateway

import (
	"context"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sftpproxy"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
	"github.com/sluice-ssh/sluice/sshsession"
)

// stackedProxies returns the stacked proxies of a service's subsystems:
// the SFTP proxy when the policy permits the "sftp" subsystem.
func (g *Gateway) stackedProxies(sc *config.Service) map[string]sshproxy.StackedProxy {
	sub, ok := sc.Policy.Subsystems["sftp"]
	if !ok {
		return nil
	}
	sp := sftpproxy.New(sftpproxy.Params{Service: sc.Name, Policy: sftpproxy.PolicyFrom(sub), Audit: g.queue, Logger: g.logger})
	return map[string]sshproxy.StackedProxy{
		"sftp": func(ctx context.Context, st *session.Stacked, client, upstream sshproxy.Stream) (int64, int64, error) {
			if s, ok := client.(*sshsession.Session); ok {
				client = closableSession{s}
			}
			return sp.Relay(ctx, st, client, upstream)
		},
	}
}

// closableSession lets the SFTP proxy close the client's channel when it
// ends a session early (a protocol error from either side).
type closableSession struct{ *sshsession.Session }

func (s closableSession) Close() error { return s.Channel().Close() }

// execTransfer decides exec commands that run a file-transfer server (scp
// in server mode, sftp-server) by the service's sftp policy, so that exec
// is no way around it.
func execTransfer(sc *config.Service) func(command string) (policy.Verdict, bool) {
	var sftp *config.Subsystem
	if sub, ok := sc.Policy.Subsystems["sftp"]; ok {
		sftp = &sub
	}
	return func(command string) (policy.Verdict, bool) {
		return sftpproxy.DecideExec(sc.Name, sftp, command)
	}
}
