// Package scpproxy is Sluice's stacked proxy for legacy scp (OpenSSH's
// "scp -O", the rcp protocol): it sits in a session channel whose exec
// command runs scp in server mode ("scp -t PATH" to receive, "scp -f PATH"
// to send), parses the protocol in both directions and decides every file
// and directory by the service's sftp subsystem policy (policy.FileRules),
// so that scp is no way around it.
//
// The protocol has no specification beyond OpenSSH's scp.c: the side that
// sends files (the source) writes records, each a line, and the side that
// receives them (the sink) answers each with a status:
//
//	T<mtime> 0 <atime> 0\n      times of the next C or D (scp -p)
//	C<mode> <size> <name>\n     a file, followed by size bytes and a status byte
//	D<mode> 0 <name>\n          a directory, entered (scp -r)
//	E\n                         end of the directory entered last
//	\x01<message>\n             an error; \x02 a fatal one
//
// A status is a 0 byte, or an error line as above. The sink speaks first.
// A file or directory the policy denies gets an error status from the
// proxy itself ("sluice: NAME: denied by policy"), which the scp client
// prints and skips: on upload the server never sees it; on download the
// server is told to skip it and the client gets the error line. One audit
// event is written per file (scp.upload, scp.download, with path, size,
// sha256 and result) and per directory (scp.mkdir, scp.opendir), under the
// stacked session ".../session:N/scp".
//
// Only the command lines OpenSSH's scp client sends are stacked (see
// ParseCommand): one path, options from -d -f -p -r -t -v, and no
// character the remote shell would interpret, since the shell, not scp,
// would resolve it. Record names must not contain '/' or be "..", as
// OpenSSH's own sink requires. Relative paths are relative to the login
// directory, which the proxy cannot see: they are refused when the policy
// has allow_paths or deny_paths (Decide) and audited as given otherwise.
//
// Under allow_paths or deny_paths, the names are not enough: a symbolic
// link on the server, in a folder of the path or as the file itself,
// takes the server's scp where no glob matches them. So each path is
// also resolved through a Resolver (the gateway's: REALPATH on an sftp
// channel of its own to the same target) and decided where the server
// will act, as the SFTP proxy does; a folder entered keeps where it
// really lies. The audit events carry "path_resolved" where it differs
// from "path".
package scpproxy
