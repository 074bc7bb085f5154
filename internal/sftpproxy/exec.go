package sftpproxy

import (
	"slices"
	"strings"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/shellcmd"
)

// Kinds of file-transfer servers ClassifyExec recognises.
const (
	ExecSCP        = "scp"
	ExecSFTPServer = "sftp-server"
	ExecRsync      = "rsync"
	// ExecUnknown is a command whose programs cannot all be known without
	// running it: it may start any of the above.
	ExecUnknown = "unknown"
)

// ClassifyExec reports whether an exec command may run a file-transfer
// server on the target, reading it as shell source (internal/shellcmd) so
// that quoting, lists, wrappers and sh -c strings hide nothing: ExecSCP for
// scp in server mode (an option cluster with t or f, as "scp -t",
// "/usr/bin/scp -r -p -f --"), ExecSFTPServer for a program whose name
// holds "sftp-server" or is internal-sftp, ExecRsync for "rsync --server",
// ExecUnknown with the reason when the command does not parse or a program
// cannot be known statically (a variable, glob or substitution in a
// program name, eval, a shell reading standard input, …), and "" otherwise.
func ClassifyExec(cmd string) (kind, reason string) {
	a, err := shellcmd.Parse(cmd)
	if err != nil {
		return ExecUnknown, err.Error()
	}
	for _, c := range a.Commands {
		switch {
		case strings.Contains(c.Program, "sftp-server") || c.Program == "internal-sftp":
			return ExecSFTPServer, ""
		case c.Program == "scp" && slices.ContainsFunc(c.Args, scpServerFlag):
			return ExecSCP, ""
		case c.Program == "rsync" && slices.Contains(c.Args, "--server"):
			return ExecRsync, ""
		}
	}
	if len(a.Dynamic) > 0 {
		return ExecUnknown, a.Dynamic[0]
	}
	return "", ""
}

// scpServerFlag reports whether w is an scp option cluster with t or f,
// which puts scp in server mode (scp.c).
func scpServerFlag(w string) bool {
	return len(w) > 1 && w[0] == '-' && w[1] != '-' && strings.ContainsAny(w[1:], "tf")
}

// DecideExec decides an exec command that ClassifyExec recognises and no
// stacked proxy inspects, so that exec is no way around the sftp
// subsystem's policy. sftp is the service's "sftp" subsystem policy, nil
// when the sftp subsystem is not permitted. The command is refused unless
// sftp permits every operation everywhere: nothing sees inside a raw
// sftp-server's stream, or inside scp started in a form the scp proxy does
// not take (scpproxy.ParseCommand). ok is false when cmd is not a
// file-transfer server; the exec policy alone then decides. service is as
// in Params.Service.
func DecideExec(service string, sftp *config.Subsystem, cmd string) (v policy.Verdict, ok bool) {
	kind, why := ClassifyExec(cmd)
	if kind == "" {
		return policy.Verdict{}, false
	}
	what := kind + " through exec"
	if kind == ExecUnknown {
		what = "a command that may start a file-transfer server (" + why + ")"
	}
	prefix := PolicyPrefix(service) + ".subsystems"
	if sftp == nil {
		return policy.Verdict{Rule: prefix, Reason: what + " refused: the sftp subsystem is not permitted"}, true
	}
	if key := PolicyFrom(*sftp).restriction(); key != "" {
		return policy.Verdict{Rule: prefix + ".sftp." + key, Reason: what + " refused: the sftp policy is restrictive"}, true
	}
	return policy.Verdict{Accept: true, Rule: prefix + ".sftp", Reason: what + ": the sftp policy permits everything"}, true
}
