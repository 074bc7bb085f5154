package sftpproxy

import (
	"path"
	"strconv"
	"strings"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/policy"
)

// Policy is what a client may do over SFTP. The zero Policy permits
// reading only where no path rule applies; see PolicyFrom for the config's
// defaults.
type Policy struct {
	// ReadOnly denies every operation that changes the server's files,
	// whatever the Allow fields say.
	ReadOnly      bool
	AllowUpload   bool // open files for writing
	AllowDownload bool // open files for reading
	// AllowPaths, when not empty, are the only paths reachable: path.Match
	// globs on absolute paths, each also covering everything below a
	// matching directory.
	AllowPaths []string
	// DenyPaths are refused, with everything below them; they win over
	// AllowPaths.
	DenyPaths []string
	// MaxUploadSize is the largest offset a write may reach, in bytes; 0
	// means no limit.
	MaxUploadSize int64
	AllowRemove   bool // remove files and directories
	AllowRename   bool
	AllowMkdir    bool
	AllowSymlink  bool // create symbolic and hard links
	AllowSetstat  bool // change permissions, owner, times, size
	// AllowUnknownExtensions forwards SFTP extensions the proxy does not
	// know; by default they are answered SSH_FX_OP_UNSUPPORTED.
	AllowUnknownExtensions bool
	// NoContentHash leaves out the SHA-256 of files transferred whole
	// and in order, which the close (sftp) or file (scp) event carries by
	// default.
	NoContentHash bool
}

// PolicyFrom converts a service's subsystem policy.
func PolicyFrom(s config.Subsystem) Policy {
	return Policy{
		ReadOnly:      s.ReadOnly,
		AllowUpload:   s.AllowUpload,
		AllowDownload: s.AllowDownload,
		AllowPaths:    s.AllowPaths,
		DenyPaths:     s.DenyPaths,
		MaxUploadSize: s.MaxUploadSize,
		AllowRemove:   s.AllowRemove,
		AllowRename:   s.AllowRename,
		AllowMkdir:    s.AllowMkdir,
		AllowSymlink:  s.AllowSymlink,
		AllowSetstat:  s.AllowSetstat,
		NoContentHash: !s.ContentHash,
	}
}

// restriction returns the config key of the first rule that makes p
// restrictive, or "" when p permits every operation everywhere.
func (p Policy) restriction() string {
	switch {
	case p.ReadOnly:
		return "read_only"
	case !p.AllowUpload:
		return "allow_upload"
	case !p.AllowDownload:
		return "allow_download"
	case len(p.AllowPaths) > 0:
		return "allow_paths"
	case len(p.DenyPaths) > 0:
		return "deny_paths"
	case p.MaxUploadSize > 0:
		return "max_upload_size"
	case !p.AllowRemove:
		return "allow_remove"
	case !p.AllowRename:
		return "allow_rename"
	case !p.AllowMkdir:
		return "allow_mkdir"
	case !p.AllowSymlink:
		return "allow_symlink"
	case !p.AllowSetstat:
		return "allow_setstat"
	}
	return ""
}

// Rules decides single file-transfer operations under a Policy and names
// the config key that decided. The SFTP proxy and the scp proxy
// (internal/scpproxy) both decide with them, so that one policy governs
// every way a file moves.
type Rules struct {
	pol Policy
	// prefix is the config path of the sftp subsystem, e.g.
	// "services[ssh-in].policy.subsystems.sftp".
	prefix string
}

// NewRules returns the Rules of a service's sftp subsystem policy; owner
// is the service's name, or "roles[NAME]" for a role's policy.
func NewRules(owner string, pol Policy) Rules {
	return Rules{pol: pol, prefix: PolicyPrefix(owner) + ".subsystems.sftp"}
}

// PolicyPrefix is the config path of the policy owner names: the service
// NAME's "services[NAME].policy", or "roles[R].policy" for owner
// "roles[R]" (service names hold no '[', see internal/config).
func PolicyPrefix(owner string) string {
	if strings.HasSuffix(owner, "]") {
		return owner + ".policy"
	}
	return "services[" + owner + "].policy"
}

// Accept is the verdict of an operation no rule refuses.
func (r *Rules) Accept() policy.Verdict {
	return policy.Verdict{Accept: true, Rule: r.prefix, Reason: "permitted"}
}

