package gateway

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/metrics"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// TestMetricsAndHealth: after one proxied session and one refused login,
// /metrics on the loopback admin listener counts them, and /healthz is OK.
func TestMetricsAndHealth(t *testing.T) {
	w := newWorld(t, worldOptions{gateway: "  admin:\n    listen: 127.0.0.1:0\n"})
	if r := w.ssh(nil, "echo hi"); r.code != 0 {
		t.Fatalf("ssh: exit %d: %s", r.code, r.stderr)
	}
	// A login with an unknown key is refused and counted.
	bad := w.args("ssh")
	_, otherKey := sshtest.NewKey(t, t.TempDir(), "stranger")
	bad[slices.Index(bad, w.aliceKey)] = otherKey
	if r := w.run(nil, "ssh", append(bad, w.target()+"@127.0.0.1", "true")...); r.code == 0 {
		t.Fatal("a login with an unknown key succeeded")
	}
	base := "http://" + w.gw.AdminAddr().String()
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: got %d %q, want 200", code, body)
	}
	want := map[string]*regexp.Regexp{
		"session accepted":    regexp.MustCompile(`(?m)^sluice_sessions_total\{[^}]*verdict="accept"[^}]*\} (\d+)`),
		"auth failure":        regexp.MustCompile(`(?m)^sluice_auth_failures_total\{[^}]*\} (\d+)`),
		"bytes relayed":       regexp.MustCompile(`(?m)^sluice_relayed_bytes_total\{[^}]*direction="out"[^}]*\} (\d+)`),
		"handshake histogram": regexp.MustCompile(`(?m)^sluice_handshake_seconds_count\{[^}]*\} (\d+)`),
	}
	deadline := time.Now().Add(5 * time.Second)
	for name, re := range want {
		for {
			_, body := get(t, base+"/metrics")
			if m := re.FindStringSubmatch(body); m != nil {
				if n, _ := strconv.Atoi(m[1]); n > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no positive sample matching %s in:\n%s", name, re, body)
			}
			sleepBriefly()
		}
	}
}

func TestAdminListenRefusesNonLoopback(t *testing.T) {
	if _, err := metrics.Listen("0.0.0.0:0"); err == nil {
		t.Fatal("admin listener on 0.0.0.0: got nil error, want a refusal")
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
