package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/mfa"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// codes hands out TOTP codes of one enrolled user, each of a later time
// step than the last, so that the gateway's replay refusal never refuses
// a test's fresh code. A code of the current step or the next stays valid
// for at least 30 s (one step of skew either side).
type codes struct {
	t    *testing.T
	key  *otp.Key
	mu   sync.Mutex
	last int64
}

func (c *codes) next() string {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		now := time.Now().Unix() / 30
		step := max(now, c.last+1)
		if step <= now+1 {
			c.last = step
			return c.at(step)
		}
		time.Sleep(time.Until(time.Unix((now+1)*30, 0)) + 100*time.Millisecond)
	}
}

func (c *codes) at(step int64) string {
	code, err := totp.GenerateCode(c.key.Secret(), time.Unix(step*30, 0))
	if err != nil {
		c.t.Fatal(err)
	}
	return code
}

// wrong returns a well-formed code that is none of those within the skew.
func (c *codes) wrong() string {
	now := time.Now().Unix() / 30
	valid := []string{c.at(now - 1), c.at(now), c.at(now + 1), c.at(now + 2)}
	for _, w := range []string{"000000", "111111", "222222", "333333", "444444"} {
		if !slices.Contains(valid, w) {
			return w
		}
	}
	c.t.Fatal("no wrong code found")
	return ""
}

// enrol writes a TOTP secret for user to the world's totp/USER.
func (w *world) enrol(user string) *codes {
	w.t.Helper()
	key, err := mfa.Enrol(filepath.Join(w.dir, "totp", user), "Sluice test", user, false)
	if err != nil {
		w.t.Fatal(err)
	}
	return &codes{t: w.t, key: key}
}

// mfaUsers are the users lines of an mfa world: alice enrolled, bob with
// alice's key and no totp_file, ci with a key marked for automation, and
// pk, as, pl (alice's key, enrolled) for the other clients.
const mfaUsers = `    totp_file: ./totp/alice
  - {name: bob, authorized_keys: ./alice_ed25519.pub}
  - {name: ci, authorized_keys: ./ci_ed25519.pub}
  - {name: pk, authorized_keys: ./alice_ed25519.pub, totp_file: ./totp/pk}
  - {name: as, authorized_keys: ./alice_ed25519.pub, totp_file: ./totp/as}
  - {name: pl, authorized_keys: ./alice_ed25519.pub, totp_file: ./totp/pl}
`

// mfaWorld is a world whose service has the mfa setting mfaYAML, with
// the users of mfaUsers, open to PuTTY's clients (which cannot bind the
// office address); it returns alice's codes and the path of ci's
// automation key.
func mfaWorld(t *testing.T, mfaYAML, policy string) (*world, *codes, string) {
	return mfaWorldOn(t, mfaYAML, policy, true)
}

// mfaWorldOn is mfaWorld in front of the built-in target (builtin) or
// OpenSSH's sshd.
func mfaWorldOn(t *testing.T, mfaYAML, policy string, builtin bool) (*world, *codes, string) {
	w := newWorld(t, worldOptions{users: mfaUsers, service: "    mfa: " + mfaYAML + "\n", policy: policy, builtinTarget: builtin, gateway: "  max_auth_tries: 3\n", clientZones: "[office, servers]"})
	_, ci := sshtest.NewKey(t, w.dir, "ci_ed25519")
	pub, err := os.ReadFile(ci + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ci+".pub", append([]byte("automation "), pub...), 0o600); err != nil {
		t.Fatal(err)
	}
	return w, w.enrol("alice"), ci
}

// login returns the inband login of user to the world's target.
func (w *world) login(user string) string {
	return user + "+127.0.0.1:" + strconv.Itoa(w.sshd.Port)
}

