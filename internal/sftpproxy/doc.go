// Package sftpproxy is Sluice's stacked SFTP proxy: it sits in a "sftp"
// subsystem channel between the client and the target's sftp-server,
// parses SFTP version 3 (draft-ietf-secsh-filexfer-02) in both directions,
// decides every operation by the service's subsystem policy and audits it.
//
// Requests the policy denies are answered by the proxy itself with
// SSH_FX_PERMISSION_DENIED and never reach the server. Requests and
// responses are paired by id without a round trip per request, so OpenSSH's
// pipelining (64 requests in flight) is kept. Paths are checked lexically
// after normalisation to an absolute path, relative paths being anchored at
// the server's answer to REALPATH "." asked when the session starts;
// symbolic links that already exist on the server are not followed (the
// proxy cannot see them), but links the client creates are checked at both
// ends.
//
// The OpenSSH extensions its sftp client uses are understood
// (posix-rename, statvfs, fstatvfs, hardlink, fsync, lsetstat, limits,
// expand-path @openssh.com, copy-data, home-directory,
// users-groups-by-id@openssh.com); others are refused unless the Policy
// allows unknown extensions, and the server's VERSION packet is rewritten
// so that the client is not offered what would be refused.
//
// ClassifyExec and DecideExec close the bypass through exec: "scp -t",
// "scp -f", "rsync --server", sftp-server binaries and commands whose
// programs cannot be known statically, found in the command read as shell
// source (internal/shellcmd), fall under the same policy (see
// DecideExec); the gateway stacks the scp proxy
// (internal/scpproxy) on the scp commands OpenSSH's client sends, which
// decides them per file with the same Rules.
package sftpproxy
