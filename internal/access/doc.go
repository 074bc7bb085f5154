// Package access decides who may reach which host of the inventory, as
// which upstream login, under which policy: the config's hosts and roles
// (docs/access.md).
//
// A decision is pure: a Request (user, groups, host, login, time) in, a
// Decision naming the role and rule that decided out. The gateway decides
// every session with Rules.Decide, re-decides its live sessions on reload,
// and `sluice explain` prints Rules.Explain, which is the same code with
// every rule it looked at recorded.
package access
