package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// sluice runs a subcommand in-process and returns its exit code and output.
func sluice(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// jsonLines decodes one JSON value of type T per line.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, v)
	}
	return out
}

// liveSSH is an ssh client that stays connected until the test ends it
// (or the gateway does); the test's cleanup kills it.
type liveSSH struct {
	done chan struct{} // closed when ssh has exited
	err  error         // its exit, once done
}

// startLive runs ssh with args, waits for its first line of output to
// start with first, and discards the rest.
func startLive(t *testing.T, sshPath string, args []string, first string) *liveSSH {
	t.Helper()
	cmd := exec.Command(sshPath, args...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &liveSSH{done: make(chan struct{})}
	br := bufio.NewReader(pipe)
	line, rerr := br.ReadString('\n')
	go func() {
		_, _ = io.Copy(io.Discard, br)
		l.err = cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-l.done
	})
	if rerr != nil || !strings.HasPrefix(line, first) {
		t.Fatalf("live ssh: first line %q, %v, want %s...", line, rerr, first)
	}
	return l
}

// wait returns ssh's exit once it has ended, failing the test if that
// takes longer than d.
func (l *liveSSH) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-l.done:
		return l.err
	case <-time.After(d):
		t.Fatalf("the live ssh client did not end within %v", d)
		return nil
	}
}

