package sftpproxy

import "strings"

// SYMLINK's two paths come in one of two orders. The draft
// (draft-ietf-secsh-filexfer-02 §6.10) puts the link first and the target
// second; OpenSSH swapped them by mistake and kept it (PROTOCOL, "sftp:
// Reversal of arguments to SSH_FXP_SYMLINK"), and most implementations
// follow OpenSSH: its client and sftp-server, pkg/sftp (rclone) and
// paramiko, whichever peer they talk to. Others choose by the peer's SSH
// identification string, so what they do through the gateway depends on
// what they see of it:
//
//   - asyncssh (sftp.py, _nonstandard_symlink_impls) uses OpenSSH's order
//     only when the peer's string names "OpenSSH" or "paramiko";
//   - libssh's client (sftp_symlink) uses it only when the server's
//     string is OpenSSH's.
//
// The gateway's own string ("SSH-2.0-Sluice") is neither, so asyncssh and
// libssh clients send the draft order; an asyncssh server reads the draft
// order from the gateway's upstream client ("SSH-2.0-Go"). Everything else
// is taken to follow OpenSSH.

// clientSymlinkLinkFirst reports whether a client with the identification
// string v sends SYMLINK in the draft's order (link first) to the
// gateway.
func clientSymlinkLinkFirst(v string) bool {
	soft := softwareVersion(v)
	return strings.Contains(soft, "AsyncSSH") ||
		strings.HasPrefix(soft, "libssh_") || strings.HasPrefix(soft, "libssh-")
}

// serverSymlinkLinkFirst reports whether a server with the identification
// string v reads SYMLINK in the draft's order from the gateway.
func serverSymlinkLinkFirst(v string) bool {
	return strings.Contains(softwareVersion(v), "AsyncSSH")
}

// softwareVersion returns what follows "SSH-2.0-" (or "SSH-1.99-") in an
// identification string: softwareversion and comments (RFC 4253 §4.2).
func softwareVersion(v string) string {
	for _, p := range []string{"SSH-2.0-", "SSH-1.99-"} {
		if s, ok := strings.CutPrefix(v, p); ok {
			return s
		}
	}
	return ""
}
