package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// floodRefused is where the refused flood comes from: 127.0.0.1 is in the
// "servers" zone, from which ssh-in admits no client.
const floodRefused = "127.0.0.1"

// loginNowhere authenticates cfg's user through the gateway from the office
// zone and asks for a session, which the gateway must refuse because the
// user's target does not answer; it is safe to call from any goroutine.
func (w *world) loginNowhere(cfg *ssh.ClientConfig) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}, Timeout: time.Minute}
	addr := w.gw.Addr("ssh-in").String()
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	_ = nc.SetDeadline(time.Now().Add(2 * time.Minute))
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		nc.Close()
		return fmt.Errorf("login: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	if _, err := client.NewSession(); err == nil || !strings.Contains(err.Error(), "sluice: target unavailable") {
		return fmt.Errorf("session: got %v, want target unavailable", err)
	}
	return nil
}

// refuse opens n connections from floodRefused, each refused by the
// gateway, over the given number of workers, adding each one done to done.
func refuse(addr string, n, workers int, done *atomic.Int64) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodRefused)}, Timeout: time.Minute}
			for next.Add(1) <= int64(n) {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				// The gateway closes a refused connection first, so the
				// TIME_WAIT is on its side, not on the flood's ports.
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				_, err = io.Copy(io.Discard, c)
				c.Close()
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

// TestAuditFloodAndLogins: 20,000 connections refused by client_zones
// (4,000 under the race detector), with an OpenSSH login in the middle,
// then 200 concurrent logins (x/crypto clients), through an audit queue of
// 64 events under
// fail_closed. The audit store stays healthy throughout, no event is lost
// (the logins' writers wait for room instead), the refusals cost the store
// a bounded number of writes and are all accounted for (one by one or in
// audit.sampled summaries), the metrics count every refusal, and a
// permitted user logs in with OpenSSH afterwards.
func TestAuditFloodAndLogins(t *testing.T) {
	refusals, logins := 20000, 200
	if raceEnabled {
		refusals = 4000
	}
	w := newWorld(t, worldOptions{
		gateway: "  admin:\n    listen: 127.0.0.1:0\n  max_startups: \"256\"\n  per_source_max_startups: 0\n",
		tail:    "  queue_size: 64\n",
		// 200 handshakes at once take more than the default 20 s under
		// the race detector on a loaded machine.
		loginGraceTime: "2m",
		sshdConfig:     []string{"MaxStartups 256"},
	})
	addr := w.gw.Addr("ssh-in").String()

	var unhealthy atomic.Pointer[string]
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
			if err := w.gw.health(); err != nil {
				s := err.Error()
				unhealthy.CompareAndSwap(nil, &s)
			}
		}
	})

	// The flood, with a permitted OpenSSH login once a quarter is done.
	start := time.Now()
	var refused atomic.Int64
	floodDone := make(chan error, 1)
	go func() { floodDone <- refuse(addr, refusals, 16, &refused) }()
	for refused.Load() < int64(refusals/4) {
		sleepBriefly()
	}
	loginStart := time.Now()
	w.stillServes(t)
	t.Logf("OpenSSH login during the flood (after %d refusals) took %v", refused.Load(), time.Since(loginStart).Round(time.Millisecond))
	if err := <-floodDone; err != nil {
		t.Fatalf("flood: %v", err)
	}
	floodTook := time.Since(start)
	t.Logf("%d refused connections in %v (%.0f/s)", refusals, floodTook.Round(time.Millisecond), float64(refusals)/floodTook.Seconds())

	// 200 logins at once. They authenticate at the gateway and ask for a
	// session on a port where nothing listens: the gateway's work and audit
	// trail are a real login's (connection, auth, upstream refused, channel
	// refused, end), without 200 sshd handshakes, which on a loaded 2-core
	// machine take minutes and test the target, not the gateway.
	data, err := os.ReadFile(w.aliceKey)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sshtest.ClientConfig("alice+127.0.0.1:"+strconv.Itoa(sshtest.FreePort(t)), alice, w.hostKey)
	cfg.Timeout = time.Minute
	var loginWG sync.WaitGroup
	var failed atomic.Int64
	var firstLoginErr atomic.Pointer[error]
	start = time.Now()
	for range logins {
		loginWG.Go(func() {
			if err := w.loginNowhere(cfg); err != nil {
				failed.Add(1)
				firstLoginErr.CompareAndSwap(nil, &err)
			}
		})
	}
	loginWG.Wait()
	t.Logf("%d concurrent logins in %v", logins, time.Since(start).Round(time.Millisecond))
	if n := failed.Load(); n > 0 {
		t.Fatalf("logins: %d of %d failed, first: %v", n, logins, *firstLoginErr.Load())
	}
	w.stillServes(t)
	if code, body := w.healthz(t); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz after the flood: got %d %q, want 200 ok", code, body)
	}
	close(stopWatch)
	watch.Wait()
	if p := unhealthy.Load(); p != nil {
		t.Errorf("health during the flood: got %q, want healthy throughout", *p)
	}
	if got := w.gw.queue.Dropped(); got != 0 {
		t.Errorf("audit events dropped: got %d, want 0", got)
	}
	if got := counterValue(t, w.gw, "sluice_connections_total", map[string]string{"service": "ssh-in", "verdict": "reject"}); got != float64(refusals) {
		t.Errorf("sluice_connections_total{verdict=reject}: got %v, want %d", got, refusals)
	}
	summarised := w.gw.sampler.Summarised()

	// Stopping the gateway writes the last summaries; read the store then.
	w.stop()
	store, err := audit.Open(context.Background(), "sqlite", filepath.Join(w.dir, "state"), "gw1")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	all, err := store.Query(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var oneByOne, summaries, auths, outages int
	var counted int64
	for _, e := range all {
		switch {
		case e.Type == "connection" && e.Verdict == audit.Reject:
			oneByOne++
		case e.Type == audit.TypeSampled && e.Detail["type"] == "connection":
			summaries++
			n, _ := e.Detail["count"].(float64)
			counted += int64(n)
		case e.Type == "auth" && e.Verdict == audit.Accept:
			auths++
		case e.Type == audit.TypeStoreFailed:
			outages++
		}
	}
	t.Logf("store: %d events; refusals: %d one by one, %d in %d summaries (%d counted by the sampler)", len(all), oneByOne, counted, summaries, summarised)
	if int64(oneByOne)+counted != int64(refusals) {
		t.Errorf("refusals accounted: got %d one by one + %d summarised, want %d", oneByOne, counted, refusals)
	}
	// The bound: per 10 s interval, 100 one by one and 65 summaries.
	intervals := int(floodTook/(10*time.Second)) + 2
	if max := intervals * (100 + 65); oneByOne+summaries > max {
		t.Errorf("store writes for the refusals: got %d, want at most %d", oneByOne+summaries, max)
	}
	if auths != logins+2 {
		t.Errorf("auth accept events: got %d, want %d (every login, none lost)", auths, logins+2)
	}
	if outages != 0 {
		t.Errorf("store_failed events: got %d, want 0", outages)
	}
}

// counterValue returns the value of the counter name with labels.
func counterValue(t *testing.T, g *Gateway, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
