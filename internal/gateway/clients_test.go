package gateway

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// paramikoScript logs in to the gateway with paramiko, runs a command and
// prints its output and exit status. Arguments: port, user, key, known_hosts.
const paramikoScript = `
import socket, sys, paramiko
port, user, key, kh = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sock = socket.create_connection(("127.0.0.1", port), source_address=("` + clientAddr + `", 0))
c = paramiko.SSHClient()
c.load_host_keys(kh)
c.set_missing_host_key_policy(paramiko.RejectPolicy())
c.connect("127.0.0.1", port=port, username=user, key_filename=key,
          look_for_keys=False, allow_agent=False, sock=sock)
_, out, err = c.exec_command("echo paramiko; echo to-stderr >&2; exit 5")
print(out.read().decode().strip(), err.read().decode().strip(), out.channel.recv_exit_status())
c.close()
`

func TestParamikoClient(t *testing.T) {
	t.Parallel()
	py := paramikoPython(t)
	w := newWorld(t, worldOptions{})
	script, kh := w.paramikoFiles(t, paramikoScript)
	r := w.run(nil, py, script, strconv.Itoa(w.port), w.target(), w.aliceKey, kh)
	if r.code != 0 {
		t.Fatalf("paramiko: exit %d: %s", r.code, r.stderr)
	}
	if got, want := strings.TrimSpace(r.stdout), "paramiko to-stderr 5"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// paramikoPython returns the Python interpreter that has paramiko: Debian's
// python3-paramiko belongs to Debian's interpreter, which may not be the
// python3 first on PATH. Without paramiko the test fails under
// SLUICE_INTEROP=require and is skipped otherwise.
func paramikoPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = sshtest.RequireTool(t, "python3")
	}
	if err := exec.Command(py, "-c", "import paramiko").Run(); err != nil {
		msg := "paramiko is not installed for " + py + " (apt-get install python3-paramiko)"
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatalf("SLUICE_INTEROP=require: %s", msg)
		}
		t.Skip(msg)
	}
	return py
}

// paramikoFiles writes a paramiko script and a known_hosts file holding the
// gateway's host key to the world's folder, and returns their paths.
func (w *world) paramikoFiles(t *testing.T, source string) (script, knownHosts string) {
	t.Helper()
	script = filepath.Join(w.dir, "client.py")
	if err := os.WriteFile(script, []byte(source), 0o600); err != nil {
		t.Fatal(err)
	}
	knownHosts = filepath.Join(w.dir, "gateway_known_hosts")
	if err := os.WriteFile(knownHosts, []byte(sshtest.KnownHostsLine(w.gw.Addr("ssh-in").String(), w.hostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return script, knownHosts
}

// TestStalledClientBoundsMemory: a client that stops reading while the
// target sends 1 GiB makes the gateway hold at most about a channel window,
// not the whole stream.
func TestStalledClientBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends up to 1 GiB")
	}
	w := newWorld(t, worldOptions{})
	data, err := os.ReadFile(w.aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	client := w.dial(t, sshtest.ClientConfig(w.target(), alice, w.hostKey))
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("head -c 1073741824 /dev/zero"); err != nil {
		t.Fatal(err)
	}
	// Read a little, then stop reading for a while.
	if _, err := io.ReadFull(stdout, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	before := heapInUse()
	time.Sleep(3 * time.Second)
	after := heapInUse()
	grown := int64(after) - int64(before)
	t.Logf("gateway heap while the client is stalled: %d KiB before, %d KiB after 3s (grew %d KiB)", before>>10, after>>10, grown>>10)
	// The client's and gateway's windows are 2 MiB each (x/crypto/ssh
	// channelWindowSize); allow both plus buffers, far below the 1 GiB sent.
	if grown > 16<<20 {
		t.Fatalf("gateway heap grew by %d MiB while the client was stalled, want at most a few windows", grown>>20)
	}
	// Reading again drains the rest intact.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() { <-ctx.Done(); sess.Close() }()
	n, err := io.Copy(io.Discard, stdout)
	if err != nil || n != 1<<30-1<<20 {
		t.Fatalf("after resuming: read %d bytes, %v; want %d", n, err, 1<<30-1<<20)
	}
}
