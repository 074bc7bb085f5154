package gateway

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// exitRounds is how many commands each client runs in the exit-status
// tests: 20 in the regular suite (the lost statuses were one round in
// four, so 20 rounds miss them with a chance of 0.3 %), or the number in
// SLUICE_EXIT_ROUNDS (200 for the figures in docs).
func exitRounds(t *testing.T) int {
	n := 20
	if s := os.Getenv("SLUICE_EXIT_ROUNDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("SLUICE_EXIT_ROUNDS=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

// exitWorld is the world of the exit-status tests: in front of OpenSSH's
// sshd, or with SLUICE_EXIT_TARGET=builtin of the built-in target, whose
// commands run under /bin/sh rather than the login shell and its startup
// files (which, on a loaded machine, can take longer than a round).
func exitWorld(t *testing.T, o worldOptions) *world {
	switch v := os.Getenv("SLUICE_EXIT_TARGET"); v {
	case "", "sshd":
	case "builtin":
		o.builtinTarget = true
	default:
		t.Fatalf("SLUICE_EXIT_TARGET=%q: want sshd or builtin", v)
	}
	return newWorld(t, o)
}

// countWrongExits runs run(i) for i in [0, n) and reports the rounds whose
// exit code is not the one the remote command exits with. Clients that
// close the channel on the server's EOF (plink, dbclient, an OpenSSH
// ControlMaster) lose the exit status when it comes after EOF: they then
// report 0 or a failure of their own.
func countWrongExits(t *testing.T, name string, n int, run func(i int, remote string) result) {
	t.Helper()
	wrong := 0
	for i := range n {
		want := i%7 + 1
		r := run(i, fmt.Sprintf("echo round %d; exit %d", i, want))
		if r.code != want || r.stdout != fmt.Sprintf("round %d\n", i) {
			wrong++
			if wrong <= 3 {
				t.Errorf("%s round %d: got exit %d stdout %q stderr %q, want exit %d", name, i, r.code, r.stdout, r.stderr, want)
			}
		}
	}
	t.Logf("%s: %d of %d exit statuses wrong", name, wrong, n)
	if wrong > 0 {
		t.Errorf("%s: got %d of %d exit statuses wrong, want 0", name, wrong, n)
	}
}

func TestExitStatusPlink(t *testing.T) {
	t.Parallel()
	plink := sshtest.RequireTool(t, "plink")
	puttygen := sshtest.RequireTool(t, "puttygen")
	w := exitWorld(t, worldOptions{clientZones: "[office, servers]"})
	ppk := filepath.Join(w.dir, "alice.ppk")
	if out, err := exec.Command(puttygen, w.aliceKey, "-O", "private", "-o", ppk).CombinedOutput(); err != nil {
		t.Fatalf("puttygen: %v\n%s", err, out)
	}
	args := []string{"-batch", "-ssh", "-noagent", "-P", strconv.Itoa(w.port), "-l", w.target(), "-i", ppk,
		"-hostkey", ssh.FingerprintSHA256(w.hostKey), "127.0.0.1"}
	countWrongExits(t, "plink", exitRounds(t), func(_ int, remote string) result {
		return w.run(nil, plink, append(args, remote)...)
	})
}

func TestExitStatusDbclient(t *testing.T) {
	t.Parallel()
	dbclient := sshtest.RequireTool(t, "dbclient")
	convert := sshtest.RequireTool(t, "dropbearconvert")
	w := exitWorld(t, worldOptions{})
	key := filepath.Join(w.dir, "alice.dropbear")
	if out, err := exec.Command(convert, "openssh", "dropbear", w.aliceKey, key).CombinedOutput(); err != nil {
		t.Fatalf("dropbearconvert: %v\n%s", err, out)
	}
	// dbclient keeps known hosts in $HOME/.ssh, by host name without the
	// port (cli-kex.c): the gateway's key is written there, and -y is not
	// given, so the check is strict.
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	line := "127.0.0.1 " + string(ssh.MarshalAuthorizedKey(w.hostKey))
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-b", clientAddr, "-p", strconv.Itoa(w.port), "-l", w.target(), "-i", key, "-T", "127.0.0.1"}
	countWrongExits(t, "dbclient", exitRounds(t), func(_ int, remote string) result {
		cmd := append([]string{"HOME=" + home, dbclient}, append(args, remote)...)
		return w.run(nil, "env", cmd...)
	})
}

func TestExitStatusControlMaster(t *testing.T) {
	t.Parallel()
	w := exitWorld(t, worldOptions{})
	// A short folder: a Unix socket path holds at most 107 bytes.
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	control := filepath.Join(dir, "m")
	mux := []string{"-o", "ControlMaster=auto", "-o", "ControlPath=" + control, "-o", "ControlPersist=120"}
	t.Cleanup(func() { w.ssh(append(mux, "-O", "exit")) })
	countWrongExits(t, "ssh mux", exitRounds(t), func(_ int, remote string) result {
		return w.ssh(append([]string{"-n"}, mux...), remote)
	})
	// Every round after the first went through the one master connection.
	if n := len(w.events("session.start", nil)); n != 1 {
		t.Errorf("got %d gateway sessions, want 1 (the ControlMaster's)", n)
	}
}
