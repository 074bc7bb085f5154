// Package policy makes Sluice's per-session decisions: may this client get a
// pty, a shell, run this command, set this environment variable, start this
// subsystem, open this forwarded port, forward its agent or X11, and what
// may it do to files: Files and FileRules decide each file operation for
// the SFTP and scp proxies, and DecideTransferExec the exec commands that
// would start a file-transfer server out of their sight.
//
// Policy is pure: facts in, a Verdict out, with the name of the config rule
// that decided (e.g. "services[ssh-in].policy.exec.deny[0]") so that every
// decision can be audited. Nothing here does I/O, logs or keeps state beyond
// the compiled Spec; a *Policy is safe for concurrent use.
//
// Restrictions carried by the user's authorized_keys line (OpenSSH sshd(8)
// "AUTHORIZED_KEYS FILE FORMAT": no-pty, no-port-forwarding, permitopen,
// command, ...) are honoured in addition to the service policy: either one
// can refuse, and an authorized_keys refusal is reported with a rule such as
// "authorized_keys no-pty".
//
// A StepUp (services[].mfa.required_for) refuses, on top of the rest, the
// request kinds that need a second factor the session has not given.
package policy
