package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// consoleBase returns the console URL the demo printed.
func consoleBase(t *testing.T, lines []string) string {
	t.Helper()
	for _, l := range lines {
		if _, rest, ok := strings.Cut(l, "console at https://"); ok {
			return "https://" + strings.Fields(rest)[0]
		}
	}
	t.Fatalf("no console URL in:\n%s", strings.Join(lines, "\n"))
	return ""
}

// TestRemoteCLI runs sessions, audit, replay and kill with --server
// against the console of a demo gateway, as an operator without a shell
// on it would: a finished shell and a live session, seen, searched,
// replayed and killed through the API; a missing or wrong token, an
// untrusted certificate and -c with --server are refused.
func TestRemoteCLI(t *testing.T) {
	sshPath := sshtest.RequireTool(t, "ssh")
	state := filepath.Join(t.TempDir(), "state")
	lines := startDemo(t, state)
	cfg := filepath.Join(state, "sluice.yaml")
	base := consoleBase(t, lines)
	cert := filepath.Join(state, "console", "cert.pem")
	f := printed(t, lines, "ssh -i")
	opts := append([]string{"-F", "/dev/null", "-o", "BatchMode=yes"}, f[1:len(f)-3]...)
	dest := f[len(f)-3]

	out, err := exec.Command(sshPath, append(opts, "-tt", dest, "echo REMOTE-$((6*7))-MARK")...).Output()
	if err != nil || !strings.Contains(string(out), "REMOTE-42-MARK") {
		t.Fatalf("finished session: got %q, %v", out, err)
	}
	live := startLive(t, sshPath, append(opts, dest, "echo started; sleep 60"), "started")

	code, tok, terr := sluice("console", "token", "-c", cfg, "--name", "remote-op", "--ttl", "1h")
	tok = strings.TrimSpace(tok)
	if code != 0 || tok == "" {
		t.Fatalf("console token: got %d %q", code, terr)
	}
	remote := []string{"--server", base, "--token", tok, "--cacert", cert}

	// The same answers as the local store's, once the finished one has ended.
	local := jsonLines[audit.SessionSummary](t, eventually(t, func(s string) bool {
		l := jsonLines[audit.SessionSummary](t, s)
		return len(l) == 2 && !l[0].End.IsZero()
	}, "sessions", "-c", cfg, "--json"))
	code, rout, rerr := sluice(append([]string{"sessions", "--json"}, remote...)...)
	got := jsonLines[audit.SessionSummary](t, rout)
	if code != 0 || len(got) != 2 || len(local) != 2 || got[0].ID != local[0].ID || got[1].ID != local[1].ID {
		t.Fatalf("sessions --server: got %d %+v %s, want %+v", code, got, rerr, local)
	}
	doneID, liveID := local[0].ID, local[1].ID
	if code, rout, rerr = sluice(append([]string{"sessions", "--json", "--live"}, remote...)...); code != 0 {
		t.Fatalf("sessions --live --server: exit %d: %s", code, rerr)
	}
	if l := jsonLines[audit.SessionSummary](t, rout); len(l) != 1 || l[0].ID != liveID {
		t.Fatalf("sessions --live --server: got %+v, want %s", l, liveID)
	}
	if code, rout, _ = sluice(append([]string{"sessions", "--json", "--user", "nobody", "--since", "1h"}, remote...)...); code != 0 || rout != "" {
		t.Fatalf("sessions --user nobody --server: got %d %q, want nothing", code, rout)
	}
	if code, rout, _ = sluice(append([]string{"sessions"}, remote...)...); code != 0 || !strings.Contains(rout, doneID) || !strings.Contains(rout, "EXIT") {
		t.Fatalf("sessions --server (table): got %d %q", code, rout)
	}

	// audit: --type is one type, as locally (the API's is a prefix).
	code, rout, rerr = sluice(append([]string{"audit", "--json", "--type", "session.start", "--session", doneID}, remote...)...)
	if ev := jsonLines[audit.Event](t, rout); code != 0 || len(ev) != 1 || ev[0].SessionID != doneID || ev[0].Type != "session.start" {
		t.Fatalf("audit --type session.start --session --server: got %d %+v %s", code, ev, rerr)
	}
	if code, rout, _ = sluice(append([]string{"audit", "--json", "--type", "session"}, remote...)...); code != 0 || rout != "" {
		t.Fatalf("audit --type session --server: got %d %q, want no event (not a prefix)", code, rout)
	}

	// replay: played, and one channel as asciicast.
	code, played, perr := sluice(append([]string{"replay", doneID, "--speed", "1000"}, remote...)...)
	if code != 0 || !strings.Contains(played, "REMOTE-42-MARK") {
		t.Fatalf("replay --server: got %d %q %q", code, played, perr)
	}
	code, cast, perr := sluice(append([]string{"replay", doneID + "/ssh/session:0", "--asciicast"}, remote...)...)
	if code != 0 || !strings.HasPrefix(cast, `{"version":2,`) || !strings.Contains(cast, "REMOTE-42-MARK") {
		t.Fatalf("replay --asciicast --server: got %d %q %q", code, cast, perr)
	}
	if err := record.Validate(strings.NewReader(cast)); err != nil {
		t.Fatalf("replay --asciicast --server: %v", err)
	}
	if code, _, perr = sluice(append([]string{"replay", "demo/nothing:9"}, remote...)...); code != 1 || !strings.Contains(perr, "404") {
		t.Fatalf("replay of an unknown session --server: got %d %q, want 1 and 404", code, perr)
	}

	// Refusals: no token, a wrong one, an untrusted certificate, both -c and --server.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sessions", "--server", base, "--cacert", cert}, 2, "--token"},
		{[]string{"sessions", "--server", base, "--cacert", cert, "--token", tok + "x"}, 1, "401"},
		{[]string{"kill", liveID, "--server", base, "--token", tok}, 1, "certificate"},
		{[]string{"sessions", "-c", cfg, "--server", base, "--token", tok}, 2, "not both"},
		{[]string{"sessions", "-c", cfg, "--token", tok}, 2, "go with --server"},
		{[]string{"sessions", "--server", "http://" + strings.TrimPrefix(base, "https://"), "--token", tok}, 2, "https://"},
	} {
		if code, _, e := sluice(tt.args...); code != tt.code || !strings.Contains(e, tt.want) {
			t.Errorf("sluice %s: got %d %q, want %d and %q", strings.Join(tt.args, " "), code, e, tt.code, tt.want)
		}
	}

	// kill: the session ends, audited with the token's name; an unknown one is a 404.
	if code, kout, kerr := sluice(append([]string{"kill", liveID}, remote...)...); code != 0 || kout != "killed "+liveID+"\n" {
		t.Fatalf("kill --server: got %d %q %q", code, kout, kerr)
	}
	if err := live.wait(t, 15*time.Second); err == nil {
		t.Error("the killed session's ssh exited 0")
	}
	if code, _, kerr := sluice(append([]string{"kill", "demo/demo:99"}, remote...)...); code != 1 || !strings.Contains(kerr, "404") {
		t.Fatalf("kill of an unknown session --server: got %d %q, want 1 and 404", code, kerr)
	}
	kills := jsonLines[audit.Event](t, eventually(t, func(s string) bool { return s != "" }, "audit", "-c", cfg, "--json", "--type", "kill"))
	if len(kills) != 1 || kills[0].SessionID != liveID || kills[0].Detail["operator"] != "remote-op" {
		t.Fatalf("kill events: got %+v, want one of %s by remote-op", kills, liveID)
	}
}
