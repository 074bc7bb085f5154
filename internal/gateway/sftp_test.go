package gateway

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// sftpWorld is a world whose sftp subsystem policy is sub (a YAML flow
// mapping; "%s" in it stands for the world's folder), with a tree
// pub/a.txt and secret/key in that folder.
func sftpWorld(t *testing.T, sub string) (*world, string) {
	t.Helper()
	return sftpWorldWith(t, sub, worldOptions{})
}

// sftpWorldWith is sftpWorld with the world's other options o.
func sftpWorldWith(t *testing.T, sub string, o worldOptions) (*world, string) {
	t.Helper()
	sshtest.RequireTool(t, "sftp")
	sshtest.RequireTool(t, "scp")
	// The folder must be known before the config is written: make it first
	// and put the world's own files elsewhere.
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o.policy = `      exec: {allow: [".*"]}
      subsystems:
        sftp: ` + strings.ReplaceAll(sub, "%s", dir) + "\n"
	w := newWorld(t, o)
	for _, d := range []string{"pub", "secret"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"pub/a.txt", "secret/key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return w, dir
}

// sftpBatch runs sftp -b with the batch through the gateway.
func (w *world) sftpBatch(batch string) result {
	w.t.Helper()
	return w.run(strings.NewReader(batch), "sftp", append(w.args("sftp"), "-o", "User="+w.target(), "-b", "-", "127.0.0.1")...)
}

// closed reports whether one sftp.close event for path, with bytes moved
// in the direction dir ("bytes_read" or "bytes_written"), carries want as
// its sha256.
func (w *world) closed(path, dir string, want [32]byte) bool {
	w.t.Helper()
	sum := hex.EncodeToString(want[:])
	return len(w.events("sftp.close", func(e audit.Event) bool {
		return e.Detail["path"] == path && fmt.Sprint(e.Detail[dir]) != "0" && e.Detail["sha256"] == sum &&
			strings.HasSuffix(e.SessionID, "/ssh/session:0/sftp")
	})) == 1
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

func TestSFTPPolicyThroughOpenSSH(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret"], max_upload_size: 100000, allow_symlink: true}`)
	src := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, src, 50000)
	big := filepath.Join(w.dir, "big.bin")
	writeRandom(t, big, 300000)
	up, back := filepath.Join(dir, "pub", "up.bin"), filepath.Join(w.dir, "back.bin")
	stolen := filepath.Join(w.dir, "stolen")
	batch := strings.Join([]string{
		fmt.Sprintf("put %s %s", src, up),
		fmt.Sprintf("get %s %s", up, back),
		// Traversal into the denied folder, absolute and relative.
		fmt.Sprintf("-get %s/pub/../secret/key %s", dir, stolen),
		fmt.Sprintf("cd %s/pub", dir),
		fmt.Sprintf("-get ../secret/key %s", stolen),
		"-get ../secret//./key " + stolen,
		// A link to an allowed file is created and read; one to the
		// denied folder is refused.
		"symlink a.txt link.txt",
		fmt.Sprintf("get link.txt %s", filepath.Join(w.dir, "via-link")),
		"-symlink ../secret/key bad-link",
		// Over the size limit.
		fmt.Sprintf("-put %s big.bin", big),
	}, "\n") + "\n"
	r := w.sftpBatch(batch)
	if r.code != 0 {
		t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
	}
	if got := fileSum(t, back); got != want {
		t.Fatalf("round trip: got sha256 %x, want %x", got, want)
	}
	for _, d := range []string{"bytes_written", "bytes_read"} {
		if !w.closed(up, d, want) {
			t.Fatalf("got no sftp.close for %s with %s and sha256 %x", up, d, want)
		}
	}
	if exists(stolen) {
		t.Fatal("a file under deny_paths was downloaded")
	}
	if got, err := os.ReadFile(filepath.Join(w.dir, "via-link")); err != nil || string(got) != "content of pub/a.txt\n" {
		t.Fatalf("through the link: got %q, %v; want pub/a.txt's content", got, err)
	}
	if exists(filepath.Join(dir, "pub", "bad-link")) {
		t.Fatal("a link into deny_paths was created")
	}
	if fi, err := os.Stat(filepath.Join(dir, "pub", "big.bin")); err == nil && fi.Size() > 100000 {
		t.Fatalf("got %d bytes uploaded, want at most max_upload_size 100000", fi.Size())
	}
	// OpenSSH's get stats the file before it opens it: the three traversal
	// attempts are refused there.
	denied := func(e audit.Event) bool {
		return e.Verdict == audit.Reject && e.Rule == "services[ssh-in].policy.subsystems.sftp.deny_paths[0]"
	}
	for typ, n := range map[string]int{"sftp.stat": 3, "sftp.symlink": 1} {
		if evs := w.events(typ, denied); len(evs) != n {
			t.Errorf("got %d %s rejections by deny_paths[0], want %d: %+v", len(evs), typ, n, evs)
		}
	}
	if evs := w.events("sftp.write", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) == 0 || evs[0].Rule != "services[ssh-in].policy.subsystems.sftp.max_upload_size" {
		t.Fatalf("got %+v, want a write refused by max_upload_size", evs)
	}
}

func TestSFTPReadOnly(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{read_only: true}`)
	src := filepath.Join(w.dir, "up.bin")
	writeRandom(t, src, 10000)
	a := filepath.Join(dir, "pub", "a.txt")
	got := filepath.Join(w.dir, "a.txt")
	r := w.sftpBatch(fmt.Sprintf("-put %s %s/pub/up.bin\nget %s %s\n", src, dir, a, got))
	if r.code != 0 {
		t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
	}
	if exists(filepath.Join(dir, "pub", "up.bin")) {
		t.Fatal("put succeeded under read_only")
	}
	if !w.closed(a, "bytes_read", fileSum(t, a)) || fileSum(t, got) != fileSum(t, a) {
		t.Fatal("get under read_only: content or audited sha256 differ from the file")
	}
	if evs := w.events("sftp.open", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) != 1 || evs[0].Rule != "services[ssh-in].policy.subsystems.sftp.read_only" {
		t.Fatalf("got %+v, want one open refused by read_only", evs)
	}

	user := "User=" + w.target()
	// scp over SFTP (OpenSSH's default): upload refused, download works.
	if r := w.run(nil, "scp", append(w.args("scp"), "-o", user, src, "127.0.0.1:"+dir+"/pub/scp.bin")...); r.code == 0 || exists(filepath.Join(dir, "pub", "scp.bin")) {
		t.Fatalf("scp upload under read_only: got exit %d, want a refusal", r.code)
	}
	scpGot := filepath.Join(w.dir, "scp-a.txt")
	if r := w.run(nil, "scp", append(w.args("scp"), "-o", user, "127.0.0.1:"+a, scpGot)...); r.code != 0 || fileSum(t, scpGot) != fileSum(t, a) {
		t.Fatalf("scp download under read_only: exit %d: %s", r.code, r.stderr)
	}
	// scp -O runs "scp -t" by exec, stacked through the scp proxy: the
	// file is refused with a message, under the same read_only rule.
	r = w.run(nil, "scp", append(w.args("scp"), "-O", "-o", user, src, "127.0.0.1:"+dir+"/pub/scp-O.bin")...)
	if r.code == 0 || exists(filepath.Join(dir, "pub", "scp-O.bin")) || !strings.Contains(r.stderr, "up.bin: denied by policy") {
		t.Fatalf("scp -O under read_only: got exit %d, stderr %q; want a refusal naming up.bin", r.code, r.stderr)
	}
	evs := w.events("scp.upload", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(evs) != 1 || evs[0].Rule != "services[ssh-in].policy.subsystems.sftp.read_only" || !strings.HasSuffix(evs[0].SessionID, "/session:0/scp") {
		t.Fatalf("got %+v, want one scp.upload refused by the sftp read_only rule", evs)
	}
	// scp -O download works under read_only.
	scpO := filepath.Join(w.dir, "scp-O-a.txt")
	if r := w.run(nil, "scp", append(w.args("scp"), "-O", "-o", user, "127.0.0.1:"+a, scpO)...); r.code != 0 || fileSum(t, scpO) != fileSum(t, a) {
		t.Fatalf("scp -O download under read_only: exit %d: %s", r.code, r.stderr)
	}
	if !w.scpAudited("scp.download", a, fileSum(t, a)) {
		t.Fatalf("got no scp.download of %s with its sha256", a)
	}
}

func TestSCPLegacyWhenSFTPPermitsAll(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{}`)
	src := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, src, 100000)
	dst := filepath.Join(dir, "pub", "scp-O.bin")
	if r := w.run(nil, "scp", append(w.args("scp"), "-O", "-o", "User="+w.target(), src, "127.0.0.1:"+dst)...); r.code != 0 {
		t.Fatalf("scp -O: exit %d: %s", r.code, r.stderr)
	}
	if got := fileSum(t, dst); got != want {
		t.Fatalf("scp -O: got sha256 %x, want %x", got, want)
	}
}