// Reject refuses by the rule key (under the subsystem's config path; ""
// for the subsystem itself) for reason.
func (r *Rules) Reject(key, reason string) policy.Verdict {
	rule := r.prefix
	if key != "" {
		rule += "." + key
	}
	return policy.Verdict{Rule: rule, Reason: reason}
}

// Path decides whether the absolute, clean path p may be touched. Without
// allow_paths and deny_paths every path may, relative ones too.
func (r *Rules) Path(p string) policy.Verdict {
	for i, g := range r.pol.DenyPaths {
		if matchTree(g, p) {
			return r.Reject("deny_paths["+strconv.Itoa(i)+"]", "path denied: "+p)
		}
	}
	if len(r.pol.AllowPaths) == 0 {
		return r.Accept()
	}
	for _, g := range r.pol.AllowPaths {
		if matchTree(g, p) {
			return r.Accept()
		}
	}
	return r.Reject("allow_paths", "path not allowed: "+p)
}

// Contains decides whether the folder p, absolute and clean, may be the
// target of a link or either end of a rename: refused when a path below
// it matches a deny_paths glob (globs match one name per '/', so the
// glob's leading names are matched against p's), since through the link,
// or at the tree's new place, the denied path would be reached by a name
// no glob matches.
func (r *Rules) Contains(p string) policy.Verdict {
	names := strings.Split(p, "/")
	if p == "/" {
		names = names[:1]
	}
	for i, g := range r.pol.DenyPaths {
		gs := strings.Split(path.Clean(g), "/")
		if len(gs) <= len(names) {
			continue
		}
		below := true
		for j, n := range names {
			if ok, _ := path.Match(gs[j], n); !ok {
				below = false
				break
			}
		}
		if below {
			return r.Reject("deny_paths["+strconv.Itoa(i)+"]", "contains a denied path: "+p)
		}
	}
	return r.Accept()
}

// Change decides an operation that changes files, permitted by allowed
// (the config key key) unless the policy is read-only.
func (r *Rules) Change(allowed bool, key string) policy.Verdict {
	switch {
	case r.pol.ReadOnly:
		return r.Reject("read_only", "read-only: "+key+" refused")
	case !allowed:
		return r.Reject(key, key+" is false")
	}
	return r.Accept()
}

// Size decides whether a file may reach end bytes.
func (r *Rules) Size(end uint64) policy.Verdict {
	if limit := r.pol.MaxUploadSize; limit > 0 && end > uint64(limit) {
		return r.Reject("max_upload_size", "write past "+strconv.FormatInt(limit, 10)+" bytes")
	}
	return r.Accept()
}

// Download decides reading a file's content.
func (r *Rules) Download() policy.Verdict {
	if !r.pol.AllowDownload {
		return r.Reject("allow_download", "download refused")
	}
	return r.Accept()
}

// Upload decides writing a file's content.
func (r *Rules) Upload() policy.Verdict { return r.Change(r.pol.AllowUpload, "allow_upload") }

// Mkdir decides creating a directory.
func (r *Rules) Mkdir() policy.Verdict { return r.Change(r.pol.AllowMkdir, "allow_mkdir") }

// Setstat decides changing a file's permissions, owner, times or size.
func (r *Rules) Setstat() policy.Verdict { return r.Change(r.pol.AllowSetstat, "allow_setstat") }

// HasPathRules reports whether allow_paths or deny_paths apply, so that a
// path must be absolute to be decided.
func (r *Rules) HasPathRules() bool { return len(r.pol.AllowPaths) > 0 || len(r.pol.DenyPaths) > 0 }

// First returns the first verdict that rejects, or the last one.
func First(vs ...policy.Verdict) policy.Verdict {
	for _, v := range vs {
		if !v.Accept {
			return v
		}
	}
	return vs[len(vs)-1]
}

// matchTree reports whether p or one of its parent directories matches
// the glob g. p is absolute and clean.
func matchTree(g, p string) bool {
	for {
		if ok, _ := path.Match(g, p); ok {
			return true
		}
		if p == "/" || !strings.HasPrefix(p, "/") {
			return false
		}
		p = path.Dir(p)
	}
}

// absPath makes p absolute and clean: a relative p is anchored at cwd. It
// reports false for a relative p when cwd is unknown ("").
func absPath(cwd, p string) (string, bool) {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p), true
	}
	if cwd == "" {
		return "", false
	}
	return path.Clean(cwd + "/" + p), true
}
