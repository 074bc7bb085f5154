package policy

import (
	"path"
	"strconv"
	"strings"
)

// Files is what a client may do to files, over SFTP, scp or an exec'd
// file-transfer server: the config's sftp subsystem policy. The zero Files
// permits reading only where no path rule applies. It is the one home of
// file-transfer decisions: the SFTP proxy (internal/sftpproxy), the scp
// proxy (internal/scpproxy) and the exec guard (DecideTransferExec) all
// decide with it.
type Files struct {
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

// restriction returns the config key of the first rule that makes p
// restrictive, or "" when p permits every operation everywhere.
func (p Files) restriction() string {
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

// FileRules decides single file-transfer operations under a Files policy
// and names the config key that decided. The SFTP proxy and the scp proxy
// both decide with them, so that one policy governs every way a file
// moves.
type FileRules struct {
	pol Files
	// prefix is the config path of the sftp subsystem, e.g.
	// "services[ssh-in].policy.subsystems.sftp".
	prefix string
}

// NewFileRules returns the FileRules of a service's sftp subsystem policy;
// owner is the service's name, or "roles[NAME]" for a role's policy.
func NewFileRules(owner string, pol Files) FileRules {
	return FileRules{pol: pol, prefix: Prefix(owner) + ".subsystems.sftp"}
}

// Prefix is the config path of the policy owner names: the service
// NAME's "services[NAME].policy", or "roles[R].policy" for owner
// "roles[R]" (service names hold no '[', see internal/config).
func Prefix(owner string) string {
	if strings.HasSuffix(owner, "]") {
		return owner + ".policy"
	}
	return "services[" + owner + "].policy"
}

// Accept is the verdict of an operation no rule refuses.
func (r *FileRules) Accept() Verdict {
	return Verdict{Accept: true, Rule: r.prefix, Reason: "permitted"}
}

// Reject refuses by the rule key (under the subsystem's config path; ""
// for the subsystem itself) for reason.
func (r *FileRules) Reject(key, reason string) Verdict {
	rule := r.prefix
	if key != "" {
		rule += "." + key
	}
	return Verdict{Rule: rule, Reason: reason}
}

// Path decides whether the absolute, clean path p may be touched. Without
// allow_paths and deny_paths every path may, relative ones too.
func (r *FileRules) Path(p string) Verdict {
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
func (r *FileRules) Contains(p string) Verdict {
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
func (r *FileRules) Change(allowed bool, key string) Verdict {
	switch {
	case r.pol.ReadOnly:
		return r.Reject("read_only", "read-only: "+key+" refused")
	case !allowed:
		return r.Reject(key, key+" is false")
	}
	return r.Accept()
}

// Size decides whether a file may reach end bytes.
func (r *FileRules) Size(end uint64) Verdict {
	if limit := r.pol.MaxUploadSize; limit > 0 && end > uint64(limit) {
		return r.Reject("max_upload_size", "write past "+strconv.FormatInt(limit, 10)+" bytes")
	}
	return r.Accept()
}

// Download decides reading a file's content.
func (r *FileRules) Download() Verdict {
	if !r.pol.AllowDownload {
		return r.Reject("allow_download", "download refused")
	}
	return r.Accept()
}

// Upload decides writing a file's content.
func (r *FileRules) Upload() Verdict { return r.Change(r.pol.AllowUpload, "allow_upload") }

// Remove decides removing a file or directory.
func (r *FileRules) Remove() Verdict { return r.Change(r.pol.AllowRemove, "allow_remove") }

// Rename decides renaming a file or directory.
func (r *FileRules) Rename() Verdict { return r.Change(r.pol.AllowRename, "allow_rename") }

// Link decides creating a symbolic or hard link.
func (r *FileRules) Link() Verdict { return r.Change(r.pol.AllowSymlink, "allow_symlink") }

// Rule returns the config path of the sftp subsystem policy itself, the
// rule of decisions no single key made.
func (r *FileRules) Rule() string { return r.prefix }

// Files returns the policy r decides by.
func (r *FileRules) Files() Files { return r.pol }

// Mkdir decides creating a directory.
func (r *FileRules) Mkdir() Verdict { return r.Change(r.pol.AllowMkdir, "allow_mkdir") }

// Setstat decides changing a file's permissions, owner, times or size.
func (r *FileRules) Setstat() Verdict { return r.Change(r.pol.AllowSetstat, "allow_setstat") }

// HasPathRules reports whether allow_paths or deny_paths apply, so that a
// path must be absolute to be decided.
func (r *FileRules) HasPathRules() bool { return len(r.pol.AllowPaths) > 0 || len(r.pol.DenyPaths) > 0 }

// First returns the first verdict that rejects, or the last one.
func First(vs ...Verdict) Verdict {
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
