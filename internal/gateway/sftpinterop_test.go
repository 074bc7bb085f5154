package gateway

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// The SFTP interop matrix: file-transfer clients no one here wrote, each
// through the gateway's SFTP proxy (under path rules, with links allowed)
// to upstream servers no one here wrote. Every client puts a file and gets
// it back intact, makes a folder and renames it, and makes a link where it
// can; the link must land with the right ends and the audit must name
// link and target as the server applied them.

// sftpOps is what one client is asked to do in folder d of the target:
// put src as d/up.bin, get it back as back, mkdir d/newdir, rename it to
// d/renamed and, when it can, link d/link to d/up.bin.
type sftpOps struct {
	src, back, d string
}

func (o sftpOps) up() string     { return filepath.Join(o.d, "up.bin") }
func (o sftpOps) link() string   { return filepath.Join(o.d, "link") }
func (o sftpOps) newdir() string { return filepath.Join(o.d, "newdir") }
func (o sftpOps) moved() string  { return filepath.Join(o.d, "renamed") }

// sftpClient drives one client through the ops; links says whether it can
// make a link.
type sftpClient struct {
	name  string
	links bool
	run   func(t *testing.T, w *world, o sftpOps) result
}

// pySFTP does the ops with paramiko or asyncssh. Arguments: port, user,
// key, known_hosts, src, back, folder.
const paramikoOps = `
import os, socket, sys, paramiko
port, user, key, kh, src, back, d = int(sys.argv[1]), *sys.argv[2:]
sock = socket.create_connection(("127.0.0.1", port), source_address=("` + clientAddr + `", 0))
c = paramiko.SSHClient()
c.load_host_keys(kh)
c.set_missing_host_key_policy(paramiko.RejectPolicy())
c.connect("127.0.0.1", port=port, username=user, key_filename=key,
          look_for_keys=False, allow_agent=False, sock=sock, timeout=30)
s = c.open_sftp()
s.put(src, d + "/up.bin")
s.get(d + "/up.bin", back)
s.mkdir(d + "/newdir")
s.rename(d + "/newdir", d + "/renamed")
s.symlink(d + "/up.bin", d + "/link")
c.close()
`

const asyncsshOps = `
import asyncio, sys, asyncssh
port, user, key, kh, src, back, d = int(sys.argv[1]), *sys.argv[2:]
async def main():
    async with asyncssh.connect("127.0.0.1", port, username=user, client_keys=[key], known_hosts=kh,
                                local_addr=("` + clientAddr + `", 0)) as conn:
        async with conn.start_sftp_client() as s:
            await s.put(src, d + "/up.bin")
            await s.get(d + "/up.bin", back)
            await s.mkdir(d + "/newdir")
            await s.rename(d + "/newdir", d + "/renamed")
            await s.symlink(d + "/up.bin", d + "/link")
asyncio.run(main())
`

