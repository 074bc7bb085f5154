package sshtest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of an external tool a test needs (sshd, ssh,
// sftp, scp, rsync, ...). When the tool is missing the test fails if
// SLUICE_INTEROP=require is set (as CI does) and is skipped otherwise.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/lib/openssh"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := name + " not found: install it (make test does, as root) or unset SLUICE_INTEROP"
	if os.Getenv("SLUICE_INTEROP") == "require" {
		t.Fatalf("SLUICE_INTEROP=require: %s", msg)
	}
	t.Skip(msg)
	return ""
}
