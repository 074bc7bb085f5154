package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/console"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// e2eDir holds the browser test's script and its npm dependencies.
const e2eDir = "../../internal/console/e2e"

// requirePlaywright returns node after checking playwright-core is
// installed next to the script (scripts/install-test-deps.sh does it).
func requirePlaywright(t *testing.T) string {
	t.Helper()
	node := sshtest.RequireTool(t, "node")
	if _, err := os.Stat(filepath.Join(e2eDir, "node_modules", "playwright-core")); err != nil {
		msg := "playwright-core not installed: npm ci --prefix internal/console/e2e (make test does) or unset SLUICE_INTEROP"
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatalf("SLUICE_INTEROP=require: %s", msg)
		}
		t.Skip(msg)
	}
	return node
}

// TestConsoleBrowser drives the console of a demo gateway in Debian's
// chromium: log in with password and TOTP, see a live ssh session, watch
// its output grow, open a finished session's timeline, replay it and seek
// to its end, kill the live session, and find the kill in the audit.
// SLUICE_CONSOLE_SCREENSHOTS=DIR saves a screenshot of each page there
// (docs/console holds the committed ones).
func TestConsoleBrowser(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	chromium := sshtest.RequireTool(t, "chromium")
	node := requirePlaywright(t)
	state := filepath.Join(t.TempDir(), "state")
	lines := startDemo(t, state)
	cfg := filepath.Join(state, "sluice.yaml")
	base := consoleBase(t, lines)
	f := printed(t, lines, "ssh -i") // ssh OPTIONS... demo@HOST echo hello
	opts := append([]string{"-F", "/dev/null", "-o", "BatchMode=yes"}, f[1:len(f)-3]...)
	dest := f[len(f)-3]

	// A finished session with a pty, to replay.
	out, err := exec.Command(sshPath, append(opts, "-tt", dest, "echo one; sleep 1; echo two; sleep 1; echo three")...).Output()
	if err != nil || !strings.Contains(string(out), "three") {
		t.Fatalf("finished session: got %q, %v", out, err)
	}
	done := jsonLines[audit.SessionSummary](t, eventually(t, func(s string) bool {
		l := jsonLines[audit.SessionSummary](t, s)
		return len(l) == 1 && !l[0].End.IsZero()
	}, "sessions", "-c", cfg, "--json"))
	if len(done) != 1 {
		t.Fatalf("sessions: got %+v, want the finished one", done)
	}

	// A live session printing a tick every half second.
	live := startLive(t, sshPath, append(opts, "-tt", dest, "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.5; done"), "tick")
	code, lout, lerr := sluice("sessions", "-c", cfg, "--live", "--json")
	liveList := jsonLines[audit.SessionSummary](t, lout)
	if code != 0 || len(liveList) != 1 {
		t.Fatalf("sessions --live: got %d %+v %s", code, liveList, lerr)
	}
	liveID := liveList[0].ID

	// An operator, logging in with the code of this moment.
	const password = "browser test password"
	_, secret, err := console.NewCredentials(filepath.Join(state, "console"), nil).NewOperator("ops", password, "sluice demo")
	if err != nil {
		t.Fatal(err)
	}
	shots := os.Getenv("SLUICE_CONSOLE_SCREENSHOTS")
	if shots != "" && !filepath.IsAbs(shots) {
		// Relative to the repository; node runs in e2eDir.
		if shots, err = filepath.Abs(filepath.Join("..", "..", shots)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.e2e.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(), "BASE="+base, "NAME=ops", "PASSWORD="+password,
		"LIVE="+liveID, "DONE="+done[0].ID, "SHOTS="+shots, "CHROMIUM="+chromium)
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := ""
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		last = sc.Text()
		t.Logf("browser: %s", last)
		if last == "need code" {
			// The code of this moment, when the browser is ready for it.
			c, err := totp.GenerateCode(secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(stdin, c+"\n")
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || last != "ok" {
		t.Fatalf("browser test: %v, last line %q, want ok", err, last)
	}

	// The kill is audited with the operator's name; the ssh client ended.
	kills := jsonLines[audit.Event](t, eventually(t, func(s string) bool { return s != "" }, "audit", "-c", cfg, "--json", "--type", "kill"))
	if len(kills) != 1 || kills[0].SessionID != liveID || kills[0].Detail["operator"] != "ops" || kills[0].Rule != "console" {
		t.Fatalf("kill events: got %+v, want one of %s by ops", kills, liveID)
	}
	live.wait(t, 20*time.Second)
	for _, typ := range []string{"console.login", "console.live", "console.replay"} {
		ev := jsonLines[audit.Event](t, eventually(t, func(s string) bool { return s != "" }, "audit", "-c", cfg, "--json", "--type", typ))
		if len(ev) == 0 || ev[len(ev)-1].User != "ops" {
			t.Errorf("%s events: got %+v, want some by ops", typ, ev)
		}
	}
}