// TestTransferThroughExecRefused tries to reach a file-transfer server by
// exec past a read_only sftp policy, hiding it from a split on quotes:
// quoting, a glob, a variable, and rsync. Each is refused with the sftp
// rule, nothing is written, and a plain command still runs.
func TestTransferThroughExecRefused(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "rsync")
	w, dir := sftpWorld(t, `{read_only: true}`)
	pub := filepath.Join(dir, "pub")
	sftpServer := sshtest.RequireTool(t, "sftp-server")
	const rule = "services[ssh-in].policy.subsystems.sftp.read_only"

	// An sftp client told to exec a server path with a glob in it.
	glob := sftpServer[:len(sftpServer)-1] + "[" + sftpServer[len(sftpServer)-1:] + "]"
	r := w.run(strings.NewReader("put /etc/hostname "+pub+"/glob\n"), "sftp",
		append(w.args("sftp"), "-o", "User="+w.target(), "-s", glob, "-b", "-", "127.0.0.1")...)
	if r.code == 0 {
		t.Errorf("sftp -s %q: got exit 0, want a refusal (stderr %q)", glob, r.stderr)
	}
	for _, cmd := range []string{
		`sc""p -t ` + pub,
		`s\cp -t ` + pub,
		"s=" + filepath.Base(sftpServer) + "; " + filepath.Dir(sftpServer) + "/$s",
		"true && rsync --server -logDtpre.iLsfxC . " + pub + "/",
	} {
		if r := w.ssh(nil, cmd); r.code != 255 || !strings.Contains(r.stderr, "denied by policy") {
			t.Errorf("%q: got exit %d stderr %q, want 255 and a denial", cmd, r.code, r.stderr)
		}
	}
	// rsync as a client runs it: refused, and nothing arrives.
	src := filepath.Join(w.dir, "up.bin")
	writeRandom(t, src, 4096)
	sshCmd := "ssh " + strings.Join(w.args("ssh"), " ") + " -o User=" + w.target()
	if r := w.run(nil, "rsync", "-e", sshCmd, src, "127.0.0.1:"+pub+"/"); r.code == 0 {
		t.Errorf("rsync upload under read_only: got exit 0, want a refusal")
	}
	if entries, _ := os.ReadDir(pub); len(entries) != 1 {
		t.Fatalf("got %d entries in pub, want only a.txt: a refused transfer wrote", len(entries))
	}
	var evs []audit.Event
	// The last refusal may still be on its way to the store.
	for deadline := time.Now().Add(5 * time.Second); len(evs) < 6 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		evs = w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	}
	if len(evs) != 6 {
		t.Fatalf("got %d refused exec events, want 6: %+v", len(evs), evs)
	}
	for _, e := range evs {
		if e.Rule != rule {
			t.Errorf("%v: got rule %q, want %q", e.Detail["command"], e.Rule, rule)
		}
	}
	if r := w.ssh(nil, "cat "+filepath.Join(pub, "a.txt")); r.code != 0 || r.stdout != "content of pub/a.txt\n" {
		t.Errorf("cat: got exit %d stdout %q, want the file", r.code, r.stdout)
	}
}
