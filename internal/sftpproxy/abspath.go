package sftpproxy

import (
	"path"
	"strings"
)

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
