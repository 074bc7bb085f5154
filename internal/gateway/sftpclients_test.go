package gateway

import (
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	t.Parallel()
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

// sftpPacket encodes one SFTP packet (draft-ietf-secsh-filexfer-02 §3)
// of type typ whose body is fields, each already encoded.
func sftpPacket(typ byte, fields ...[]byte) []byte {
	b := []byte{0, 0, 0, 0, typ}
	for _, f := range fields {
		b = append(b, f...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func sftpU32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func sftpString(s string) []byte { return append(sftpU32(uint32(len(s))), s...) }

// readSFTPPacket reads one SFTP packet's body (without its length field).
func readSFTPPacket(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// TestSFTPPipeliningClientBoundsMemory: clients that pipeline READ
// requests for 32 KiB each and never read a reply leave the gateway's heap
// within a bound: the proxy stops reading a channel's requests once
// max_outstanding are unanswered, and SSH flow control stops the client.
func TestSFTPPipeliningClientBoundsMemory(t *testing.T) {
	const clients = 5
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret"]}`)
	big := filepath.Join(dir, "pub", "big.bin")
	writeRandom(t, big, 1<<20)
	before := heapInUse()
	sent := make([]atomic.Int64, clients)
	var wg sync.WaitGroup
	for i := range clients {
		client := w.dial(t, w.aliceConfig(t))
		defer client.Close()
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		in, err := sess.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := sess.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.RequestSubsystem("sftp"); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Write(sftpPacket(1, sftpU32(3))); err != nil {
			t.Fatal(err)
		}
		if _, err := readSFTPPacket(out); err != nil {
			t.Fatalf("VERSION: %v", err)
		}
		// OPEN big.bin for reading, then READ it at offset 0 again and
		// again, each request 29 bytes asking for a 32 KiB reply.
		if _, err := in.Write(sftpPacket(3, sftpU32(1), sftpString(big), sftpU32(1), sftpU32(0))); err != nil {
			t.Fatal(err)
		}
		resp, err := readSFTPPacket(out)
		if err != nil || resp[0] != 102 {
			t.Fatalf("OPEN: got %x, %v; want a HANDLE", resp, err)
		}
		handle := string(resp[9:])
		wg.Go(func() {
			for id := uint32(2); ; id++ {
				pkt := sftpPacket(5, sftpU32(id), sftpString(handle), make([]byte, 8), sftpU32(32<<10))
				if _, err := in.Write(pkt); err != nil {
					return
				}
				sent[i].Add(1)
			}
		})
		t.Cleanup(func() { client.Close(); wg.Wait() })
	}
	total := func() (n int64) {
		for i := range sent {
			n += sent[i].Load()
		}
		return n
	}
	// The clients are stopped, by the proxy's max_outstanding and then
	// by the SSH window of their channel: wait until none has sent for
	// 3 s (the machine may be loaded), noting the heap's peak.
	start := time.Now()
	var peak uint64
	last, still := total(), time.Now()
	for time.Since(still) < 3*time.Second {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("the clients were not stopped: %d requests sent in %v", total(), time.Since(start))
		}
		time.Sleep(500 * time.Millisecond)
		peak = max(peak, heapInUse())
		if n := total(); n != last {
			last, still = n, time.Now()
		}
	}
	grown := int64(peak) - int64(before)
	t.Logf("%d clients pipelining were stopped after %d requests in %v; gateway heap %d KiB before, peak %d KiB (grew %d KiB, %d KiB a client); RSS %d KiB",
		clients, last, still.Sub(start).Round(time.Millisecond), before>>10, peak>>10, grown>>10, grown>>10/clients, rssKiB(t))
	// Per client: the SSH window of the client's channel in the gateway
	// (2 MiB of 29-byte packets, each held in its own buffer), the proxy's
	// buffers and max_outstanding pending requests; the test's own client
	// adds a 2 MiB window of replies. See docs/operations.md.
	if limit := int64(clients) * 16 << 20; grown > limit {
		t.Fatalf("gateway heap grew by %d MiB, want at most %d MiB", grown>>20, limit>>20)
	}
	w.stillServes(t)
}

// rssKiB returns the test process's resident set size (VmRSS), 0 where
// /proc is not there.
func rssKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// paramikoSymlink makes a link with paramiko's SFTP client. Arguments:
// port, user, key, known_hosts, target, link.
const paramikoSymlink = `
import socket, sys, paramiko
port, user, key, kh, target, link = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
sock = socket.create_connection(("127.0.0.1", port), source_address=("` + clientAddr + `", 0))
c = paramiko.SSHClient()
c.load_host_keys(kh)
c.set_missing_host_key_policy(paramiko.RejectPolicy())
c.connect("127.0.0.1", port=port, username=user, key_filename=key,
          look_for_keys=False, allow_agent=False, sock=sock)
c.open_sftp().symlink(target, link)
c.close()
`

// asyncsshSymlink makes a link with asyncssh's SFTP client. Arguments:
// port, user, key, known_hosts, target, link.
const asyncsshSymlink = `
import asyncio, sys, asyncssh
port, user, key, kh, target, link = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
async def main():
    async with asyncssh.connect("127.0.0.1", port, username=user, client_keys=[key], known_hosts=kh,
                                local_addr=("` + clientAddr + `", 0)) as conn:
        async with conn.start_sftp_client() as sftp:
            await sftp.symlink(target, link)
asyncio.run(main())
`

// pythonWith returns Debian's Python interpreter when it can import
// module (installed by the Debian package pkg); without it the test fails
// under SLUICE_INTEROP=require and is skipped otherwise.
func pythonWith(t *testing.T, module, pkg string) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = sshtest.RequireTool(t, "python3")
	}
	if err := exec.Command(py, "-c", "import "+module).Run(); err != nil {
		msg := module + " is not installed for " + py + " (apt-get install " + pkg + ")"
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatalf("SLUICE_INTEROP=require: %s", msg)
		}
		t.Skip(msg)
	}
	return py
}

// TestSFTPSymlinkEnds: links made through the gateway by OpenSSH's sftp
// (which sends the target first), paramiko (likewise) and asyncssh (which
// sends the link first to a server that does not say it is OpenSSH) land
// on an OpenSSH target with the right ends, and the audit names them as
// the server applied them.
func TestSFTPSymlinkEnds(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{deny_paths: ["%s/secret"], allow_symlink: true}`)
	target := filepath.Join(dir, "pub", "a.txt")
	kh := filepath.Join(w.dir, "gateway_known_hosts")
	if err := os.WriteFile(kh, []byte(sshtest.KnownHostsLine(w.gw.Addr("ssh-in").String(), w.hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clients := []struct {
		name string
		make func(link string) result
	}{
		{"openssh", func(link string) result { return w.sftpBatch("symlink " + target + " " + link + "\n") }},
		{"paramiko", func(link string) result {
			script := filepath.Join(w.dir, "paramiko_symlink.py")
			if err := os.WriteFile(script, []byte(paramikoSymlink), 0o600); err != nil {
				t.Fatal(err)
			}
			return w.run(nil, pythonWith(t, "paramiko", "python3-paramiko"), script, strconv.Itoa(w.port), w.target(), w.aliceKey, kh, target, link)
		}},
		{"asyncssh", func(link string) result {
			script := filepath.Join(w.dir, "asyncssh_symlink.py")
			if err := os.WriteFile(script, []byte(asyncsshSymlink), 0o600); err != nil {
				t.Fatal(err)
			}
			return w.run(nil, pythonWith(t, "asyncssh", "python3-asyncssh"), script, strconv.Itoa(w.port), w.target(), w.aliceKey, kh, target, link)
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			link := filepath.Join(dir, "pub", c.name+"-link")
			if r := c.make(link); r.code != 0 {
				t.Fatalf("%s: exit %d: %s", c.name, r.code, r.stderr)
			}
			if got, err := os.Readlink(link); err != nil || got != target {
				t.Fatalf("%s: got a link to %q, %v; want %s -> %s", link, got, err, link, target)
			}
			if evs := w.events("sftp.symlink", func(e audit.Event) bool {
				return e.Verdict == audit.Accept && e.Detail["path"] == link && e.Detail["target"] == target
			}); len(evs) != 1 {
				t.Fatalf("got %d sftp.symlink events with path %s and target %s, want 1", len(evs), link, target)
			}
		})
	}
}

// TestSFTPCanonicalPaths: with OpenSSH's sftp and sshd, each way around
// path rules through links, renames and path answers is refused and
// audited with its rule, while ordinary work goes on. The tree:
// export/alice/.ssh/authorized_keys (denied by "export/*/.ssh"),
// export/pub/a.txt, and two links the client did not make:
// export/pub/pre -> ../alice and export/pub/out -> the folder above
// export (outside allow_paths).
func TestSFTPCanonicalPaths(t *testing.T) {
	t.Parallel()
	w, dir := sftpWorld(t, `{allow_paths: ["%s/export"], deny_paths: ["%s/export/*/.ssh"], allow_symlink: true}`)
	ex := filepath.Join(dir, "export")
	keys := filepath.Join(ex, "alice", ".ssh", "authorized_keys")
	for _, d := range []string{filepath.Dir(keys), filepath.Join(ex, "pub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for f, content := range map[string]string{keys: "ssh-ed25519 AAAA the-real-key\n", filepath.Join(ex, "pub", "a.txt"): "public\n"} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"pre": "../alice", "out": dir} {
		if err := os.Symlink(target, filepath.Join(ex, "pub", link)); err != nil {
			t.Fatal(err)
		}
	}
	evil := filepath.Join(w.dir, "evil")
	if err := os.WriteFile(evil, []byte("ssh-ed25519 AAAA the-attackers-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(w.dir, "up.bin")
	want := writeRandom(t, up, 100000)
	stolen := filepath.Join(w.dir, "stolen")
	batch := strings.Join([]string{
		"cd " + ex + "/pub",
		// Legitimate work.
		"get a.txt " + filepath.Join(w.dir, "a.txt"),
		"put " + up + " up.bin",
		"rename up.bin up2.bin",
		"symlink a.txt a-link",
		"mkdir newdir",
		"rename newdir newdir2",
		// A link to an allowed parent of the denied folder.
		"-symlink " + ex + "/alice al",
		"-symlink ../alice al2",
		// Through a link that was already there.
		"-get pre/.ssh/authorized_keys " + stolen,
		"-put " + evil + " pre/.ssh/authorized_keys",
		// Moving the denied subtree, or a tree to where it could be.
		"-rename " + ex + "/alice " + ex + "/pub/x",
		"-rename newdir2 " + ex + "/bob",
		// Where a link outside allow_paths leads.
		"-cd out",
		"-ls out/",
	}, "\n") + "\n"
	r := w.sftpBatch(batch)
	if r.code != 0 {
		t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
	}
	t.Logf("sftp said: %s", r.stderr)
	// What should have worked did.
	if got := fileSum(t, filepath.Join(ex, "pub", "up2.bin")); got != want {
		t.Fatalf("upload renamed: got sha256 %x, want %x", got, want)
	}
	if got, err := os.ReadFile(filepath.Join(w.dir, "a.txt")); err != nil || string(got) != "public\n" {
		t.Fatalf("download: got %q, %v", got, err)
	}
	if got, err := os.Readlink(filepath.Join(ex, "pub", "a-link")); err != nil || got != "a.txt" {
		t.Fatalf("a link to an allowed file: got %q, %v; want a.txt", got, err)
	}
	if !exists(filepath.Join(ex, "pub", "newdir2")) {
		t.Fatal("mkdir and rename inside pub did not happen")
	}
	// What should not have, did not.
	for _, p := range []string{filepath.Join(ex, "pub", "al"), filepath.Join(ex, "pub", "al2"), stolen, filepath.Join(ex, "pub", "x"), filepath.Join(ex, "bob")} {
		if exists(p) {
			t.Errorf("%s exists: a bypass worked", p)
		}
	}
	if got, err := os.ReadFile(keys); err != nil || string(got) != "ssh-ed25519 AAAA the-real-key\n" {
		t.Errorf("authorized_keys: got %q, %v; want it untouched", got, err)
	}
	rule := func(key string) func(audit.Event) bool {
		return func(e audit.Event) bool {
			return e.Verdict == audit.Reject && e.Rule == "services[ssh-in].policy.subsystems.sftp."+key
		}
	}
	for _, c := range []struct {
		typ, key string
		n        int
	}{
		{"sftp.symlink", "deny_paths[0]", 2},
		{"sftp.stat", "deny_paths[0]", 1},
		{"sftp.open", "deny_paths[0]", 1},
		{"sftp.rename", "deny_paths[0]", 2},
		{"sftp.realpath", "allow_paths", 1},
	} {
		if evs := w.events(c.typ, rule(c.key)); len(evs) < c.n {
			t.Errorf("got %d %s refused by %s, want at least %d", len(evs), c.typ, c.key, c.n)
		}
	}
	if evs := w.events("sftp.realpath", func(e audit.Event) bool { return e.Verdict == audit.Reject }); len(evs) > 0 {
		t.Logf("realpath refusal: %+v", evs[0])
	}
}