// askpass runs OpenSSH's ssh as login with stdin, answering every prompt
// with answer through SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force: no terminal
// needed). It returns the result and the prompts ssh showed.
func (w *world) askpass(login, key, answer, stdin string, opts []string, remote ...string) (result, string) {
	w.t.Helper()
	dir := w.t.TempDir()
	prompts := filepath.Join(dir, "prompts")
	script := filepath.Join(dir, "askpass")
	src := "#!/bin/sh\nprintf '%s\\n' \"$1\" >> " + prompts + "\nprintf '%s\\n' '" + answer + "'\n"
	if err := os.WriteFile(script, []byte(src), 0o700); err != nil {
		w.t.Fatal(err)
	}
	base := sshtest.ClientArgs(w.t, "ssh", w.port, key, w.hostKey)
	// BatchMode=yes turns keyboard-interactive off; the first value of an
	// option wins, so it is left out rather than overridden.
	if i := slices.Index(base, "BatchMode=yes"); i > 0 {
		base = slices.Delete(base, i-1, i+1)
	}
	// opts come first, so that they win over the defaults after them.
	args := append(append(base, opts...), "-o", "BindAddress="+clientAddr, "-o", "NumberOfPasswordPrompts=1", "-o", "PreferredAuthentications=publickey,keyboard-interactive")
	args = append(args, login+"@127.0.0.1")
	args = append(args, remote...)
	env := append(os.Environ(), "SSH_ASKPASS="+script, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	r := w.runDetached(strings.NewReader(stdin), env, "ssh", args...)
	got, _ := os.ReadFile(prompts)
	return r, string(got)
}

// runDetached runs a client in a session of its own, without a
// controlling terminal: a client that would ask on /dev/tty asks through
// what the test gives it instead.
func (w *world) runDetached(stdin *strings.Reader, env []string, name string, args ...string) result {
	w.t.Helper()
	return w.runAttr(stdin, env, &syscall.SysProcAttr{Setsid: true}, name, args...)
}

// authRefusals returns the refused "auth" events of user by the
// keyboard-interactive step.
func (w *world) authRefusals(user string) []audit.Event {
	return w.events("auth", func(e audit.Event) bool {
		return e.User == user && e.Verdict == audit.Reject && e.Detail["method"] == "keyboard-interactive"
	})
}

// wantRefusal checks that the last keyboard-interactive refusal of user
// names rule and contains reason.
func (w *world) wantRefusal(user, rule, reason string) {
	w.t.Helper()
	got := w.authRefusals(user)
	if len(got) == 0 {
		w.t.Fatalf("%s: got no keyboard-interactive refusal audited, want %s: %s", user, rule, reason)
	}
	last := got[len(got)-1]
	if last.Rule != rule || !strings.Contains(last.Reason, reason) {
		w.t.Errorf("%s: got refusal %q: %q, want %q: %q", user, last.Rule, last.Reason, rule, reason)
	}
}

func TestMFAOpenSSH(t *testing.T) {
	t.Parallel()
	w, alice, ci := mfaWorld(t, "{required: true}", "")

	// Key and the right code: in, and the prompt reached the user.
	code := alice.next()
	r, prompts := w.askpass(w.login("alice"), w.aliceKey, code, "", nil, "echo in")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "in" {
		t.Fatalf("right code: got exit %d stdout %q stderr %q, want 0 and in", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(prompts, mfa.Prompt) {
		t.Errorf("got prompts %q, want %q", prompts, mfa.Prompt)
	}
	ok := w.events("auth", func(e audit.Event) bool { return e.User == "alice" && e.Verdict == audit.Accept })
	if len(ok) != 1 || ok[0].Detail["second_factor"] != "totp" || ok[0].Detail["method"] != "publickey" {
		t.Errorf("got accepted auth events %+v, want one by publickey with second_factor totp", ok)
	}

	// The same code again, on a new connection: refused.
	if r, _ := w.askpass(w.login("alice"), w.aliceKey, code, "", nil, "echo in"); r.code == 0 {
		t.Fatalf("reused code: got exit 0 stdout %q, want refused", r.stdout)
	}
	w.wantRefusal("alice", "users[alice].totp_file", "already used")

	// A wrong code.
	if r, _ := w.askpass(w.login("alice"), w.aliceKey, alice.wrong(), "", nil, "echo in"); r.code == 0 {
		t.Fatalf("wrong code: got exit 0 stdout %q, want refused", r.stdout)
	}
	w.wantRefusal("alice", "users[alice].totp_file", "wrong code")

	// An empty answer.
	if r, _ := w.askpass(w.login("alice"), w.aliceKey, "", "", nil, "echo in"); r.code == 0 {
		t.Fatalf("empty answer: got exit 0 stdout %q, want refused", r.stdout)
	}
	w.wantRefusal("alice", "users[alice].totp_file", "no code given")

	// A client that will not do keyboard-interactive at all.
	if r := w.run(nil, "ssh", append(w.as("", "ssh"), w.login("alice")+"@127.0.0.1", "echo in")...); r.code == 0 {
		t.Fatalf("no keyboard-interactive: got exit 0 stdout %q, want refused", r.stdout)
	}
	w.wantRefusal("alice", "services[ssh-in].mfa", "without answering the second factor")

	// Wrong codes count towards max_auth_tries (3): a client that would
	// try 10 times is cut off after 3.
	before := len(w.authRefusals("alice"))
	if r, _ := w.askpass(w.login("alice"), w.aliceKey, alice.wrong(), "", []string{"-o", "NumberOfPasswordPrompts=10"}, "echo in"); r.code == 0 {
		t.Fatal("ten wrong codes: got exit 0, want refused")
	}
	if got := len(w.authRefusals("alice")) - before; got != 3 {
		t.Errorf("got %d refusals on one connection, want 3 (max_auth_tries)", got)
	}

	// No totp_file: refused with the reason, before any prompt.
	r, prompts = w.askpass(w.login("bob"), w.aliceKey, alice.next(), "", nil, "echo in")
	if r.code == 0 || prompts != "" {
		t.Fatalf("bob without totp_file: got exit %d prompts %q, want refused unasked", r.code, prompts)
	}
	w.wantRefusal("bob", "services[ssh-in].mfa.required", "has no totp_file")

	// A key marked for automation on a service that requires a second
	// factor of every login: refused.
	if r := w.run(nil, "ssh", append(w.as(ci, "ssh"), w.login("ci")+"@127.0.0.1", "echo in")...); r.code == 0 {
		t.Fatalf("automation key: got exit 0, want refused")
	}
	w.wantRefusal("ci", "services[ssh-in].mfa.required", "automation")
}

// TestMFAReplayAcrossReload: a code accepted before a reload is refused
// after it, and a reload that turns the second factor off lets the key
// alone in.
func TestMFAReplayAcrossReload(t *testing.T) {
	t.Parallel()
	w, alice, _ := mfaWorld(t, "{required: true}", "")
	code := alice.next()
	if r, _ := w.askpass(w.login("alice"), w.aliceKey, code, "", nil, "echo in"); r.code != 0 {
		t.Fatalf("before the reload: got exit %d stderr %q, want in", r.code, r.stderr)
	}
	if err := w.reloadWith(t, "    mfa: {required: true}\n", "    mfa: {required_for: [pty]}\n"); err != nil {
		t.Fatal(err)
	}
	if r, _ := w.askpass(w.login("alice"), w.aliceKey, code, "", nil, "echo in"); r.code == 0 {
		t.Fatal("the same code after a reload: got exit 0, want refused")
	}
	w.wantRefusal("alice", "users[alice].totp_file", "already used")
	if err := w.reloadWith(t, "    mfa: {required_for: [pty]}\n", ""); err != nil {
		t.Fatal(err)
	}
	if r := w.run(nil, "ssh", append(w.as("", "ssh"), w.login("alice")+"@127.0.0.1", "echo in")...); r.code != 0 {
		t.Fatalf("mfa off: got exit %d stderr %q, want the key alone to log in", r.code, r.stderr)
	}
}

const stepUpPolicy = `      pty: true
      shell: true
      exec: {allow: ["uptime", "scp( .*)?"]}
      subsystems:
        sftp: {}
      forward_local: ["127.0.0.1:*"]
`

// TestMFAStepUp: under mfa.required_for, a key marked for automation runs
// an allowlisted command with no prompt and is refused a pty, a shell and
// sftp, while a person is asked at login and then gets the shell.
func TestMFAStepUp(t *testing.T) {
	t.Parallel()
	w, alice, ci := mfaWorld(t, "{required_for: [pty, shell, subsystem:sftp, forward_local]}", stepUpPolicy)
	ciArgs := w.as(ci, "ssh")

	// BatchMode=yes: a prompt would fail the login.
	r := w.run(nil, "ssh", append(ciArgs, w.login("ci")+"@127.0.0.1", "uptime")...)
	if r.code != 0 || !strings.Contains(r.stdout, "load average") {
		t.Fatalf("automation uptime: got exit %d stdout %q stderr %q, want uptime's output", r.code, r.stdout, r.stderr)
	}
	// Its allowlist still holds.
	if r := w.run(nil, "ssh", append(ciArgs, w.login("ci")+"@127.0.0.1", "id")...); r.code == 0 {
		t.Errorf("automation id: got exit 0, want refused by the exec allowlist")
	}
	// A pty (ssh goes on without one), and a shell.
	if r := w.run(nil, "ssh", append(ciArgs, "-tt", w.login("ci")+"@127.0.0.1", "uptime")...); !strings.Contains(r.stderr, "PTY allocation request failed") {
		t.Errorf("automation pty: got stderr %q, want the pty refused", r.stderr)
	}
	if r := w.run(strings.NewReader("echo shell-ran\nexit\n"), "ssh", append(ciArgs, "-T", w.login("ci")+"@127.0.0.1")...); strings.Contains(r.stdout, "shell-ran") || r.code == 0 {
		t.Fatalf("automation shell: got exit %d stdout %q, want refused", r.code, r.stdout)
	}
	// sftp.
	sftpArgs := append(w.as(ci, "sftp"), "-o", "User="+w.login("ci"), "-b", "-", "127.0.0.1")
	if r := w.run(strings.NewReader("ls\n"), "sftp", sftpArgs...); r.code == 0 {
		t.Errorf("automation sftp: got exit 0, want refused")
	}
	// scp run by exec moves files as sftp does: the allowlisted exec is
	// held by the step-up on subsystem:sftp.
	src := filepath.Join(w.dir, "upload")
	if err := os.WriteFile(src, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	scpArgs := append(w.as(ci, "scp"), "-O", "-o", "User="+w.login("ci"), src, "127.0.0.1:"+filepath.Join(w.dir, "uploaded"))
	if r := w.run(nil, "scp", scpArgs...); r.code == 0 {
		t.Errorf("automation scp -O: got exit 0, want refused")
	}
	if _, err := os.Stat(filepath.Join(w.dir, "uploaded")); err == nil {
		t.Error("automation scp -O: the file arrived, want refused")
	}
	// A forward (ssh -W, as ProxyJump does).
	if r := w.run(nil, "ssh", append(ciArgs, "-W", w.sshd.Addr, w.login("ci")+"@127.0.0.1")...); r.code == 0 {
		t.Errorf("automation ssh -W: got exit 0, want refused")
	}
	const rule = "services[ssh-in].mfa.required_for"
	for _, typ := range []string{"pty", "shell", "subsystem", "exec", "forward.local"} {
		got := w.events(typ, func(e audit.Event) bool { return e.User == "ci" && e.Verdict == audit.Reject && e.Rule == rule })
		if len(got) == 0 {
			t.Errorf("%s: got no refusal by %s audited", typ, rule)
		}
	}
	if got := w.events("auth", func(e audit.Event) bool { return e.User == "ci" && e.Verdict == audit.Accept }); len(got) == 0 || got[0].Detail["automation"] != true {
		t.Errorf("got ci's auth events %+v, want accepted and marked automation", got)
	}

	// alice is asked at login, then has her shell with a pty.
	r, prompts := w.askpass(w.login("alice"), w.aliceKey, alice.next(), "echo stepped-up\nexit\n", []string{"-tt"})
	if !strings.Contains(r.stdout, "stepped-up") || !strings.Contains(prompts, mfa.Prompt) {
		t.Fatalf("alice: got exit %d stdout %q stderr %q prompts %q, want asked, then the command's output", r.code, r.stdout, r.stderr, prompts)
	}
	if got := w.events("pty", func(e audit.Event) bool { return e.User == "alice" && e.Verdict == audit.Accept }); len(got) != 1 {
		t.Errorf("got %d accepted pty events for alice, want 1", len(got))
	}
	// bob has no totp_file: refused at login, since his key could ask
	// for a pty.
	if r, _ := w.askpass(w.login("bob"), w.aliceKey, "123456", "", nil, "uptime"); r.code == 0 {
		t.Errorf("bob: got exit 0, want refused")
	}
	w.wantRefusal("bob", "services[ssh-in].mfa.required_for", "has no totp_file")
}

// interactiveClientsPy logs in with paramiko or asyncssh (argv[1]) by key
// then keyboard-interactive, answering each prompt with argv[7], runs
// "echo in" and prints its output. Arguments: client, port, user, key,
// known_hosts, bind address, code.
const interactiveClientsPy = `
import asyncio, socket, sys
client, port, user, keyfile, kh, bind, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
asked = []
if client == "paramiko":
    import paramiko
    sock = socket.create_connection(("127.0.0.1", port), source_address=(bind, 0))
    t = paramiko.Transport(sock)
    t.start_client(timeout=30)
    want = paramiko.HostKeys(kh).lookup("[127.0.0.1]:%d" % port)
    got = t.get_remote_server_key()
    if want is None or want.get(got.get_name()) != got:
        sys.exit("host key mismatch")
    left = t.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(keyfile))
    if "keyboard-interactive" not in left:
        sys.exit("no keyboard-interactive offered: %r" % (left,))
    def handler(title, instructions, prompts):
        asked.extend(p for p, _ in prompts)
        return [code for _ in prompts]
    t.auth_interactive(user, handler)
    ch = t.open_session()
    ch.exec_command("echo in")
    print(ch.makefile().read().decode().strip(), asked)
    t.close()
else:
    import asyncssh
    class Client(asyncssh.SSHClient):
        def kbdint_auth_requested(self):
            return ""
        def kbdint_challenge_received(self, name, instructions, lang, prompts):
            asked.extend(p for p, _ in prompts)
            return [code for _ in prompts]
    async def main():
        async with asyncssh.connect("127.0.0.1", port, username=user, client_keys=[keyfile], known_hosts=kh,
                                    local_addr=(bind, 0), client_factory=Client, agent_path=None,
                                    preferred_auth="publickey,keyboard-interactive") as conn:
            r = await conn.run("echo in")
            print(r.stdout.strip(), asked)
    asyncio.run(main())
`

// TestMFAClients: paramiko, asyncssh and PuTTY's plink complete key plus
// code, each as its own enrolled user.
func TestMFAClients(t *testing.T) {
	t.Parallel()
	py := paramikoPython(t)
	w, _, _ := mfaWorld(t, "{required: true}", "")
	script, kh := w.paramikoFiles(t, interactiveClientsPy)
	for _, tc := range []struct{ client, user string }{{"paramiko", "pk"}, {"asyncssh", "as"}} {
		if tc.client == "paramiko" && !forkedXCrypto {
			// paramiko asks for ssh-userauth again before its second
			// method; upstream x/crypto's server ends the connection
			// (docs/xcrypto-fork.md, section 8).
			continue
		}
		codes := w.enrol(tc.user)
		r := w.run(nil, py, script, tc.client, strconv.Itoa(w.port), w.login(tc.user), w.aliceKey, kh, clientAddr, codes.next())
		if want := "in ['" + mfa.Prompt + "']"; r.code != 0 || strings.TrimSpace(r.stdout) != want {
			t.Errorf("%s: got exit %d stdout %q stderr %q, want %q", tc.client, r.code, r.stdout, r.stderr, want)
		}
		// A wrong code is refused.
		if r := w.run(nil, py, script, tc.client, strconv.Itoa(w.port), w.login(tc.user), w.aliceKey, kh, clientAddr, codes.wrong()); r.code == 0 {
			t.Errorf("%s: wrong code: got exit 0 stdout %q, want refused", tc.client, r.stdout)
		}
		w.wantRefusal(tc.user, "users["+tc.user+"].totp_file", "wrong code")
	}

	// plink without -batch answers prompts from its terminal, or, with
	// none, from stdin.
	plink := sshtest.RequireTool(t, "plink")
	codes := w.enrol("pl")
	ppk := w.puttyKey(t)
	args := []string{"-ssh", "-noagent", "-P", strconv.Itoa(w.port), "-l", w.login("pl"), "-i", ppk,
		"-hostkey", ssh.FingerprintSHA256(w.hostKey), "127.0.0.1", "echo in"}
	r := w.runDetached(strings.NewReader(codes.next()+"\n"), nil, plink, args...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "in" {
		t.Errorf("plink: got exit %d stdout %q stderr %q, want in", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, mfa.Prompt) {
		t.Errorf("plink: got stderr %q, want the prompt %q", r.stderr, mfa.Prompt)
	}
}

// TestMFAReplayAcrossFleet: two gateways of one fleet (one PostgreSQL
// store): a code accepted by gw1 is refused by gw2, as is a code of an
// earlier step; a fresh code is accepted by gw2 and then refused by gw1.
func TestMFAReplayAcrossFleet(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t)
	node := func(name string) *world {
		return newWorld(t, worldOptions{name: name, sink: dsn, users: "    totp_file: ./totp/alice\n", service: "    mfa: {required: true}\n", builtinTarget: true, gateway: "  max_auth_tries: 3\n  fleet: {lease: 3s}\n"})
	}
	gw1, gw2 := node("gw1"), node("gw2")
	alice := gw1.enrol("alice")
	secret, err := os.ReadFile(filepath.Join(gw1.dir, "totp", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(gw2.dir, "totp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gw2.dir, "totp", "alice"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	login := func(w *world, code string) result {
		r, _ := w.askpass(w.login("alice"), w.aliceKey, code, "", nil, "echo in")
		return r
	}
	prev := alice.at(time.Now().Unix()/30 - 1)
	code := alice.next()
	if r := login(gw1, code); r.code != 0 || r.stdout != "in\n" {
		t.Fatalf("gw1, fresh code: got exit %d stdout %q stderr %q, want in", r.code, r.stdout, r.stderr)
	}
	for _, c := range []string{code, prev} {
		if r := login(gw2, c); r.code == 0 {
			t.Fatalf("gw2, code %s used on gw1 (or older): got exit 0, want refused", c)
		}
		gw2.wantRefusal("alice", "users[alice].totp_file", "already used")
	}
	fresh := alice.next()
	if r := login(gw2, fresh); r.code != 0 {
		t.Fatalf("gw2, fresh code: got exit %d stderr %q, want in", r.code, r.stderr)
	}
	if r := login(gw1, fresh); r.code == 0 {
		t.Fatal("gw1, code used on gw2: got exit 0, want refused")
	}
	gw1.wantRefusal("alice", "users[alice].totp_file", "already used")
}
