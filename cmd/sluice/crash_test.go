package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// sluiceProcess starts `sluice ARGS...` as a process of its own (the test
// binary, see sluiceCmd) and returns it with its stdout.
func sluiceProcess(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := sluiceCmd(os.Args[0], args...)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

// demoLines reads what the demo prints up to "Press Ctrl-C".
func demoLines(t *testing.T, r *bufio.Reader) []string {
	t.Helper()
	lines := make(chan []string, 1)
	go func() {
		var got []string
		for {
			l, err := r.ReadString('\n')
			got = append(got, strings.TrimSuffix(l, "\n"))
			if strings.HasPrefix(l, "Press Ctrl-C") || err != nil {
				lines <- got
				io.Copy(io.Discard, r)
				return
			}
		}
	}()
	select {
	case got := <-lines:
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("demo printed no instructions within 20s")
		return nil
	}
}

// instanceOf returns the INSTANCE of a master id GATEWAY/SERVICE:INSTANCE.
func instanceOf(t *testing.T, id string) int {
	t.Helper()
	n, err := strconv.Atoi(id[strings.LastIndexByte(id, ':')+1:])
	if err != nil {
		t.Fatalf("session id %q: %v", id, err)
	}
	return n
}

// TestCrashRestartVerify runs a real gateway, kills it with SIGKILL while a
// session is live, starts it again on the same state, and checks what the
// operator sees: the session ended with the reason, new session ids that
// go on above the old ones, a store that verifies, client-chosen text shown
// escaped, and a store that no longer verifies once one row was edited.
func TestCrashRestartVerify(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	state := filepath.Join(t.TempDir(), "state")
	cfg := filepath.Join(state, "sluice.yaml")
	sshArgs := func(lines []string) ([]string, string) {
		f := printed(t, lines, "ssh -i")
		return append([]string{"-F", "/dev/null", "-o", "BatchMode=yes"}, f[1:len(f)-3]...), f[len(f)-3]
	}

	// First run, in a process of its own: one session that ends, one that
	// is live when the gateway is killed.
	proc, out := sluiceProcess(t, "demo", "--listen", "127.0.0.1:0", "--console", "127.0.0.1:0", "--state", state)
	opts, dest := sshArgs(demoLines(t, out))
	if b, err := exec.Command(sshPath, append(opts, dest, "echo one")...).Output(); err != nil || string(b) != "one\n" {
		t.Fatalf("first session: got %q, %v, want one", b, err)
	}
	startLive(t, sshPath, append(opts, dest, "echo started; sleep 60"), "started")
	before := jsonLines[audit.SessionSummary](t, eventually(t, func(s string) bool {
		return len(jsonLines[audit.SessionSummary](t, s)) == 2
	}, "sessions", "-c", cfg, "--json"))
	if len(before) != 2 || before[0].End.IsZero() || !before[1].End.IsZero() {
		t.Fatalf("sessions before the crash: got %+v, want one ended, one live", before)
	}
	crashed := before[1].ID
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()

	// Second run, on the same state.
	lines := startDemo(t, state)
	after := jsonLines[audit.SessionSummary](t, eventually(t, func(string) bool { return true }, "sessions", "-c", cfg, "--json"))
	if len(after) != 2 || after[1].ID != crashed || after[1].End.IsZero() {
		t.Fatalf("sessions after the restart: got %+v, want %s ended", after, crashed)
	}
	ends := jsonLines[audit.Event](t, eventually(t, func(string) bool { return true },
		"audit", "-c", cfg, "--json", "--session", crashed, "--type", audit.TypeSessionEnd))
	if len(ends) != 1 || ends[0].Reason != audit.ReasonCrashed {
		t.Fatalf("session.end of %s: got %+v, want one saying %q", crashed, ends, audit.ReasonCrashed)
	}
	if code, text, _ := sluice("audit", "-c", cfg, "--session", crashed); code != 0 || !strings.Contains(text, "gateway stopped unexpectedly") {
		t.Errorf("audit table: got %d %q, want the crash reason", code, text)
	}

	// Ids go on above the first run's: no session of the second run
	// shares an id with one of the first.
	opts, dest = sshArgs(lines)
	if b, err := exec.Command(sshPath, append(opts, dest, "echo two")...).Output(); err != nil || string(b) != "two\n" {
		t.Fatalf("session after the restart: got %q, %v, want two", b, err)
	}
	all := jsonLines[audit.SessionSummary](t, eventually(t, func(s string) bool {
		l := jsonLines[audit.SessionSummary](t, s)
		return len(l) == 3 && !l[2].End.IsZero()
	}, "sessions", "-c", cfg, "--json"))
	if len(all) != 3 || instanceOf(t, all[2].ID) <= instanceOf(t, crashed) {
		t.Fatalf("sessions: got %+v, want a third whose instance is above %s's", all, crashed)
	}

	// A client-chosen user name with escape sequences is shown escaped.
	addr := strings.Fields(lines[0])[4]
	if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
		t.Fatalf("gateway address %q from %q: %v", addr, lines[0], err)
	}
	evil := "\x1b[2K\rroot\nforged"
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: evil, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}); err == nil {
		c.Close()
		t.Fatal("login as the evil user: got a session, want refused")
	}
	text := eventually(t, func(s string) bool { return strings.Contains(s, `\x1b[2K\rroot\nforged`) }, "audit", "-c", cfg)
	if !strings.Contains(text, `\x1b[2K\rroot\nforged`) || strings.ContainsAny(text, "\x1b\r") {
		t.Fatalf("audit table: got %q, want the user name escaped and no raw ESC or CR", text)
	}

	// The store verifies, then no longer does once one row was edited.
	code, vout, verr := sluice("audit", "verify", "-c", cfg)
	if code != 0 || !strings.HasPrefix(vout, "verified: ") || !strings.Contains(vout, "head demo:") {
		t.Fatalf("audit verify: got %d %q %q, want 0, a summary and the head", code, vout, verr)
	}
	head := ""
	for _, l := range strings.Split(vout, "\n") {
		if h, ok := strings.CutPrefix(l, "head "); ok {
			head = h
		}
	}
	if code, vout, _ := sluice("audit", "verify", "-c", cfg, "--head", head); code != 0 {
		t.Fatalf("audit verify --head %s: got %d %q, want 0", head, code, vout)
	}
	db, err := sql.Open("sqlite", filepath.Join(state, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE events SET data = replace(data, '"user":"demo"', '"user":"mallory"') WHERE id = (SELECT min(id) FROM events WHERE user_name = 'demo' AND type = 'session.start')`)
	if n, _ := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("editing a row: %d rows, %v", n, err)
	}
	code, vout, _ = sluice("audit", "verify", "-c", cfg)
	if code != 1 || !strings.HasPrefix(vout, "BROKEN at row ") || !strings.Contains(vout, "was changed") {
		t.Fatalf("audit verify after an edit: got %d %q, want 1 and the row that was changed", code, vout)
	}
}
