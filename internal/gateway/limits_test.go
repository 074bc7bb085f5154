package gateway

import (
	"bufio"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// floodAddr is where the half-open flood comes from: the office zone, but
// another source than the legitimate user's clientAddr.
const floodAddr = "127.0.0.3"

func (w *world) aliceConfig(t *testing.T) *ssh.ClientConfig {
	t.Helper()
	return w.keyConfig(t, w.aliceKey, w.target())
}

// keyConfig is a client configuration that logs in to the gateway as
// user with the private key in the file key.
func (w *world) keyConfig(t *testing.T, key, user string) *ssh.ClientConfig {
	t.Helper()
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sshtest.ClientConfig(user, signer, w.hostKey)
	cfg.Timeout = 10 * time.Second
	return cfg
}

// echoSession runs cat on the target through the gateway and returns a
// function that measures one line's round trip.
func echoSession(t *testing.T, client *ssh.Client) func() time.Duration {
	t.Helper()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("cat"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	return func() time.Duration {
		start := time.Now()
		if _, err := io.WriteString(in, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo: got %q, %v; want ping", line, err)
		}
		return time.Since(start)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestHalfOpenFlood: 1,000 TCP connections that never send a byte do not
// delay an authenticated user's interactive round trip by more than tens of
// milliseconds, and a new legitimate login still succeeds, because the
// per-source limit refuses all but per_source_max_startups of them.
func TestHalfOpenFlood(t *testing.T) {
	const flood = 1000
	// Start above per_source_max_startups, so one flooding source cannot
	// reach the random early drop on its own.
	w := newWorld(t, worldOptions{gateway: "  max_startups: \"30:30:100\"\n  per_source_max_startups: 10\n"})
	cfg := w.aliceConfig(t)
	client := w.dial(t, cfg)
	defer client.Close()
	rtt := echoSession(t, client)
	var before []time.Duration
	for range 30 {
		before = append(before, rtt())
	}

	addr := w.gw.Addr("ssh-in").String()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodAddr)}, Timeout: 5 * time.Second}
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	floodStart := time.Now()
	for range flood {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	floodTook := time.Since(floodStart)

	var during []time.Duration
	for range 30 {
		during = append(during, rtt())
	}
	loginStart := time.Now()
	second := w.dial(t, cfg)
	login := time.Since(loginStart)
	second.Close()

	b, a := median(before), median(during)
	t.Logf("flood of %d half-open connections took %v; round trip median before %v, during %v (max %v); new login %v",
		flood, floodTook, b, a, slices.Max(during), login)
	if a-b > 50*time.Millisecond {
		t.Errorf("round trip during the flood: got median %v, want within 50ms of %v", a, b)
	}
	// The second login's slot is released by the gateway's side of the
	// login, which may finish just after the client's: wait for it.
	got := w.gw.startups.Unauthenticated()
	for deadline := time.Now().Add(5 * time.Second); got > w.gw.cfg.Gateway.PerSourceMaxStartups && time.Now().Before(deadline); got = w.gw.startups.Unauthenticated() {
		time.Sleep(10 * time.Millisecond)
	}
	if got > w.gw.cfg.Gateway.PerSourceMaxStartups {
		t.Errorf("unauthenticated connections held: got %d, want at most %d", got, w.gw.cfg.Gateway.PerSourceMaxStartups)
	}
	if evs := w.events("connection", nil); len(evs) == 0 {
		t.Error("no connection events audited")
	}
}

// TestIdleTimeout: a connection whose channels move no data for
// idle_timeout is closed on both legs and audited as idle.
func TestIdleTimeout(t *testing.T) {
	w := newWorld(t, worldOptions{service: "    idle_timeout: 2s\n"})
	client := w.dial(t, w.aliceConfig(t))
	defer client.Close()
	rtt := echoSession(t, client)
	var last time.Time
	for range 5 { // activity keeps it open past the timeout
		rtt()
		last = time.Now()
		time.Sleep(500 * time.Millisecond)
	}
	if !endsWithin(client, 10*time.Second) {
		t.Fatal("idle connection still open after 10s, want closed after about 2s")
	}
	t.Logf("closed %v after the last data", time.Since(last))
	evs := w.events("idle", nil)
	if len(evs) != 1 || evs[0].Rule != "services[ssh-in].idle_timeout" || !strings.Contains(evs[0].Reason, "idle timeout") {
		t.Fatalf("got idle events %+v, want one by services[ssh-in].idle_timeout", evs)
	}
	if evs := w.events("session.end", nil); len(evs) != 1 || !strings.Contains(evs[0].Reason, "idle timeout") {
		t.Fatalf("got session.end %+v, want reason idle timeout", evs)
	}
}
