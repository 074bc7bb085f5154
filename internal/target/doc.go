// Package target is Sluice's built-in SSH target server: a
// sshsession.Handler that runs shells and commands as the current OS user
// (under a pty when one was requested, with pipes otherwise) and serves
// the "sftp" subsystem with github.com/pkg/sftp. It backs `sluice target`
// and `sluice demo`, and gives tests a target that needs no sshd.
//
// It is a test and demo server, not a multi-user sshd: it never changes
// user, and when a program exits it kills whatever is left of the
// program's process group, so background jobs do not outlive their
// session.
package target
