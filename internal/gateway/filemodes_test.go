package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFileModesUnderPermissiveUmask runs a recorded session on a gateway
// started under umask 0 and checks every file it made in its state folder
// — host keys (public halves 0644), the audit database with its -wal and -shm files,
// recordings — is 0600 and every folder 0700.
func TestFileModesUnderPermissiveUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	if r := w.ssh(nil, "echo recorded"); r.code != 0 || r.stdout != "recorded\n" {
		t.Fatalf("ssh: got %d %q %q, want recorded", r.code, r.stdout, r.stderr)
	}
	w.events("record", nil)
	state := filepath.Join(w.dir, "state")
	seen := map[string]bool{}
	err := filepath.Walk(state, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSocket != 0 {
			return nil // the admin socket has a mode of its own (admin.md)
		}
		want := os.FileMode(0o600)
		switch {
		case fi.IsDir():
			want = 0o700
		case strings.HasSuffix(fi.Name(), ".pub"):
			want = 0o644 // public keys are public, as OpenSSH writes them
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %#o, want %#o", p, got, want)
		}
		name := fi.Name()
		switch {
		case strings.HasSuffix(name, ".cast"), strings.HasSuffix(name, ".rec.gz"):
			seen["recording"] = true
		case strings.HasPrefix(name, "ssh_host_"):
			seen["host key"] = true
		case name == "audit.db-wal", name == "audit.db-shm", name == "audit.db":
			seen[name] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"recording", "host key", "audit.db", "audit.db-wal", "audit.db-shm"} {
		if !seen[want] {
			t.Errorf("%s: not found under %s, want one checked", want, state)
		}
	}
}