// gatewayKnownHosts writes a known_hosts file for the gateway.
func (w *world) gatewayKnownHosts(t *testing.T) string {
	t.Helper()
	kh := filepath.Join(w.dir, "gateway_known_hosts")
	if err := os.WriteFile(kh, []byte(sshtest.KnownHostsLine(w.gw.Addr("ssh-in").String(), w.hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return kh
}

// python runs a script with Debian's Python once module imports.
func (w *world) python(t *testing.T, module, pkg, name, script string, args ...string) result {
	t.Helper()
	py := pythonWith(t, module, pkg)
	f := filepath.Join(w.dir, name+".py")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	return w.run(nil, py, append([]string{f}, args...)...)
}

// puttyKey converts alice's key for PuTTY's tools.
func (w *world) puttyKey(t *testing.T) string {
	t.Helper()
	ppk := filepath.Join(w.dir, "alice.ppk")
	if _, err := os.Stat(ppk); err == nil {
		return ppk
	}
	puttygen := sshtest.RequireTool(t, "puttygen")
	if out, err := exec.Command(puttygen, w.aliceKey, "-O", "private", "-o", ppk).CombinedOutput(); err != nil {
		t.Fatalf("puttygen: %v\n%s", err, out)
	}
	return ppk
}

// puttyArgs are the options PuTTY's tools reach the gateway with. They
// cannot bind a source address: the world lets the servers zone in.
func (w *world) puttyArgs(t *testing.T) []string {
	return []string{"-batch", "-noagent", "-P", strconv.Itoa(w.port), "-l", w.target(), "-i", w.puttyKey(t),
		"-hostkey", ssh.FingerprintSHA256(w.hostKey)}
}

// sftpClients are the clients of the matrix.
var sftpClients = []sftpClient{
	{"openssh", true, func(t *testing.T, w *world, o sftpOps) result {
		return w.sftpBatch(strings.Join([]string{
			"put " + o.src + " " + o.up(), "get " + o.up() + " " + o.back,
			"mkdir " + o.newdir(), "rename " + o.newdir() + " " + o.moved(),
			"symlink " + o.up() + " " + o.link(),
		}, "\n") + "\n")
	}},
	{"lftp", true, func(t *testing.T, w *world, o sftpOps) result {
		lftp := sshtest.RequireTool(t, "lftp")
		// lftp runs ssh as "PROGRAM [-p PORT] [-l USER] HOST -s sftp".
		var sshArgs []string
		for a := w.args("ssh"); len(a) > 0; a = a[1:] {
			if a[0] == "-p" {
				a = a[1:]
				continue
			}
			sshArgs = append(sshArgs, a[0])
		}
		script := strings.Join([]string{
			`set sftp:connect-program "ssh -a -x ` + strings.Join(sshArgs, " ") + `"`,
			`set net:max-retries 1`,
			`open -u "` + w.target() + `," -p ` + strconv.Itoa(w.port) + ` sftp://127.0.0.1`,
			"put " + o.src + " -o " + o.up(), "get " + o.up() + " -o " + o.back,
			"mkdir " + o.newdir(), "mv " + o.newdir() + " " + o.moved(),
			"ln -s " + o.up() + " " + o.link(),
		}, "\n") + "\n"
		f := filepath.Join(w.dir, "lftp-script")
		if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		return w.run(nil, lftp, "-f", f)
	}},
	{"curl", true, func(t *testing.T, w *world, o sftpOps) result {
		if r := w.curl(t, "sftp", o.up(), "-T", o.src); r.code != 0 {
			return r
		}
		if r := w.curl(t, "sftp", o.up(), "-o", o.back); r.code != 0 {
			return r
		}
		return w.curl(t, "sftp", o.d+"/", "-o", "/dev/null",
			"-Q", "mkdir "+o.newdir(), "-Q", "rename "+o.newdir()+" "+o.moved(),
			"-Q", "symlink "+o.up()+" "+o.link())
	}},
	{"psftp", false, func(t *testing.T, w *world, o sftpOps) result {
		psftp := sshtest.RequireTool(t, "psftp")
		batch := filepath.Join(w.dir, "psftp-batch")
		if err := os.WriteFile(batch, []byte(strings.Join([]string{
			"put " + o.src + " " + o.up(), "get " + o.up() + " " + o.back,
			"mkdir " + o.newdir(), "mv " + o.newdir() + " " + o.moved(),
		}, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return w.run(nil, psftp, append(w.puttyArgs(t), "-b", batch, "127.0.0.1")...)
	}},
	{"pscp", false, func(t *testing.T, w *world, o sftpOps) result {
		pscp := sshtest.RequireTool(t, "pscp")
		if r := w.run(nil, pscp, append(w.puttyArgs(t), "-sftp", o.src, "127.0.0.1:"+o.up())...); r.code != 0 {
			return r
		}
		if r := w.run(nil, pscp, append(w.puttyArgs(t), "-sftp", "127.0.0.1:"+o.up(), o.back)...); r.code != 0 {
			return r
		}
		// pscp makes no folders and renames nothing: done here so that
		// the checks after it stay the same for every client.
		if err := os.Mkdir(o.moved(), 0o755); err != nil {
			t.Fatal(err)
		}
		return r0
	}},
	{"paramiko", true, func(t *testing.T, w *world, o sftpOps) result {
		return w.python(t, "paramiko", "python3-paramiko", "paramiko_ops", paramikoOps,
			strconv.Itoa(w.port), w.target(), w.aliceKey, w.gatewayKnownHosts(t), o.src, o.back, o.d)
	}},
	{"asyncssh", true, func(t *testing.T, w *world, o sftpOps) result {
		return w.python(t, "asyncssh", "python3-asyncssh", "asyncssh_ops", asyncsshOps,
			strconv.Itoa(w.port), w.target(), w.aliceKey, w.gatewayKnownHosts(t), o.src, o.back, o.d)
	}},
}

// r0 is a client run that succeeded without output.
var r0 = result{}

// srcSize is the size of the file each client puts and gets: a few MiB
// and an odd tail, so that transfers take many requests.
const srcSize = 3<<20 + 12345

// sftpUpstreams are the servers of the matrix.
var sftpUpstreams = []struct {
	name  string
	start func(t *testing.T, dir string, key ssh.PublicKey) *sshtest.Sshd
}{
	{"openssh", nil},
	{"dropbear", startDropbear},
	{"asyncssh", startAsyncsshServer},
}

// TestSFTPInterop runs every client of the matrix against every upstream.
func TestSFTPInterop(t *testing.T) {
	for _, up := range sftpUpstreams {
		t.Run(up.name, func(t *testing.T) {
			sshtest.RequireTool(t, "sftp")
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w := newWorld(t, worldOptions{startTarget: up.start, clientZones: "[office, servers]", policy: `      exec: {allow: [".*"]}
      subsystems:
        sftp: {allow_paths: ["` + dir + `"], deny_paths: ["` + dir + `/*/secret"], allow_symlink: true}
`})
			src := filepath.Join(w.dir, "src.bin")
			want := writeRandom(t, src, srcSize)
			for _, c := range sftpClients {
				t.Run(c.name, func(t *testing.T) {
					o := sftpOps{src: src, back: filepath.Join(t.TempDir(), "back.bin"), d: filepath.Join(dir, c.name)}
					if err := os.MkdirAll(filepath.Join(o.d, "secret"), 0o755); err != nil {
						t.Fatal(err)
					}
					if r := c.run(t, w, o); r.code != 0 {
						t.Fatalf("exit %d: stdout %q stderr %q; gateway refusals:%s", r.code, r.stdout, r.stderr, w.refusals())
					}
					if got := fileSum(t, o.up()); got != want {
						t.Errorf("put: got sha256 %x on the target, want %x", got, want)
					}
					if got := fileSum(t, o.back); got != want {
						t.Errorf("get: got sha256 %x, want %x", got, want)
					}
					// Both went through the SFTP proxy, which audited them.
					for _, dir := range []string{"bytes_written", "bytes_read"} {
						if evs := w.events("sftp.close", func(e audit.Event) bool {
							return e.Detail["path"] == o.up() && e.Detail[dir] == float64(srcSize) &&
								e.Detail["sha256"] == hex.EncodeToString(want[:]) && strings.HasSuffix(e.SessionID, "/sftp")
						}); len(evs) != 1 {
							t.Errorf("got %d sftp.close events of %s with %s %d and its sha256, want 1", len(evs), o.up(), dir, srcSize)
						}
					}
					if st, err := os.Stat(o.moved()); err != nil || !st.IsDir() || exists(o.newdir()) {
						t.Errorf("mkdir and rename: %s is there: %v, %s is there: %v; want only the renamed one", o.moved(), err, o.newdir(), exists(o.newdir()))
					}
					if !c.links {
						return
					}
					if got, err := os.Readlink(o.link()); err != nil || got != o.up() {
						t.Fatalf("got a link to %q, %v; want %s -> %s", got, err, o.link(), o.up())
					}
					if evs := w.events("sftp.symlink", func(e audit.Event) bool {
						return e.Verdict == audit.Accept && e.Detail["path"] == o.link() && e.Detail["target"] == o.up()
					}); len(evs) != 1 {
						t.Errorf("got %d sftp.symlink events with path %s and target %s, want 1", len(evs), o.link(), o.up())
					}
				})
			}
		})
	}
}

// startDropbear runs dropbear on a loopback port, with the sftp-server of
// OpenSSH (Debian's dropbear runs /usr/lib/sftp-server). dropbear reads
// the login user's ~/.ssh/authorized_keys and has no option to read
// another: it runs in a mount namespace of its own, where a temporary
// folder is mounted over that home folder, which needs root.
func startDropbear(t *testing.T, dir string, key ssh.PublicKey) *sshtest.Sshd {
	t.Helper()
	dropbear := sshtest.RequireTool(t, "dropbear")
	dropbearkey := sshtest.RequireTool(t, "dropbearkey")
	unshare := sshtest.RequireTool(t, "unshare")
	sshtest.RequireTool(t, "sftp-server")
	if os.Geteuid() != 0 {
		t.Skip("dropbear as the upstream needs root (a mount namespace over the login's home folder)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "dropbear_ed25519_host_key")
	if out, err := exec.Command(dropbearkey, "-t", "ed25519", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("dropbearkey: %v\n%s", err, out)
	}
	out, err := exec.Command(dropbearkey, "-y", "-f", hostKey).Output()
	if err != nil {
		t.Fatalf("dropbearkey -y: %v", err)
	}
	var pub ssh.PublicKey
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "ssh-ed25519 ") {
			if pub, _, _, _, err = ssh.ParseAuthorizedKey([]byte(l)); err != nil {
				t.Fatalf("dropbear host key %q: %v", l, err)
			}
		}
	}
	if pub == nil {
		t.Fatalf("no host key in dropbearkey -y's output %q", out)
	}
	home := filepath.Join(dir, "dropbear-home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "authorized_keys"), ssh.MarshalAuthorizedKey(key), 0o600); err != nil {
		t.Fatal(err)
	}
	port := sshtest.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount --bind "$1" "$2" && exec "$3" -F -E -s -m -p "$4" -r "$5" -P "$6"`, "sh",
		home, u.HomeDir, dropbear, addr, hostKey, filepath.Join(dir, "dropbear.pid"))
	log, err := os.Create(filepath.Join(dir, "dropbear.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("dropbear: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		log.Close()
	})
	if err := waitForBanner(addr, exited); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("dropbear: %v\n%s", err, b)
	}
	return &sshtest.Sshd{Addr: addr, Port: port, Dir: dir, HostKey: pub}
}

// asyncsshServer serves SFTP on the local file system with asyncssh on a
// loopback port, which it prints. Arguments: host key, authorized keys.
const asyncsshServer = `
import asyncio, sys, asyncssh
async def main():
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[sys.argv[1]],
                                   authorized_client_keys=sys.argv[2], sftp_factory=True)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
`

// startAsyncsshServer runs an asyncssh SFTP server on a loopback port.
func startAsyncsshServer(t *testing.T, dir string, key ssh.PublicKey) *sshtest.Sshd {
	t.Helper()
	py := pythonWith(t, "asyncssh", "python3-asyncssh")
	hostSigner, hostKey := sshtest.NewKey(t, dir, "asyncssh_host_ed25519")
	authorized := filepath.Join(dir, "asyncssh_authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(key), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "asyncssh_server.py")
	if err := os.WriteFile(script, []byte(asyncsshServer), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, hostKey, authorized)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "asyncssh_server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatalf("asyncssh server: %v", err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		log.Close()
	})
	var port int
	select {
	case l := <-lines:
		if port, err = strconv.Atoi(l); err != nil {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("asyncssh server printed %q, want its port\n%s", l, b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("asyncssh server: no port within 30 s")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return &sshtest.Sshd{Addr: addr, Port: port, Dir: dir, HostKey: hostSigner.PublicKey()}
}

// waitForBanner polls addr until it sends an SSH identification string
// (RFC 4253 §4.2), the server exits, or 20 s pass.
func waitForBanner(addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited before accepting connections")
		default:
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-") {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no banner within 20 s (last error: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
