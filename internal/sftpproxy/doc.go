// Package sftpproxy is Sluice's stacked SFTP proxy: it sits in a "sftp"
// subsystem channel between the client and the target's sftp-server,
// parses SFTP version 3 (draft-ietf-secsh-filexfer-02) in both directions,
// decides every operation by the service's subsystem policy and audits it.
//
// Requests the policy denies are answered by the proxy itself with
// SSH_FX_PERMISSION_DENIED and never reach the server. Requests and
// responses are paired by id without a round trip per request, so OpenSSH's
// pipelining (64 requests in flight) is kept. Paths are made absolute,
// relative ones anchored at the server's answer to REALPATH "." asked when
// the session starts. Under path rules each path is also resolved through
// the server, whose REALPATH follows every link, and decided where the
// server will act (canon.go): links and renames are refused when their
// tree contains or could contain a denied path, and answers that would
// show a hidden path are refused. The round trips this costs are the
// proxy's own requests, with ids counted down from 2^32-1, whose answers
// the client never sees.
//
// SYMLINK is read in the order its client sends and forwarded in the order
// the server reads, each known from its SSH identification string (Peers;
// symlink.go): OpenSSH's reversed order, or the draft's.
//
// A session forwards at most Params.MaxOutstanding requests the server has
// not answered; past it the proxy stops reading the client, so that a
// client that never reads replies holds a bounded amount of memory.
//
// The OpenSSH extensions its sftp client uses are understood
// (posix-rename, statvfs, fstatvfs, hardlink, fsync, lsetstat, limits,
// expand-path @openssh.com, copy-data, home-directory,
// users-groups-by-id@openssh.com); others are refused unless the policy
// allows unknown extensions, and the server's VERSION packet is rewritten
// so that the client is not offered what would be refused.
//
// The decisions themselves live in internal/policy (policy.Files and
// policy.FileRules), which the scp proxy (internal/scpproxy) and the
// guard against file-transfer servers started by exec
// (policy.DecideTransferExec) share, so that one policy governs every way
// a file moves.
package sftpproxy
