package sftpproxy

import (
	"path"
	"strings"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
)

// Kinds of file-transfer servers ClassifyExec recognises.
const (
	ExecSCP        = "scp"
	ExecSFTPServer = "sftp-server"
)

// ClassifyExec reports whether an exec command runs a file-transfer server
// on the target: ExecSCP for scp in server mode (an scp word followed by
// an option cluster with t or f, as "scp -t", "/usr/bin/scp -r -p -f --"),
// ExecSFTPServer for an sftp-server or internal-sftp binary anywhere in
// the command, "" otherwise. The command is split on blanks, quotes and
// shell operators, so "cd /x && exec 'scp' -t ." is recognised too; it errs
// on the side of recognising.
func ClassifyExec(cmd string) string {
	words := strings.FieldsFunc(cmd, func(r rune) bool {
		return strings.ContainsRune(" \t\r\n;&|()<>`'\"$\\{}", r)
	})
	scp := false
	for _, w := range words {
		switch base := path.Base(w); {
		case base == "sftp-server" || base == "internal-sftp":
			return ExecSFTPServer
		case base == "scp":
			scp = true
		case scp && len(w) > 1 && w[0] == '-' && w[1] != '-' && strings.ContainsAny(w[1:], "tf"):
			return ExecSCP
		}
	}
	return ""
}

// DecideExec decides an exec command that ClassifyExec recognises and no
// stacked proxy inspects, so that exec is no way around the sftp
// subsystem's policy. sftp is the service's "sftp" subsystem policy, nil
// when the sftp subsystem is not permitted. The command is refused unless
// sftp permits every operation everywhere: nothing sees inside a raw
// sftp-server's stream, or inside scp started in a form the scp proxy does
// not take (scpproxy.ParseCommand). ok is false when cmd is not a
// file-transfer server; the exec policy alone then decides.
func DecideExec(service string, sftp *config.Subsystem, cmd string) (v policy.Verdict, ok bool) {
	kind := ClassifyExec(cmd)
	if kind == "" {
		return policy.Verdict{}, false
	}
	prefix := "services[" + service + "].policy.subsystems"
	if sftp == nil {
		return policy.Verdict{Rule: prefix, Reason: kind + " through exec refused: the sftp subsystem is not permitted"}, true
	}
	if key := PolicyFrom(*sftp).restriction(); key != "" {
		return policy.Verdict{Rule: prefix + ".sftp." + key, Reason: kind + " through exec refused: the sftp policy is restrictive"}, true
	}
	return policy.Verdict{Accept: true, Rule: prefix + ".sftp", Reason: kind + " through exec: the sftp policy permits everything"}, true
}
