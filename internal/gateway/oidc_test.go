package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/oidc/oidctest"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// paramikoSignOn logs in to the gateway with paramiko's auth_interactive,
// printing each prompt it is shown as a JSON line, then runs a command.
// Arguments: port, login name, known_hosts.
const paramikoSignOn = `
import json, socket, sys, paramiko
port, user, kh = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sock = socket.create_connection(("127.0.0.1", port), source_address=("` + clientAddr + `", 0))
t = paramiko.Transport(sock)
t.start_client(timeout=30)
known = paramiko.HostKeys(kh).lookup("[127.0.0.1]:%d" % port)
key = t.get_remote_server_key()
if not known or known.get(key.get_name()) != key:
    sys.exit("unknown host key")
def answer(title, instruction, prompts):
    print(json.dumps({"instruction": instruction, "prompts": [p for p, _ in prompts]}), flush=True)
    return [""] * len(prompts)
try:
    t.auth_interactive(user, answer)
except paramiko.AuthenticationException as e:
    print(json.dumps({"refused": str(e)}), flush=True)
    sys.exit(3)
ch = t.open_session()
ch.exec_command("echo signed-on")
out = ch.makefile().read().decode().strip()
print(json.dumps({"out": out, "status": ch.recv_exit_status()}), flush=True)
t.close()
`

// asyncsshSignOn is paramikoSignOn with asyncssh.
const asyncsshSignOn = `
import asyncio, json, sys, asyncssh
port, user, kh = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class Client(asyncssh.SSHClient):
    def kbdint_auth_requested(self):
        return ""
    def kbdint_challenge_received(self, name, instruction, lang, prompts):
        print(json.dumps({"instruction": instruction, "prompts": [p for p, _ in prompts]}), flush=True)
        return [""] * len(prompts)
async def main():
    try:
        conn, _ = await asyncssh.create_connection(Client, "127.0.0.1", port, username=user, known_hosts=kh,
            client_keys=None, agent_path=None, preferred_auth="keyboard-interactive", local_addr=("` + clientAddr + `", 0))
    except asyncssh.PermissionDenied as e:
        print(json.dumps({"refused": str(e)}), flush=True)
        sys.exit(3)
    async with conn:
        r = await conn.run("echo signed-on")
        print(json.dumps({"out": r.stdout.strip(), "status": r.exit_status}), flush=True)
asyncio.run(main())
`

// oidcRolesTail gives group ops, and only it, db1; the oidc section
// trusts the test's identity provider and takes its groups.
const oidcRolesTail = `hosts:
  - {name: db1, address: "{sshd0}"}
roles:
  - name: ops
    groups: [ops]
    hosts: [db1]
    logins: ["{user}"]
    policy:
      exec: {allow: [".*"]}
oidc:
  issuer: %s
  client_id: %s
  client_secret_file: %s
  ca_file: %s
  user_claim: preferred_username
  groups_claim: groups
  scopes: [openid, profile, groups]
`

// oidcWorld is a gateway whose service offers single sign-on at a real
// identity provider (oidc-provider), with alice (a key, no groups) and
// carol (no credential, disabled at the provider) configured.
func oidcWorld(t *testing.T) (*world, *oidctest.IdP) {
	t.Helper()
	return oidcWorldWith(t, worldOptions{})
}