// eventually runs sluice until check accepts its stdout or 5s have passed
// (the gateway writes audit events through a queue).
func eventually(t *testing.T, check func(string) bool, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, out, errs := sluice(args...)
		if code != 0 {
			t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		if check(out) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSessionsAuditReplayKill(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	state := filepath.Join(t.TempDir(), "state")
	lines := startDemo(t, state)
	cfg := filepath.Join(state, "sluice.yaml")
	f := printed(t, lines, "ssh -i") // ssh OPTIONS... demo@HOST echo hello
	opts := append([]string{"-F", "/dev/null", "-o", "BatchMode=yes"}, f[1:len(f)-3]...)
	dest := f[len(f)-3]

	// A recorded shell with a pty that ends by itself.
	shell := exec.Command(sshPath, append(opts, "-tt", dest)...)
	shell.Stdin = strings.NewReader("echo REPLAY-$((2+3))-MARK; exit 0\n")
	out, err := shell.Output()
	if err != nil || !strings.Contains(string(out), "REPLAY-5-MARK") {
		t.Fatalf("shell: got %q, %v, want the marker", out, err)
	}

	// A session that stays until it is killed.
	live := startLive(t, sshPath, append(opts, dest, "echo started; sleep 60"), "started")

	code, lout, lerr := sluice("sessions", "-c", cfg, "--live", "--json")
	if code != 0 {
		t.Fatalf("sessions --live: exit %d: %s", code, lerr)
	}
	liveList := jsonLines[audit.SessionSummary](t, lout)
	if len(liveList) != 1 || liveList[0].User != "demo" || liveList[0].Client == "" {
		t.Fatalf("sessions --live: got %+v, want the one live session of demo", liveList)
	}
	liveID := liveList[0].ID

	// The store knows both sessions; the shell's has ended with status 0.
	stored := jsonLines[audit.SessionSummary](t, eventually(t, func(s string) bool {
		l := jsonLines[audit.SessionSummary](t, s)
		return len(l) == 2 && !l[0].End.IsZero()
	}, "sessions", "-c", cfg, "--json", "--user", "demo", "--since", "1h"))
	if len(stored) != 2 || stored[1].ID != liveID || stored[0].ExitStatus == nil || *stored[0].ExitStatus != 0 ||
		stored[0].BytesOut == 0 || stored[0].Recording == "" || !stored[1].End.IsZero() {
		t.Fatalf("sessions: got %+v, want the ended shell (exit 0, bytes, a recording) then the live session", stored)
	}
	shellID := stored[0].ID
	if code, text, _ := sluice("sessions", "-c", cfg); code != 0 || !strings.Contains(text, shellID) || !strings.Contains(text, "EXIT") {
		t.Fatalf("sessions (text): got %d %q, want a table naming %s", code, text, shellID)
	}
	if code, other, _ := sluice("sessions", "-c", cfg, "--json", "--user", "nobody"); code != 0 || other != "" {
		t.Fatalf("sessions --user nobody: got %d %q, want nothing", code, other)
	}

	// The shell's recording replays what it printed.
	code, played, perr := sluice("replay", "-c", cfg, shellID, "--speed", "1000")
	if code != 0 || !strings.Contains(played, "REPLAY-5-MARK") {
		t.Fatalf("replay: got %d %q %q, want the marker", code, played, perr)
	}
	// Its channel exports as asciicast v2.
	code, cast, perr := sluice("replay", "-c", cfg, shellID+"/ssh/session:0", "--asciicast")
	if code != 0 || !strings.HasPrefix(cast, `{"version":2,`) || !strings.Contains(cast, "REPLAY-5-MARK") {
		t.Fatalf("replay --asciicast: got %d %q %q, want an asciicast with the marker", code, cast, perr)
	}
	if err := record.Validate(strings.NewReader(cast)); err != nil {
		t.Fatalf("replay --asciicast: %v", err)
	}
	if code, _, perr := sluice("replay", "-c", cfg, shellID, "--asciicast"); code != 1 || !strings.Contains(perr, "takes a channel id") {
		t.Fatalf("replay --asciicast of a master: got %d %q, want 1 and a hint", code, perr)
	}

	// Kill the live session through the admin socket.
	if code, kout, kerr := sluice("kill", "-c", cfg, liveID); code != 0 || kout != "killed "+liveID+"\n" {
		t.Fatalf("kill: got %d %q %q, want 0 and killed %s", code, kout, kerr, liveID)
	}
	if err := live.wait(t, 15*time.Second); err == nil {
		t.Fatal("killed session: exited 0, want an error")
	}
	kills := jsonLines[audit.Event](t, eventually(t, func(s string) bool { return s != "" },
		"audit", "-c", cfg, "--json", "--type", "kill"))
	if len(kills) != 1 || kills[0].SessionID != liveID || kills[0].Verdict != audit.Accept || kills[0].User != "demo" {
		t.Fatalf("audit --type kill: got %+v, want one kill of %s", kills, liveID)
	}
	// --session selects the session and its stacked sessions, not others.
	evs := jsonLines[audit.Event](t, eventually(t, func(string) bool { return true }, "audit", "-c", cfg, "--json", "--session", shellID))
	if len(evs) == 0 {
		t.Fatal("audit --session: got no events")
	}
	for _, e := range evs {
		if e.SessionID != shellID && !strings.HasPrefix(e.SessionID, shellID+"/") {
			t.Fatalf("audit --session %s: got an event of %s", shellID, e.SessionID)
		}
	}
	if code, _, kerr := sluice("kill", "-c", cfg, liveID); code != 1 || !strings.Contains(kerr, "no such live session") {
		t.Fatalf("kill of an ended session: got %d %q, want 1 and no such live session", code, kerr)
	}
}

func TestSessionsCommandUsage(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"sessions"}, 2},
		{[]string{"sessions", "-c", "x.yaml", "extra"}, 2},
		{[]string{"audit", "--bogus"}, 2},
		{[]string{"replay", "-c", "x.yaml"}, 2},
		{[]string{"kill", "-c", "x.yaml"}, 2},
		{[]string{"kill", "-c", "/nonexistent/sluice.yaml", "gw1/ssh-in:1"}, 1},
	}
	for _, tt := range tests {
		if code, _, _ := sluice(tt.args...); code != tt.want {
			t.Errorf("sluice %q: got exit %d, want %d", tt.args, code, tt.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"2h", now.Add(-2 * time.Hour), false},
		{"2025-05-01T10:00:00Z", time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC), false},
		{"2025-05-01", time.Date(2025, 5, 1, 0, 0, 0, 0, time.Local), false},
		{"-2h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q): got %v, %v, want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestInSession(t *testing.T) {
	evs := []audit.Event{{SessionID: "gw1/ssh-in:1"}, {SessionID: "gw1/ssh-in:1/ssh"}, {SessionID: "gw1/ssh-in:10"}, {SessionID: "gw1/ssh-in:10/ssh"}}
	got := inSession(evs, "gw1/ssh-in:1")
	if len(got) != 2 || got[0].SessionID != "gw1/ssh-in:1" || got[1].SessionID != "gw1/ssh-in:1/ssh" {
		t.Fatalf("got %+v, want gw1/ssh-in:1 and its stacked session only", got)
	}
}

func TestParseHead(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		in      string
		want    audit.Link
		wantErr bool
	}{
		{"gw1:42:" + hash, audit.Link{Gateway: "gw1", Seq: 42, Hash: hash}, false},
		{"gw:1:42:" + strings.ToUpper(hash), audit.Link{Gateway: "gw:1", Seq: 42, Hash: hash}, false},
		{"gw1:0:" + hash, audit.Link{}, true},
		{"gw1:x:" + hash, audit.Link{}, true},
		{"gw1:42:abc", audit.Link{}, true},
		{"gw1:42:" + strings.Repeat("zz", 32), audit.Link{}, true},
		{":42:" + hash, audit.Link{}, true},
		{hash, audit.Link{}, true},
	}
	for _, tt := range tests {
		got, err := parseHead(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseHead(%q): got %+v, %v, want %+v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if code, _, _ := sluice("audit", "verify"); code != 2 {
		t.Errorf("audit verify without -c: got exit %d, want 2", code)
	}
}
