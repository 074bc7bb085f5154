package gateway

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// startAgent runs an ssh-agent holding key and returns its socket.
func startAgent(t *testing.T, key string) string {
	t.Helper()
	agent := sshtest.RequireTool(t, "ssh-agent")
	add := sshtest.RequireTool(t, "ssh-add")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(agent, "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var err error
	for range 50 {
		c := exec.Command(add, key)
		c.Env = []string{"SSH_AUTH_SOCK=" + sock}
		if err = c.Run(); err == nil {
			return sock
		}
		sleepBriefly()
	}
	t.Fatalf("ssh-add: %v", err)
	return ""
}

func TestAgentForwarding(t *testing.T) {
	t.Parallel()
	for _, allowed := range []bool{true, false} {
		name := map[bool]string{true: "allowed", false: "denied"}[allowed]
		t.Run(name, func(t *testing.T) {
			pol := defaultPolicy
			if allowed {
				pol += "      agent: true\n"
			}
			w := newWorld(t, worldOptions{policy: pol})
			sock := startAgent(t, w.aliceKey)
			// ssh keeps the first value of an option: replace the harness's
			// IdentityAgent=none.
			args := w.args("ssh")
			args[slices.Index(args, "IdentityAgent=none")] = "IdentityAgent=" + sock
			args = append(args, "-A", w.target()+"@127.0.0.1", "ssh-add -l; echo rc=$?")
			r := w.run(nil, "ssh", args...)
			listed := strings.Contains(r.stdout, "ED25519")
			if listed != allowed {
				t.Fatalf("remote ssh-add -l: got %q (stderr %q), want the key listed: %v", r.stdout, r.stderr, allowed)
			}
			want := audit.Reject
			if allowed {
				want = audit.Accept
			}
			if evs := w.events("auth-agent-req@openssh.com", func(e audit.Event) bool { return e.Verdict == want }); len(evs) != 1 {
				t.Fatalf("got %+v, want one agent request event with verdict %s", evs, want)
			}
		})
	}
}
