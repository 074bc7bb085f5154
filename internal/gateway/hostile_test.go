package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// rawDial opens a TCP connection to the gateway from the office zone,
// bounded by a deadline of a minute.
func (w *world) rawDial(t *testing.T) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", w.gw.Addr("ssh-in").String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads and discards what the gateway sends on c until it
// closes the connection, and fails the test when that takes longer than d.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v, want closed by the gateway", d)
	}
	return took
}

// stillServes checks that a legitimate OpenSSH login through the gateway
// works.
func (w *world) stillServes(t *testing.T) {
	t.Helper()
	r := w.ssh(nil, "echo ok")
	if r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("legitimate session: got %d %q (stderr %q), want 0 %q", r.code, r.stdout, r.stderr, "ok\n")
	}
}

// waitEvents polls the audit store until at least want events of typ match,
// for up to 20s, and returns them.
func (w *world) waitEvents(t *testing.T, typ string, want int, match func(audit.Event) bool) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, err := w.gw.Store().Query(t.Context(), audit.Filter{Type: typ})
		if err != nil {
			t.Fatalf("audit query: %v", err)
		}
		var got []audit.Event
		for _, e := range all {
			if match == nil || match(e) {
				got = append(got, e)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		sleepBriefly()
	}
}

// from matches the events of the connection whose client address is addr.
func from(addr net.Addr, verdict audit.Verdict) func(audit.Event) bool {
	return func(e audit.Event) bool {
		return e.ClientAddr == addr.String() && (verdict == "" || e.Verdict == verdict)
	}
}

// TestHostileClientPreAuth: a client that sends garbage, an endless or
// dripping version line, or an absurd packet length is disconnected within
// a bound far below the login grace time (or, for the drip, at the login
// grace time), its audit says the handshake failed, and the gateway goes on
// serving others.
func TestHostileClientPreAuth(t *testing.T) {
	cases := []struct {
		name  string
		grace string
		// bound is how soon the gateway must close the connection.
		bound time.Duration
		// send is the hostile peer; it must return when writes fail or
		// stop is closed.
		send func(c net.Conn, stop <-chan struct{})
	}{
		{"garbage", "", 5 * time.Second, func(c net.Conn, stop <-chan struct{}) {
			b := make([]byte, 64<<10)
			_, _ = rand.Read(b)
			_, _ = c.Write(b)
		}},
		{"endless version line", "", 5 * time.Second, func(c net.Conn, stop <-chan struct{}) {
			// x/crypto/ssh gives up after 255 bytes (RFC 4253 §4.2); up to
			// 64 MiB are offered.
			_, _ = c.Write([]byte("SSH-2.0-"))
			streamUntil(c, stop, bytes.Repeat([]byte("a"), 32<<10), 64<<20)
		}},
		{"endless lines before the version", "", 5 * time.Second, func(c net.Conn, stop <-chan struct{}) {
			// x/crypto/ssh ignores at most 1024 lines before the version.
			streamUntil(c, stop, bytes.Repeat([]byte("not a version\r\n"), 2048), 64<<20)
		}},
		{"dripping version line", "2s", 6 * time.Second, func(c net.Conn, stop <-chan struct{}) {
			_, _ = c.Write([]byte("SSH-2.0-"))
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for range 200 {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}},
		{"packet length 0xfffffff0", "", 5 * time.Second, func(c net.Conn, stop <-chan struct{}) {
			pkt := []byte("SSH-2.0-hostile\r\n")
			pkt = binary.BigEndian.AppendUint32(pkt, 0xfffffff0)
			pkt = append(pkt, make([]byte, 64)...)
			_, _ = c.Write(pkt)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{loginGraceTime: tc.grace})
			c := w.rawDial(t)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { tc.send(c, stop) })
			took := closedWithin(t, c, tc.bound)
			close(stop)
			c.Close()
			wg.Wait()
			t.Logf("closed by the gateway after %v", took)
			evs := w.waitEvents(t, "auth", 1, from(c.LocalAddr(), audit.Reject))
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, "handshake or authentication failed") {
				t.Fatalf("got auth events %+v, want one reject saying the handshake failed", evs)
			}
			t.Logf("audit reason: %s", evs[0].Reason)
			w.stillServes(t)
		})
	}
}