// oidcWorldWith is oidcWorld with more options.
func oidcWorldWith(t *testing.T, o worldOptions) (*world, *oidctest.IdP) {
	t.Helper()
	idp := oidctest.Start(t)
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(secret, []byte(oidctest.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.service = "    oidc: true\n"
	o.users = "  - name: carol\n"
	o.tail = fmt.Sprintf(oidcRolesTail, idp.Issuer, oidctest.ClientID, secret, idp.CAFile)
	o.loginGraceTime = "90s"
	w := newWorld(t, o)
	return w, idp
}

// signOnLine is one JSON line paramikoSignOn prints.
type signOnLine struct {
	Instruction string
	Prompts     []string
	Refused     string
	Out         string
	Status      *int
}

// signOn runs paramikoSignOn as login; at the first prompt it lets account
// sign in at the identity provider's browser pages. It returns the lines
// the script printed and its exit code.
func (w *world) signOn(t *testing.T, idp *oidctest.IdP, login, account string) ([]signOnLine, int) {
	t.Helper()
	return w.signOnWith(t, idp, paramikoPython(t), paramikoSignOn, login, account)
}

// signOnWith is signOn with another Python client printing the same lines.
func (w *world) signOnWith(t *testing.T, idp *oidctest.IdP, py, source, login, account string) ([]signOnLine, int) {
	t.Helper()
	script, kh := w.paramikoFiles(t, source)
	cmd := exec.Command(py, script, strconv.Itoa(w.port), login, kh)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var lines []signOnLine
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var l signOnLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s printed %q: %v", script, sc.Text(), err)
		}
		lines = append(lines, l)
		if len(lines) == 1 {
			if len(l.Prompts) != 1 {
				t.Fatalf("got first challenge %+v, want one question", l)
			}
			m := signOnPrompt(t, l.Prompts[0])
			idp.Browser(t, m[0], m[1], account, false)
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 0 && code != 3 {
		t.Fatalf("%s: exit %d: %s", script, code, stderr.String())
	}
	return lines, code
}

// TestOIDCSignOnMapsGroups: alice signs on with paramiko through the
// device flow at a real identity provider; her provider groups (ops) give
// her db1 through a role she has no other way to: the command runs, and
// the audit names the method, her provider subject and the role.
func TestOIDCSignOnMapsGroups(t *testing.T) {
	t.Parallel()
	w, idp := oidcWorld(t)
	lines, code := w.signOn(t, idp, "alice+db1", "alice")
	last := lines[len(lines)-1]
	if code != 0 || last.Out != "signed-on" || last.Status == nil || *last.Status != 0 {
		t.Fatalf("got exit %d, lines %+v, want signed-on with status 0", code, lines)
	}
	evs := w.events("auth", func(e audit.Event) bool { return e.User == "alice" && e.Verdict == audit.Accept })
	if len(evs) != 1 || evs[0].Detail["method"] != "oidc" || evs[0].Detail["subject"] != idp.Issuer+" alice" {
		t.Fatalf("got auth events %+v, want one accepted by oidc with subject %q", evs, idp.Issuer+" alice")
	}
	acc := w.events(EventAccess, func(e audit.Event) bool { return e.User == "alice" && e.Verdict == audit.Accept })
	if len(acc) != 1 || acc[0].Detail["role"] != "ops" {
		t.Fatalf("got access events %+v, want one accepted by role ops", acc)
	}
}

// TestOIDCSignOnAsyncssh: asyncssh's keyboard-interactive signs alice on.
func TestOIDCSignOnAsyncssh(t *testing.T) {
	t.Parallel()
	w, idp := oidcWorld(t)
	lines, code := w.signOnWith(t, idp, pythonWith(t, "asyncssh", "python3-asyncssh"), asyncsshSignOn, "alice+db1", "alice")
	last := lines[len(lines)-1]
	if code != 0 || last.Out != "signed-on" || last.Status == nil || *last.Status != 0 {
		t.Fatalf("got exit %d, lines %+v, want signed-on with status 0", code, lines)
	}
}

// TestOIDCDisabledUserRefused: carol, configured but disabled at the
// identity provider, is refused: she is told the provider refused, and the
// audit has the provider's reason. Someone logging in as carol who signs
// in at the provider as alice is refused too: the provider's name must be
// the login's user.
func TestOIDCDisabledUserRefused(t *testing.T) {
	t.Parallel()
	w, idp := oidcWorld(t)
	if lines, code := w.signOn(t, idp, "carol+db1", "alice"); code != 3 {
		t.Fatalf("alice's sign-in used for carol: got exit %d, lines %+v, want refused", code, lines)
	}
	evs := w.events("auth", func(e audit.Event) bool { return e.Rule == "oidc.user_claim" })
	if len(evs) != 1 || evs[0].User != "carol" || evs[0].Verdict != audit.Reject || !strings.Contains(evs[0].Reason, "as alice, not as carol") {
		t.Fatalf("got auth events %+v, want one refused by oidc.user_claim", evs)
	}

	lines, code := w.signOn(t, idp, "carol+db1", "carol")
	if code != 3 || len(lines) < 2 {
		t.Fatalf("got exit %d, lines %+v, want refused", code, lines)
	}
	if told := lines[len(lines)-2].Instruction; !strings.Contains(told, "refused by the identity provider") {
		t.Fatalf("got %q told, want the provider's refusal", told)
	}
	evs = w.events("auth", func(e audit.Event) bool {
		return e.User == "carol" && e.Rule == "oidc" && e.Verdict == audit.Reject && e.Detail["method"] == "oidc"
	})
	if len(evs) != 1 || evs[0].Rule != "oidc" || !strings.Contains(evs[0].Reason, "access_denied: account disabled") {
		t.Fatalf("got auth events %+v, want one refused by oidc for the disabled account", evs)
	}
}

// signOnPrompt returns the verification URL and user code of the sign-on
// question, and checks it holds a QR code.
func signOnPrompt(t *testing.T, q string) [2]string {
	t.Helper()
	if !strings.Contains(q, "█") {
		t.Fatalf("got question %q, want a QR code", q)
	}
	return signOnURL(t, q)
}

// signOnURL returns the verification URL and user code of the sign-on
// question.
func signOnURL(t *testing.T, q string) [2]string {
	t.Helper()
	// PuTTY frames each line of the question with "| ".
	m := regexp.MustCompile(`open (\S+)\r?\n(?:\| )?and enter the code (\S+)`).FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("got question %q, want the URL and the code", q)
	}
	return [2]string{m[1], m[2]}
}

// TestOIDCSignOnOpenSSH: OpenSSH's ssh, in a pty as a person runs it,
// shows the question with the URL, the code and the QR code drawn as is;
// Enter after approving at the provider logs alice in.
func TestOIDCSignOnOpenSSH(t *testing.T) {
	t.Parallel()
	w, idp := oidcWorld(t)
	args := append([]string{"-o", "BatchMode=no", "-o", "PreferredAuthentications=keyboard-interactive"}, w.as("", "ssh")...)
	out := w.signOnInPty(t, idp, exec.Command("ssh", append(args, "alice+db1@127.0.0.1", "echo signed-on")...))
	if !strings.Contains(out, "█") {
		t.Fatalf("ssh showed %q, want the QR code drawn as is", out)
	}
}

// TestOIDCSignOnPlink: PuTTY's plink, in a pty, signs alice on.
func TestOIDCSignOnPlink(t *testing.T) {
	t.Parallel()
	plink := sshtest.RequireTool(t, "plink")
	// plink cannot bind a source address: let the servers zone in.
	w, idp := oidcWorldWith(t, worldOptions{clientZones: "[office, servers]"})
	w.signOnInPty(t, idp, exec.Command(plink, "-noagent", "-P", strconv.Itoa(w.port), "-l", "alice+db1",
		"-hostkey", ssh.FingerprintSHA256(w.hostKey), "127.0.0.1", "echo signed-on"))
}

// signOnInPty runs cmd, an SSH client, in a pty as a person would: it
// waits for the sign-on question, lets alice approve at the identity
// provider, presses Enter and checks the command printed signed-on. It
// returns what the client printed.
func (w *world) signOnInPty(t *testing.T, idp *oidctest.IdP, cmd *exec.Cmd) string {
	t.Helper()
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out lockedBuffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, tty) // ends with EIO when ssh exits
		close(copied)
	}()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "Press Enter once you have approved") {
		if time.Now().After(deadline) {
			t.Fatalf("%s showed no sign-on question in a minute: %q", cmd.Path, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := signOnURL(t, out.String())
	idp.Browser(t, m[0], m[1], "alice", false)
	if _, err := tty.Write([]byte("\r")); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timeout := time.After(time.Minute)
	returned := false
	for {
		select {
		case err := <-exited:
			<-copied
			if err != nil || !strings.Contains(out.String(), "signed-on") {
				t.Fatalf("%s: %v; printed %q, want signed-on", cmd.Path, err, out.String())
			}
			return out.String()
		case <-time.After(50 * time.Millisecond):
			// PuTTY asks once more after prompts from the server, so
			// that they cannot pass for the session's own output.
			if !returned && strings.Contains(out.String(), "Press Return to begin session") {
				returned = true
				if _, err := tty.Write([]byte("\r")); err != nil {
					t.Fatal(err)
				}
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("%s did not finish in a minute: %q", cmd.Path, out.String())
		}
	}
}
