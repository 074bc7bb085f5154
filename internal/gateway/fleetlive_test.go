package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"github.com/sluice-ssh/sluice/internal/console"
)

// TestConsoleLiveAcrossFleet: two gateways share a PostgreSQL store and a
// recordings folder; a pty session held by gw1 is watched live from gw2's
// console (output written after the viewer came arrives), gw2's detail
// page marks it live, and the view ends with "done" once the session
// has ended on gw1.
func TestConsoleLiveAcrossFleet(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Schema(t)
	shared := filepath.Join(t.TempDir(), "recordings")
	node := func(name, tail string) *world {
		return newWorld(t, worldOptions{name: name, sink: dsn, builtinTarget: true, service: "    record: true\n",
			gateway: "  fleet: {lease: 3s}\n", tail: "record: {dir: " + shared + "}\n" + tail})
	}
	gw1 := node("gw1", "")
	gw2 := node("gw2", "console: {listen: \"127.0.0.1:0\"}\n")

	// A pty session on gw1 that writes a line, and another once watched.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append(gw1.args("ssh"), "-tt", gw1.target()+"@127.0.0.1",
		"echo first-line; read go; echo second-line; sleep 1")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	br := bufio.NewReader(out)
	if l, err := br.ReadString('\n'); err != nil || !strings.Contains(l, "first-line") {
		t.Fatalf("session on gw1: got %q, %v, want first-line", l, err)
	}
	go func() {
		_, _ = io.Copy(io.Discard, br)
		exited <- cmd.Wait()
	}()
	var id string
	for deadline := time.Now().Add(15 * time.Second); id == ""; time.Sleep(100 * time.Millisecond) {
		for _, s := range gw2.gw.FleetSessions() {
			if strings.HasPrefix(s.ID, "gw1/") {
				id = s.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("gw2 does not list gw1's session within 15s")
		}
	}

	srv := gw2.gw.Console()
	tok, err := srv.Credentials().NewToken("ci", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate().Leaf)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	base := "https://" + gw2.gw.ConsoleAddr().String() + "/api/v1/sessions/" + url.PathEscape(id)
	get := func(path string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("")
	var d console.SessionDetail
	err = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if err != nil || !d.Session.Live {
		t.Errorf("gw2's detail of %s: got live %v (%v), want true", id, d.Session.Live, err)
	}
	// The recording's audit event comes through gw1's queue: until it is
	// in the store the view answers 404.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp = get("/live")
		if resp.StatusCode == http.StatusOK {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("gw2's live view of %s: got %s, want 200", id, resp.Status)
		}
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	// upTo reads the stream up to a line holding want, and returns it.
	upTo := func(want string) string {
		for lines.Scan() {
			if l := lines.Text(); strings.Contains(l, want) || l == "event: done" {
				return l
			}
		}
		t.Fatalf("gw2's live view ended before %q: %v", want, lines.Err())
		return ""
	}
	if reset := upTo("data: "); !strings.Contains(reset, `"init":`) || !strings.Contains(reset, "first-line") {
		t.Fatalf("reset: got %q, want the output so far (first-line)", reset)
	}
	watched := time.Now()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if l := upTo("second-line"); l == "event: done" {
		t.Fatal("the view ended before second-line")
	}
	seen := time.Since(watched)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("session on gw1: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("session on gw1 did not end within 30s")
	}
	ended := time.Now()
	upTo("event: done")
	t.Logf("gw2 showed gw1's output %v after it was asked for; its view ended %v after the session", seen.Round(time.Millisecond), time.Since(ended).Round(time.Millisecond))
}