// streamUntil writes chunk repeatedly until max bytes were written, a write
// fails or stop is closed.
func streamUntil(c net.Conn, stop <-chan struct{}, chunk []byte, max int) {
	for n := 0; n < max; n += len(chunk) {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// TestHostileChannelOpenFlood: 10,000 channel opens on one connection get
// at most max_channels channels; every other open is refused with
// resource shortage and audited by the max_channels rule, the audit queue
// keeps up, and the connection and the gateway go on working.
func TestHostileChannelOpenFlood(t *testing.T) {
	const opens, workers, maxChannels = 10000, 4, 10 // the default max_channels
	w := newWorld(t, worldOptions{})
	client := w.dial(t, w.aliceConfig(t))
	defer client.Close()

	var mu sync.Mutex
	var open []ssh.Channel
	rejected := 0
	var others []error
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range opens / workers {
				ch, reqs, err := client.OpenChannel("session", nil)
				mu.Lock()
				var oe *ssh.OpenChannelError
				switch {
				case err == nil:
					go ssh.DiscardRequests(reqs)
					open = append(open, ch)
				case errors.As(err, &oe) && oe.Reason == ssh.ResourceShortage:
					rejected++
				default:
					others = append(others, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d channel opens in %v: %d open, %d refused", opens, time.Since(start), len(open), rejected)
	if len(others) > 0 {
		t.Fatalf("got %d other errors (first %v), want only resource shortage", len(others), others[0])
	}
	if len(open) < 1 || len(open) > maxChannels || rejected != opens-len(open) {
		t.Fatalf("got %d open, %d refused; want 1..%d open and the rest refused", len(open), rejected, maxChannels)
	}
	// The 1st, 2nd, 4th... refusal is audited, so that the flood cannot
	// fill the audit queue.
	isMax := func(e audit.Event) bool {
		return e.Verdict == audit.Reject && e.Rule == "services[ssh-in].max_channels"
	}
	want := bits.Len(uint(rejected))
	evs := w.waitEvents(t, "channel", want, isMax)
	if len(evs) != want {
		t.Fatalf("got %d max_channels rejects in the audit, want %d", len(evs), want)
	}
	if last := evs[len(evs)-1].Detail["refused"]; fmt.Sprint(last) != strconv.Itoa(1<<(want-1)) {
		t.Fatalf("got the last audited refusal's count %v, want %d", last, 1<<(want-1))
	}
	if err := w.gw.queue.Healthy(); err != nil {
		t.Fatalf("audit queue after the flood: got %v, want healthy", err)
	}
	for _, ch := range open {
		ch.Close()
	}
	// The flooding connection itself still works once it is under the limit.
	out := runOn(t, client, "echo again")
	if out != "again\n" {
		t.Fatalf("the flooding connection: got %q, want %q", out, "again\n")
	}
	client.Close()
	evs = w.waitEvents(t, "session.end", 1, from(client.LocalAddr(), ""))
	// runOn's retries, while the closed channels were still counted, may
	// have been refused too.
	if len(evs) != 1 {
		t.Fatalf("got session.end %+v, want one", evs)
	}
	if n, err := strconv.Atoi(fmt.Sprint(evs[0].Detail["channels_refused"])); err != nil || n < rejected || n > rejected+250 {
		t.Fatalf("got session.end channels_refused %v, want %d (plus runOn's retries)", evs[0].Detail["channels_refused"], rejected)
	}
	w.stillServes(t)
}

// runOn runs a command in a new session on client, retrying briefly while
// the channels closed just before are still counted as open.
func runOn(t *testing.T, client *ssh.Client, cmd string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := client.NewSession()
		if err == nil {
			out, err := s.Output(cmd)
			s.Close()
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("new session: %v", err)
		}
		sleepBriefly()
	}
}

// TestHostileRequestFlood: a flood of global requests, and channels that
// get a burst of requests and are closed by the client while the gateway
// is still working through them, neither stop the gateway nor break the
// flooding connection.
func TestHostileRequestFlood(t *testing.T) {
	const global, channels, perChannel, refusedEnv = 10000, 20, 200, 5000
	w := newWorld(t, worldOptions{})
	client := w.dial(t, w.aliceConfig(t))
	defer client.Close()

	start := time.Now()
	payload := bytes.Repeat([]byte("x"), 1024)
	for i := range global {
		// One in a hundred waits for its answer, which must be a refusal.
		if i%100 == 0 {
			ok, _, err := client.SendRequest("hostile@sluice.test", true, payload)
			if err != nil || ok {
				t.Fatalf("global request %d: got %v, %v; want refused", i, ok, err)
			}
			continue
		}
		if _, _, err := client.SendRequest("hostile@sluice.test", false, payload); err != nil {
			t.Fatalf("global request %d: %v", i, err)
		}
	}
	t.Logf("%d global requests in %v", global, time.Since(start))

	start = time.Now()
	for range channels {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		var wg sync.WaitGroup
		for i := range perChannel {
			env := ssh.Marshal(struct{ Name, Value string }{"LC_FLOOD", strconv.Itoa(i)})
			if i%10 == 0 {
				// Replies may never come once the channel is closed; the
				// goroutine ends when the channel does.
				wg.Go(func() { _, _ = ch.SendRequest("env", true, env) })
				continue
			}
			_, _ = ch.SendRequest("env", false, env)
			_, _ = ch.SendRequest("hostile@sluice.test", false, payload)
		}
		ch.Close()
		waitGroupWithin(t, &wg, 10*time.Second)
	}
	t.Logf("%d channels with %d requests each, closed by the client, in %v", channels, 2*perChannel, time.Since(start))

	// Requests the policy refuses cost the gateway no upstream round trip.
	start = time.Now()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	for i := range refusedEnv {
		env := ssh.Marshal(struct{ Name, Value string }{"SECRET_FLOOD", strconv.Itoa(i)})
		if _, err := ch.SendRequest("env", false, env); err == io.EOF {
			break // ended by the gateway (MaxPending), as below
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// Refused, or EOF: sshsession ends a channel whose client queues more
	// than MaxPending requests while the handler is busy.
	if ok, err := ch.SendRequest("env", true, ssh.Marshal(struct{ Name, Value string }{"SECRET_FLOOD", "last"})); ok || (err != nil && err != io.EOF) {
		t.Fatalf("refused env: got %v, %v; want refused or the channel ended", ok, err)
	} else if err == io.EOF {
		t.Log("the flooding channel was ended by the gateway (MaxPending)")
	}
	ch.Close()
	t.Logf("%d refused env requests in %v", refusedEnv, time.Since(start))
	// The 1st, 2nd, 4th... refusal is audited, so that the flood cannot
	// fill the audit queue.
	isFlood := func(e audit.Event) bool { return e.Verdict == audit.Reject && e.Detail["name"] == "SECRET_FLOOD" }
	if max, evs := bits.Len(refusedEnv+1), w.waitEvents(t, "env", 1, isFlood); len(evs) < 1 || len(evs) > max {
		t.Fatalf("got %d env rejects in the audit, want 1..%d", len(evs), max)
	}

	if out := runOn(t, client, "echo alive"); out != "alive\n" {
		t.Fatalf("the flooding connection: got %q, want %q", out, "alive\n")
	}
	if err := w.gw.queue.Healthy(); err != nil {
		t.Fatalf("audit queue after the flood: got %v, want healthy", err)
	}
	w.stillServes(t)
}

func waitGroupWithin(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("requests on a closed channel still unanswered after %v", d)
	}
}

// fakeUpstream listens on 127.0.0.1 (the servers zone) and runs serve for
// every connection; it closes the listener and every connection at cleanup.
func fakeUpstream(t *testing.T, serve func(c net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { defer c.Close(); serve(c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// TestHostileUpstream: an upstream that stalls its handshake, sends an
// endless banner or garbage costs the client a clear refusal within
// connect_timeout, is audited as an upstream reject, and leaves the gateway
// serving others.
func TestHostileUpstream(t *testing.T) {
	const connectTimeout = 2 * time.Second
	cases := []struct {
		name  string
		serve func(c net.Conn)
	}{
		{"never finishes the handshake", func(c net.Conn) {
			_, _ = io.Copy(io.Discard, c)
		}},
		{"8 MiB banner", func(c net.Conn) {
			go func() { _, _ = io.Copy(io.Discard, c) }()
			streamUntil(c, nil, bytes.Repeat([]byte("x"), 64<<10), 8<<20)
		}},
		{"8 MiB of lines before the version", func(c net.Conn) {
			go func() { _, _ = io.Copy(io.Discard, c) }()
			streamUntil(c, nil, bytes.Repeat([]byte("hello\r\n"), 8<<10), 8<<20)
		}},
		{"garbage after the version", func(c net.Conn) {
			go func() { _, _ = io.Copy(io.Discard, c) }()
			b := make([]byte, 1<<20)
			_, _ = rand.Read(b)
			_, _ = c.Write(append([]byte("SSH-2.0-fake\r\n"), b...))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{service: fmt.Sprintf("    connect_timeout: %v\n    down_host_ttl: 0s\n", connectTimeout)})
			port := fakeUpstream(t, tc.serve)
			cfg := w.aliceConfig(t)
			cfg.User = "alice+127.0.0.1:" + strconv.Itoa(port)
			client := w.dial(t, cfg)
			defer client.Close()
			start := time.Now()
			_, err := client.NewSession()
			took := time.Since(start)
			var oe *ssh.OpenChannelError
			if !errors.As(err, &oe) || oe.Reason != ssh.ConnectionFailed || oe.Message != msgUnavailableForTest {
				t.Fatalf("session: got %v, want connection failed %q", err, msgUnavailableForTest)
			}
			t.Logf("refused after %v", took)
			if took > connectTimeout+3*time.Second {
				t.Fatalf("refused after %v, want within connect_timeout %v (+3s)", took, connectTimeout)
			}
			waitClosed(t, client, 10*time.Second)
			evs := w.waitEvents(t, "upstream", 1, from(client.LocalAddr(), audit.Reject))
			if len(evs) != 1 || evs[0].Rule != "services[ssh-in].upstream" {
				t.Fatalf("got upstream events %+v, want one reject by services[ssh-in].upstream", evs)
			}
			t.Logf("audit reason: %s", evs[0].Reason)
			w.stillServes(t)
		})
	}
}

// msgUnavailableForTest is sshproxy's fixed text for a target it cannot
// reach.
const msgUnavailableForTest = "sluice: target unavailable"

func waitClosed(t *testing.T, client *ssh.Client, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = client.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("client connection still open after %v, want closed by the gateway", d)
	}
}

// TestHostileUpstreamDiesMidTransfer: when the target's session process is
// killed during a large transfer, the client gets EOF and the connection
// closed, and the channel's end is audited with exit_status "missing".
func TestHostileUpstreamDiesMidTransfer(t *testing.T) {
	w := newWorld(t, worldOptions{})
	client := w.dial(t, w.aliceConfig(t))
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(w.dir, "session.pid")
	// The shell's parent is sshd's process for this connection.
	if err := s.Start(fmt.Sprintf("echo $PPID > %s; exec head -c 100M /dev/zero", pidFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(stdout, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("sshd session pid: got %q, %v", data, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill sshd session %d: %v", pid, err)
	}
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	go func() {
		n, err := io.Copy(io.Discard, bufio.NewReader(stdout))
		done <- copied{n, err}
	}()
	select {
	case c := <-done:
		if c.err != nil || c.n+1<<20 >= 100<<20 {
			t.Fatalf("after the kill: read %d more bytes, %v; want EOF before the end of the transfer", c.n, c.err)
		}
		t.Logf("EOF after %d more bytes", c.n)
	case <-time.After(20 * time.Second):
		t.Fatal("no EOF 20s after the target's session died")
	}
	var missing *ssh.ExitMissingError
	if err := s.Wait(); !errors.As(err, &missing) {
		t.Fatalf("session wait: got %v, want exit status missing", err)
	}
	waitClosed(t, client, 10*time.Second)
	evs := w.waitEvents(t, "channel.end", 1, from(client.LocalAddr(), ""))
	if len(evs) != 1 || evs[0].Detail["exit_status"] != "missing" {
		t.Fatalf("got channel.end %+v, want one with exit_status missing", evs)
	}
	evs = w.waitEvents(t, "session.end", 1, from(client.LocalAddr(), ""))
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, "upstream closed") {
		t.Fatalf("got session.end %+v, want reason upstream closed", evs)
	}
	w.stillServes(t)
}

// hostileParamikoScript logs in to the gateway with paramiko, then sends
// raw channel messages that no SSH library sends. Arguments: port, user,
// key, known_hosts, mode. It prints the connection's local address, then
// what happened, one word per line.
const hostileParamikoScript = `
import logging, socket, sys, time, paramiko
from paramiko.common import cMSG_CHANNEL_DATA, cMSG_CHANNEL_REQUEST, cMSG_CHANNEL_WINDOW_ADJUST
port, user, key, kh, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
logged = []
class Logged(logging.Handler):
    def emit(self, record):
        logged.append(record.getMessage())
logging.getLogger("paramiko").setLevel(logging.DEBUG)
logging.getLogger("paramiko").addHandler(Logged())
sock = socket.create_connection(("127.0.0.1", port), source_address=("` + clientAddr + `", 0))
print("%s:%d" % sock.getsockname(), flush=True)
c = paramiko.SSHClient()
c.load_host_keys(kh)
c.set_missing_host_key_policy(paramiko.RejectPolicy())
c.connect("127.0.0.1", port=port, username=user, key_filename=key,
          look_for_keys=False, allow_agent=False, sock=sock)
t = c.get_transport()

def send(*fields):
    m = paramiko.Message()
    m.add_byte(fields[0])
    for f in fields[1:]:
        if isinstance(f, bool):
            m.add_boolean(f)
        elif isinstance(f, int):
            m.add_int(f)
        else:
            m.add_string(f)
    t._send_user_message(m)

def run(command):
    ch = t.open_session()
    ch.exec_command(command)
    out = ch.makefile().read().decode().strip()
    ch.close()
    return out

def ended():
    deadline = time.time() + 20
    while time.time() < deadline:
        if not t.is_active():
            return "closed"
        time.sleep(0.05)
    return "open"

never = 1000  # a channel number the gateway never opened
if mode == "window":
    ch = t.open_session()
    # The gateway may send paramiko 2 MiB; 0xffffffff more, twice,
    # overflows the 2^32 - 1 a window can hold (RFC 4254 section 5.2).
    send(cMSG_CHANNEL_WINDOW_ADJUST, ch.remote_chanid, 0xffffffff)
    send(cMSG_CHANNEL_WINDOW_ADJUST, ch.remote_chanid, 0xffffffff)
    print(ended())
elif mode == "unknown-channel":
    # paramiko drops its own connection on a reply for a channel it never
    # saw: mark the number seen, so that the reply is logged and ignored.
    t.channels_seen[never] = True
    send(cMSG_CHANNEL_REQUEST, never, "exec", False, "id")
    send(cMSG_CHANNEL_REQUEST, never, "exec", True, "id")
    print(run("echo alive"))
    print("answered" if any("dead channel %d" % never in s for s in logged) else "unanswered")
    send(cMSG_CHANNEL_DATA, never, b"hostile")
    print(ended())
`

// TestHostileChannelMessages: raw channel messages from a paramiko client.
// A window adjust whose sum overflows 2^32, and data for a channel number
// never opened, end that client's connection (x/crypto/ssh treats both as
// connection errors) and its session.end says why; requests for a channel
// never opened are answered with failure or ignored, and that connection
// goes on working. A legitimate session running meanwhile is unaffected,
// and the gateway goes on serving.
func TestHostileChannelMessages(t *testing.T) {
	py := paramikoPython(t)
	w := newWorld(t, worldOptions{})
	script, kh := w.paramikoFiles(t, hostileParamikoScript)
	legit := w.startSSH("sleep 5; echo survived")
	w.waitLive(1)
	cases := []struct {
		mode string
		// want is what the script prints after the address; reason is
		// part of the session.end reason.
		want, reason string
	}{
		{"window", "closed", "client connection failed: ssh: invalid window update for 4294967295 bytes"},
		{"unknown-channel", "alive answered closed", "client connection failed: ssh: invalid channel 1000"},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			r := w.run(nil, py, script, strconv.Itoa(w.port), w.target(), w.aliceKey, kh, tc.mode)
			lines := strings.Fields(r.stdout)
			if r.code != 0 || len(lines) == 0 {
				t.Fatalf("paramiko: exit %d, stdout %q: %s", r.code, r.stdout, r.stderr)
			}
			local, got := lines[0], strings.Join(lines[1:], " ")
			if got != tc.want {
				t.Fatalf("got %q, want %q (stderr %s)", got, tc.want, r.stderr)
			}
			evs := w.waitEvents(t, "session.end", 1, func(e audit.Event) bool { return e.ClientAddr == local })
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, tc.reason) {
				t.Fatalf("got session.end %+v, want one whose reason says %q", evs, tc.reason)
			}
			t.Logf("session.end reason: %s", evs[0].Reason)
		})
	}
	if r := <-legit; r.code != 0 || r.stdout != "survived\n" {
		t.Fatalf("legitimate session: got %d %q (stderr %q), want 0 %q", r.code, r.stdout, r.stderr, "survived\n")
	}
	w.stillServes(t)
}

// TestHostileMalformedForwards: a tcpip-forward request and a direct-tcpip
// channel whose payloads do not parse are refused, audited as protocol
// errors (so an operator sees the probe), and leave the connection
// serving.
func TestHostileMalformedForwards(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	client := w.dial(t, w.aliceConfig(t))
	defer client.Close()
	for _, typ := range []string{"tcpip-forward", "cancel-tcpip-forward"} {
		if ok, _, err := client.SendRequest(typ, true, []byte{0, 0, 0, 9, 'x'}); err != nil || ok {
			t.Fatalf("%s with a truncated payload: got ok %v, err %v; want a refusal", typ, ok, err)
		}
	}
	if _, _, err := client.OpenChannel("direct-tcpip", []byte{0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Fatal("direct-tcpip with a malformed payload was opened")
	}
	for typ, n := range map[string]int{"forward.remote": 2, "forward.local": 1} {
		evs := w.waitEvents(t, typ, n, func(e audit.Event) bool { return e.Verdict == audit.Reject && e.Rule == "protocol" })
		if len(evs) != n {
			t.Fatalf("%s: got %+v, want %d protocol refusals", typ, evs, n)
		}
		t.Logf("%s refused: %s", typ, evs[0].Reason)
	}
	// The connection still serves a session.
	s, err := client.NewSession()
	if err != nil {
		t.Fatalf("session after the malformed requests: %v", err)
	}
	out, err := s.Output("echo still")
	if err != nil || string(out) != "still\n" {
		t.Fatalf("exec after the malformed requests: %q %v", out, err)
	}
}
