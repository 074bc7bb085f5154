package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Slack allowed over the baseline once the gateway has settled: the
// runtime and the testing package start and end a few goroutines of their
// own; the gateway opens no file that should outlive a connection.
const (
	leakGoroutineSlack = 5
	leakFDSlack        = 0
	leakSettle         = 10 * time.Second
)

// abruptStage is how far a connection gets before the client drops it.
type abruptStage int

const (
	stageTCP      abruptStage = iota // TCP connect, then close
	stageKex                         // banner sent, or host key seen, then close
	stageAuth                        // handshake done, close while authenticating
	stageSession                     // session channel open, then close the TCP conn
	stageTransfer                    // reading a large exec's output, then close
	stageCount
)

func (s abruptStage) String() string {
	return [...]string{"tcp", "kex", "auth", "session", "transfer"}[s]
}

var errAbort = errors.New("leak test: abort")

// TestLeakAbruptEnds: connections that the client drops at every stage —
// after TCP connect, during key exchange, during authentication, with a
// session open, and in the middle of a transfer — leave no goroutine and
// no file descriptor behind once the gateway has settled. The regular
// suite drops 50 connections at each stage (a leak of one goroutine or
// descriptor per connection shows as 50, against a slack of 5 goroutines
// and no descriptor); with SLUICE_SOAK=1, 2,000 at each.
func TestLeakAbruptEnds(t *testing.T) {
	n, workers := 250, 6
	if os.Getenv("SLUICE_SOAK") == "1" {
		n = 10000
	}
	// Generous startup limits: the test is about the stages, not shedding.
	// Workers stay below the target sshd's MaxStartups start of 10.
	w := newWorld(t, worldOptions{gateway: "  max_startups: \"100000:30:200000\"\n  per_source_max_startups: 0\n"})
	cfg := w.aliceConfig(t)
	addr := w.gw.Addr("ssh-in").String()

	// Warm up every path once, so that pools and lazily started goroutines
	// are part of the baseline.
	for s := range stageCount {
		if err := abruptConn(addr, cfg, s, 0); err != nil {
			t.Fatalf("warm-up %v: %v", s, err)
		}
	}
	warm := w.dial(t, cfg)
	if out := runOn(t, warm, "echo warm"); out != "warm\n" {
		t.Fatalf("warm-up session: got %q", out)
	}
	warm.Close()
	time.Sleep(500 * time.Millisecond)
	baseG, baseFD := settled(t, 0, 0, 3*time.Second)
	t.Logf("baseline: %d goroutines, %d fds", baseG, baseFD)

	var reached, failed [stageCount]atomic.Int64
	var firstErr sync.Map // stage -> error
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				s := abruptStage(i % int64(stageCount))
				if err := abruptConn(addr, cfg, s, int(i/int64(stageCount))); err != nil {
					failed[s].Add(1)
					firstErr.LoadOrStore(s, err)
					continue
				}
				reached[s].Add(1)
			}
		})
	}
	wg.Wait()
	flood := time.Since(start)
	var report []string
	for s := range stageCount {
		report = append(report, fmt.Sprintf("%v %d/%d", s, reached[s].Load(), reached[s].Load()+failed[s].Load()))
	}
	t.Logf("%d abrupt connections in %v with %d workers: %s", n, flood, workers, strings.Join(report, ", "))
	for s := range stageCount {
		// Every connection must have got as far as its stage, or the test
		// exercises less than it claims.
		if f := failed[s].Load(); f > 0 {
			err, _ := firstErr.Load(s)
			t.Errorf("stage %v: %d connections did not reach the stage (first: %v)", s, f, err)
		}
	}

	settleStart := time.Now()
	g, fd := settled(t, baseG+leakGoroutineSlack, baseFD+leakFDSlack, leakSettle)
	t.Logf("after %v: %d goroutines (baseline %d, slack %d), %d fds (baseline %d, slack %d)",
		time.Since(settleStart), g, baseG, leakGoroutineSlack, fd, baseFD, leakFDSlack)
	if g > baseG+leakGoroutineSlack || fd > baseFD+leakFDSlack {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
		t.Fatalf("leak: got %d goroutines and %d fds after %v, want at most %d and %d\n%s",
			g, fd, leakSettle, baseG+leakGoroutineSlack, baseFD+leakFDSlack, sb.String())
	}
	w.stillServes(t)
}

// settled polls the goroutine and fd counts until both are at most the
// given bounds (0: until they stop falling) or d passes, and returns them.
func settled(t *testing.T, maxG, maxFD int, d time.Duration) (g, fd int) {
	t.Helper()
	deadline := time.Now().Add(d)
	prevG, prevFD := -1, -1
	for {
		runtime.GC()
		g, fd = runtime.NumGoroutine(), openFDs(t)
		if maxG > 0 && g <= maxG && fd <= maxFD {
			return g, fd
		}
		if maxG == 0 && g == prevG && fd == prevFD {
			return g, fd
		}
		if time.Now().After(deadline) {
			return g, fd
		}
		prevG, prevFD = g, fd
		time.Sleep(100 * time.Millisecond)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// abruptConn opens one connection to the gateway from the office zone and
// drops it at stage s; variant picks between ways of reaching the stage. It
// returns an error when the connection did not get as far as the stage.
func abruptConn(addr string, cfg *ssh.ClientConfig, s abruptStage, variant int) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	switch s {
	case stageTCP:
		return nil
	case stageKex:
		if variant%2 == 0 {
			// Our banner, the gateway's banner, then gone.
			if _, err := nc.Write([]byte("SSH-2.0-leak\r\n")); err != nil {
				return err
			}
			line, err := bufio.NewReader(nc).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
				return fmt.Errorf("gateway banner: got %q, %v", line, err)
			}
			return nil
		}
		// Gone in the middle of the key exchange, once the gateway has
		// signed it.
		c := *cfg
		var seen atomic.Bool
		c.HostKeyCallback = func(string, net.Addr, ssh.PublicKey) error { seen.Store(true); nc.Close(); return errAbort }
		_, _, _, err := ssh.NewClientConn(nc, addr, &c)
		if !seen.Load() {
			return fmt.Errorf("no host key seen: %v", err)
		}
		return nil
	case stageAuth:
		// Gone after the "none" attempt, while choosing a key.
		c := *cfg
		var asked atomic.Bool
		c.Auth = []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			asked.Store(true)
			nc.Close()
			return nil, errAbort
		})}
		_, _, _, err := ssh.NewClientConn(nc, addr, &c)
		if !asked.Load() {
			return fmt.Errorf("authentication not reached: %v", err)
		}
		return nil
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		return err
	}
	client := ssh.NewClient(conn, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return err
	}
	if s == stageSession {
		return nil
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	if err := sess.Start("head -c 1000000000 /dev/zero"); err != nil {
		return err
	}
	if _, err := io.ReadFull(out, make([]byte, 64<<10)); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	// Dropped with data in flight both ways.
	return nc.Close()
}
