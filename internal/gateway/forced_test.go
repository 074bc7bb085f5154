package gateway

import (
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// forcedScript is the forced command of these tests: it shows what it was
// asked for, the way wrappers read it.
const forcedScript = `echo "forced:${SSH_ORIGINAL_COMMAND-unset}"`

// TestForcedCommandEverywhere: a key's command= replaces shell, exec and
// subsystem requests, as sshd(8) does; the target gets the replaced request
// in SSH_ORIGINAL_COMMAND; a client cannot set that variable itself; and
// the key gets no SFTP session.
func TestForcedCommandEverywhere(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "sftp")
	w := newWorld(t, worldOptions{
		keyOptions: `command="` + strings.ReplaceAll(forcedScript, `"`, `\"`) + `"`,
		sshdConfig: []string{"AcceptEnv SSH_ORIGINAL_COMMAND"},
		policy: `      shell: true
      exec: {allow: ["id"]}
      env: ["*"]
      subsystems:
        sftp: {}
`,
	})
	const rule = "users[alice].authorized_keys:1 command"

	// exec: the forced command runs, whatever was asked, even a command
	// exec.allow does not list.
	r := w.ssh(nil, "cat /etc/passwd")
	if r.code != 0 || r.stdout != "forced:cat /etc/passwd\n" {
		t.Fatalf("exec: got %d %q %q, want 0 %q", r.code, r.stdout, r.stderr, "forced:cat /etc/passwd\n")
	}
	// A client that sets SSH_ORIGINAL_COMMAND itself does not choose what
	// the wrapper reads, even under env: ["*"].
	r = w.ssh([]string{"-o", "SetEnv=SSH_ORIGINAL_COMMAND=id"}, "rm -rf /")
	if r.stdout != "forced:rm -rf /\n" {
		t.Fatalf("exec with a spoofed SSH_ORIGINAL_COMMAND: got %q, want %q", r.stdout, "forced:rm -rf /\n")
	}
	if evs := w.events("env", func(e audit.Event) bool {
		return e.Verdict == audit.Reject && e.Detail["name"] == "SSH_ORIGINAL_COMMAND"
	}); len(evs) != 1 {
		t.Fatalf("got env refusals %+v, want one for SSH_ORIGINAL_COMMAND", evs)
	}
	// shell: the forced command runs, SSH_ORIGINAL_COMMAND unset.
	r = w.ssh([]string{"-T"})
	if r.code != 0 || r.stdout != "forced:unset\n" {
		t.Fatalf("shell: got %d %q %q, want 0 %q", r.code, r.stdout, r.stderr, "forced:unset\n")
	}
	// subsystem: sftp gets the forced command's output, not an SFTP server.
	r = w.sftpBatch("ls /\n")
	if r.code == 0 {
		t.Fatalf("sftp with a command= key: got exit 0 (%q %q), want a failure", r.stdout, r.stderr)
	}
	if evs := w.events("sftp.open", nil); len(evs) != 0 {
		t.Fatalf("got sftp events %+v, want none: no SFTP session for a command= key", evs)
	}

	for _, c := range []struct{ typ, original string }{{"exec", "cat /etc/passwd"}, {"shell", ""}, {"subsystem", "sftp"}} {
		evs := w.events(c.typ, func(e audit.Event) bool {
			return e.Verdict == audit.Accept && e.Rule == rule && e.Detail["command"] == forcedScript
		})
		if len(evs) == 0 {
			t.Fatalf("got no accepted %s event with rule %q and the forced command", c.typ, rule)
		}
		e := evs[0]
		if got := e.Detail["original_command"]; c.original != "" && got != c.original || c.original == "" && got != nil {
			t.Errorf("%s: got original_command %v, want %q", c.typ, got, c.original)
		}
		if got := e.Detail["original_command_env"]; c.original != "" && got != true {
			t.Errorf("%s: got original_command_env %v, want true (the target accepts it)", c.typ, got)
		}
	}
}

// TestServiceForcedCommandBeatsKey: exec.forced_command wins over the
// key's command= (sshd's ForceCommand over command=), and without
// AcceptEnv on the target the forced command runs without
// SSH_ORIGINAL_COMMAND, which the audit says.
func TestServiceForcedCommandBeatsKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{
		keyOptions: `command="echo key"`,
		policy: `      exec: {forced_command: "` + strings.ReplaceAll(forcedScript, `"`, `\"`) + `"}
`,
	})
	r := w.ssh(nil, "id")
	if r.code != 0 || r.stdout != "forced:unset\n" {
		t.Fatalf("got %d %q %q, want 0 %q", r.code, r.stdout, r.stderr, "forced:unset\n")
	}
	evs := w.events("exec", func(e audit.Event) bool { return e.Verdict == audit.Accept })
	if len(evs) != 1 || evs[0].Rule != "services[ssh-in].policy.exec.forced_command" || evs[0].Detail["original_command_env"] != false {
		t.Fatalf("got %+v, want one exec accepted by services[ssh-in].policy.exec.forced_command, original_command_env false", evs)
	}
}

// TestForcedInternalSFTP: command="internal-sftp" is OpenSSH's way to make
// an SFTP-only key. Through the gateway it runs the target's sftp
// subsystem under the sftp policy and proxy, for every request; with
// options the gateway cannot pass on (-R), it is refused, never widened.
func TestForcedInternalSFTP(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "sftp")
	pol := `      shell: true
      exec: {allow: [".*"]}
      subsystems:
        sftp: {}
`
	w := newWorld(t, worldOptions{keyOptions: `command="internal-sftp"`, policy: pol})
	if r := w.sftpBatch("ls " + w.dir + "\n"); r.code != 0 || !strings.Contains(r.stdout, "alice_ed25519") {
		t.Fatalf("sftp: got %d %q %q, want a listing", r.code, r.stdout, r.stderr)
	}
	if evs := w.events("sftp.opendir", nil); len(evs) == 0 {
		t.Fatal("got no sftp.opendir event, want the SFTP proxy to see the session")
	}
	// exec gets the sftp server too: nothing of the shell.
	if r := w.ssh(nil, "echo shell-ran"); strings.Contains(r.stdout, "shell-ran") {
		t.Fatalf("exec under internal-sftp: got %q, want no shell", r.stdout)
	}

	w = newWorld(t, worldOptions{keyOptions: `command="internal-sftp -R"`, policy: pol})
	if r := w.sftpBatch("ls /\n"); r.code == 0 {
		t.Fatalf("sftp under internal-sftp -R: got exit 0, want refused")
	}
	evs := w.events("subsystem", func(e audit.Event) bool { return e.Verdict == audit.Reject })
	if len(evs) != 1 || evs[0].Rule != "users[alice].authorized_keys:1 command" {
		t.Fatalf("got %+v, want one subsystem refusal by the key's command", evs)
	}
}
