package gateway

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// rclone runs rclone with an sftp remote "gw" that reaches the gateway as
// alice from the office zone; the remote is configured through the
// environment, so no config file is read.
func (w *world) rclone(t *testing.T, args ...string) result {
	t.Helper()
	bin := sshtest.RequireTool(t, "rclone")
	kh := filepath.Join(w.dir, "gateway_known_hosts")
	if err := os.WriteFile(kh, []byte(sshtest.KnownHostsLine(w.gw.Addr("ssh-in").String(), w.hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"RCLONE_CONFIG=/dev/null",
		"RCLONE_CONFIG_GW_TYPE=sftp",
		"RCLONE_CONFIG_GW_HOST=127.0.0.1",
		"RCLONE_CONFIG_GW_PORT=" + strconv.Itoa(w.port),
		"RCLONE_CONFIG_GW_USER=" + w.target(),
		"RCLONE_CONFIG_GW_KEY_FILE=" + w.aliceKey,
		"RCLONE_CONFIG_GW_KNOWN_HOSTS_FILE=" + kh,
		// rclone would otherwise run md5sum and sha1sum through exec.
		"RCLONE_CONFIG_GW_DISABLE_HASHCHECK=true",
		"RCLONE_CONFIG_GW_SHELL_TYPE=none",
	}
	a := append([]string{"--bind", clientAddr, "--low-level-retries", "1", "--retries", "1"}, args...)
	old := os.Environ()
	cmdEnv := append(old[:len(old):len(old)], env...)
	return w.runEnv(nil, cmdEnv, bin, a...)
}

// TestRcloneUploadDownload: rclone (pkg/sftp) uploads and downloads 32 MiB
// through the SFTP proxy intact, under a policy with path rules.
func TestRcloneUploadDownload(t *testing.T) {
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret"]}`)
	src := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, src, 32<<20)
	up := filepath.Join(dir, "pub", "up.bin")
	if r := w.rclone(t, "copyto", src, "gw:"+up); r.code != 0 {
		t.Fatalf("rclone upload: exit %d: %s", r.code, r.stderr)
	}
	if got := fileSum(t, up); got != want {
		t.Fatalf("uploaded: got sha256 %x, want %x", got, want)
	}
	back := filepath.Join(w.dir, "back.bin")
	if r := w.rclone(t, "copyto", "gw:"+up, back); r.code != 0 {
		t.Fatalf("rclone download: exit %d: %s", r.code, r.stderr)
	}
	if got := fileSum(t, back); got != want {
		t.Fatalf("downloaded: got sha256 %x, want %x", got, want)
	}
	// The policy still holds for rclone.
	if r := w.rclone(t, "copyto", "gw:"+filepath.Join(dir, "secret", "key"), filepath.Join(w.dir, "stolen")); r.code == 0 || exists(filepath.Join(w.dir, "stolen")) {
		t.Fatalf("rclone read a file under deny_paths: exit %d", r.code)
	}
	if evs := w.events("sftp.request", func(e audit.Event) bool { return e.Verdict == audit.Reject && strings.Contains(e.Reason, "malformed") }); len(evs) != 0 {
		t.Fatalf("got %d requests refused as malformed, want none: %+v", len(evs), evs[0])
	}
}
