package policy

import (
	"slices"
	"strings"

	"github.com/sluice-ssh/sluice/internal/shellcmd"
)

// Kinds of file-transfer servers ClassifyTransferExec recognises.
const (
	TransferSCP        = "scp"
	TransferSFTPServer = "sftp-server"
	TransferRsync      = "rsync"
	// TransferUnknown is a command whose programs cannot all be known without
	// running it: it may start any of the above.
	TransferUnknown = "unknown"
)

// ClassifyTransferExec reports whether an exec command may run a file-transfer
// server on the target, reading it as shell source (internal/shellcmd) so
// that quoting, lists, wrappers and sh -c strings hide nothing: TransferSCP for
// scp in server mode (an option cluster with t or f, as "scp -t",
// "/usr/bin/scp -r -p -f --"), TransferSFTPServer for a program whose name
// holds "sftp-server" or is internal-sftp, TransferRsync for "rsync --server",
// TransferUnknown with the reason when the command does not parse or a program
// cannot be known statically (a variable, glob or substitution in a
// program name, eval, a shell reading standard input, …), and "" otherwise.
func ClassifyTransferExec(cmd string) (kind, reason string) {
	a, err := shellcmd.Parse(cmd)
	if err != nil {
		return TransferUnknown, err.Error()
	}
	for _, c := range a.Commands {
		switch {
		case strings.Contains(c.Program, "sftp-server") || c.Program == "internal-sftp":
			return TransferSFTPServer, ""
		case c.Program == "scp" && slices.ContainsFunc(c.Args, scpServerFlag):
			return TransferSCP, ""
		case c.Program == "rsync" && slices.Contains(c.Args, "--server"):
			return TransferRsync, ""
		}
	}
	if len(a.Dynamic) > 0 {
		return TransferUnknown, a.Dynamic[0]
	}
	return "", ""
}

// scpServerFlag reports whether w is an scp option cluster with t or f,
// which puts scp in server mode (scp.c).
func scpServerFlag(w string) bool {
	return len(w) > 1 && w[0] == '-' && w[1] != '-' && strings.ContainsAny(w[1:], "tf")
}

// DecideTransferExec decides an exec command that ClassifyTransferExec recognises and no
// stacked proxy inspects, so that exec is no way around the sftp
// subsystem's policy. sftp is the service's "sftp" subsystem policy, nil
// when the sftp subsystem is not permitted. The command is refused unless
// sftp permits every operation everywhere: nothing sees inside a raw
// sftp-server's stream, or inside scp started in a form the scp proxy does
// not take (scpproxy.ParseCommand). ok is false when cmd is not a
// file-transfer server; the exec policy alone then decides. service is the
// policy's owner, as for Prefix.
func DecideTransferExec(service string, sftp *Files, cmd string) (v Verdict, ok bool) {
	kind, why := ClassifyTransferExec(cmd)
	if kind == "" {
		return Verdict{}, false
	}
	what := kind + " through exec"
	if kind == TransferUnknown {
		what = "a command that may start a file-transfer server (" + why + ")"
	}
	prefix := Prefix(service) + ".subsystems"
	if sftp == nil {
		return Verdict{Rule: prefix, Reason: what + " refused: the sftp subsystem is not permitted"}, true
	}
	if key := sftp.restriction(); key != "" {
		return Verdict{Rule: prefix + ".sftp." + key, Reason: what + " refused: the sftp policy is restrictive"}, true
	}
	return Verdict{Accept: true, Rule: prefix + ".sftp", Reason: what + ": the sftp policy permits everything"}, true
}
