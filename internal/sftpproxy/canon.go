package sftpproxy

import (
	"errors"
	"path"
	"strings"

	"github.com/sluice-ssh/sluice/internal/policy"
)

// Paths are decided on where the server will act, not only on the text
// the client sent: the client may name a file through a symbolic link,
// one it made or one that was there, and the kernel resolves ".." after
// a link from the link's target. When path rules apply, the proxy asks
// the server REALPATH (which resolves every link, and answers for a
// missing final component too: sftp-server's sftp_realpath, from
// OpenBSD's realpath(3)) before it decides; an operation that does not
// follow a final link (LSTAT, REMOVE, RENAME, SYMLINK's link, ...) is
// decided on REALPATH of the parent plus the final name. Without path
// rules there is nothing to decide on a path, and no round trip is made.

// ownID is the first id of the proxy's own requests; it counts down,
// skipping ids in flight. OpenSSH, pkg/sftp and paramiko count their ids
// up from 0 or 1, so the two never meet in practice; a client request
// that reuses an id of the proxy's while it is in flight is refused as a
// duplicate.
const ownID = 0xFFFFFFFF

// ownAnswer is the server's answer to one of the proxy's own requests.
type ownAnswer struct {
	typ  byte
	name string
}

// errServerGone ends a session whose server ended while the proxy waited
// for its answer.
var errServerGone = errors.New("sftpproxy: the server ended while the proxy waited for its answer")

// resolved is a path as the client named it and as the server will act
// on it.
type resolved struct {
	// abs is the client's path made absolute and clean, lexically.
	abs string
	// canon is where the server will act: abs resolved through the
	// server; abs when the server could not resolve it (a missing
	// folder: the operation will fail there too).
	canon string
}

// detail returns the audit detail of p: "path" and, when it differs,
// "resolved".
func (p resolved) detail(d map[string]any, key string) map[string]any {
	if d == nil {
		d = map[string]any{}
	}
	d[key] = p.abs
	if p.canon != p.abs {
		d[key+"_resolved"] = p.canon
	}
	return d
}

// resolve makes the client's path p absolute and, under path rules, finds
// where the server will act on it; follow says whether the operation
// follows a final symbolic link. The verdict decides both paths.
func (r *relay) resolve(p string, follow bool) (resolved, policy.Verdict) {
	abs, ok := absPath(r.cwd, p)
	if !ok {
		return resolved{abs: p, canon: p}, r.p.rules.Reject("", "relative path without a working directory: "+p)
	}
	res := resolved{abs: abs, canon: abs}
	rl := &r.p.rules
	if !rl.HasPathRules() {
		return res, rl.Path(abs)
	}
	if v := rl.Path(abs); !v.Accept {
		return res, v
	}
	res.canon = r.canonical(p, follow)
	return res, rl.Path(res.canon)
}

// canonical asks the server where p leads (see resolve); it returns the
// lexical absolute path where the server cannot say.
func (r *relay) canonical(p string, follow bool) string {
	abs, _ := absPath(r.cwd, p)
	dir, base := "", ""
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i], p[i+1:]
		if dir == "" {
			dir = "/"
		}
	} else {
		dir, base = ".", p
	}
	if follow || base == "" || base == "." || base == ".." {
		if c, ok := r.realpath(p); ok {
			return c
		}
		return abs
	}
	if c, ok := r.realpath(dir); ok {
		return path.Join(c, base)
	}
	return abs
}

// realpath asks the server REALPATH p and waits for its answer: an
// absolute path, ok; anything else is not ok. Requests the client
// pipelined before are sent first. An I/O error is kept in r.ownErr and
// ends the session once the request has been decided.
func (r *relay) realpath(p string) (string, bool) {
	if r.ownErr != nil {
		return "", false
	}
	ch := make(chan ownAnswer, 1)
	r.mu.Lock()
	id := r.nextOwn
	for r.pending[id] != nil {
		id--
	}
	r.nextOwn = id - 1
	r.pending[id] = &pending{typ: fxpRealpath, own: ch}
	r.mu.Unlock()
	if err := r.toServer(realpathPacket(id, p)); err != nil {
		r.ownErr = err
		return "", false
	}
	select {
	case a := <-ch:
		if a.typ != fxpName || !strings.HasPrefix(a.name, "/") {
			return "", false
		}
		return path.Clean(a.name), true
	case <-r.serverDone:
		r.ownErr = errServerGone
		return "", false
	}
}

// linkTarget decides where a link made at link (resolved) points: target,
// relative to the link's folder when not absolute, resolved through the
// server. A link is refused when its target lies outside the path rules
// or is a folder that contains a denied path.
func (r *relay) linkTarget(link resolved, target string) (resolved, policy.Verdict) {
	rl := &r.p.rules
	lexical := target
	if !strings.HasPrefix(target, "/") {
		lexical = path.Dir(link.abs) + "/" + target
		if rl.HasPathRules() {
			// The kernel resolves it from where the link really is.
			target = path.Dir(link.canon) + "/" + target
		} else {
			target = lexical
		}
	}
	res, v := r.resolve(target, true)
	res.abs = path.Clean(lexical)
	if v.Accept {
		v = policy.First(rl.Path(res.abs), rl.Contains(res.canon))
	}
	return res, v
}
