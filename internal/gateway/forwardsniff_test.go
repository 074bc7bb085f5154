package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// countingListener counts the bytes every accepted connection reads: what
// reached the target.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingHTTPS starts an HTTPS server that answers "tls-ok" and counts
// the bytes it receives.
func countingHTTPS(t *testing.T) (port int, got *atomic.Int64) {
	t.Helper()
	got = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls-ok") }))
	srv.Listener = countingListener{srv.Listener, got}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, got
}

// countingHTTP starts an HTTP server that answers with the Host it saw.
func countingHTTP(t *testing.T) (port int, got *atomic.Int64) {
	t.Helper()
	got = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host="+r.Host) }))
	srv.Listener = countingListener{srv.Listener, got}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, got
}

// serverFirst starts a TCP server that greets each connection with
// greeting and counts what it receives.
func serverFirst(t *testing.T, greeting string) (port int, got *atomic.Int64) {
	t.Helper()
	got = new(atomic.Int64)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				n, _ := io.Copy(io.Discard, c)
				got.Add(n)
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, got
}

// localForward runs ssh -N -L through the gateway to dest and returns the
// local port once it listens.
func (w *world) localForward(dest string) int {
	w.t.Helper()
	lport := sshtest.FreePort(w.t)
	args := append(w.args("ssh"), "-N", "-o", "ExitOnForwardFailure=yes", "-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, dest), w.target()+"@127.0.0.1")
	cmd := execCommand(w.t, "ssh", args...)
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 100 {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lport))
		if err == nil {
			c.Close()
			return lport
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatalf("ssh -L %s did not listen", dest)
	return 0
}

// streamEvent waits for the forward.stream event whose detail says
// key=value.
func (w *world) streamEvent(key, value string) audit.Event {
	w.t.Helper()
	evs := w.events("forward.stream", func(e audit.Event) bool { return fmt.Sprint(e.Detail[key]) == value })
	if len(evs) == 0 {
		all := w.events("forward.stream", nil)
		w.t.Fatalf("got no forward.stream event with %s=%s; all: %+v", key, value, all)
	}
	return evs[len(evs)-1]
}

func checkStream(t *testing.T, e audit.Event, verdict audit.Verdict, rule string) {
	t.Helper()
	if e.Verdict != verdict || e.Rule != rule {
		t.Errorf("forward.stream: got verdict %q rule %q, want %q %q (detail %v)", e.Verdict, e.Rule, verdict, rule, e.Detail)
	}
}

// proxyJump runs ssh to the world's sshd through the gateway with
// ProxyCommand "ssh ... -W %h:%p", the way ProxyJump does, and returns
// the result of running echo there.
func (w *world) proxyJump() result {
	w.t.Helper()
	var quoted []string
	for _, a := range append(w.args("ssh"), "-W", "%h:%p", w.target()+"@127.0.0.1") {
		quoted = append(quoted, "'"+a+"'")
	}
	inner := append(sshtest.ClientArgs(w.t, "ssh", w.sshd.Port, filepath.Join(w.dir, "upstream_ed25519"), w.sshd.HostKey),
		"-o", "ProxyCommand=ssh "+strings.Join(quoted, " "), w.osUser+"@127.0.0.1", "echo inner-ok")
	return w.run(nil, "ssh", inner...)
}

func TestForwardSSHRefusedByDefault(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{})
	r := w.proxyJump()
	if r.code == 0 || strings.Contains(r.stdout, "inner-ok") {
		t.Fatalf("ProxyJump through the gateway: got exit %d %q, want refused", r.code, r.stdout)
	}
	e := w.streamEvent("protocol", "ssh")
	checkStream(t, e, audit.Reject, "services[ssh-in].policy.forward_ssh")
	// The refused target never saw the inner client's identification
	// string: the one sshd read is the gateway's own upstream login.
	if log := w.sshd.Log(t); strings.Count(log, "Remote protocol version") != 1 || !strings.Contains(log, "kex_exchange_identification: Connection closed by remote host") {
		t.Errorf("got sshd log below, want one client banner (the gateway's) and the forward closed before any:\n%s", log)
	}
}

func TestForwardSSHOptIn(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{policy: "      forward_local: [\"127.0.0.1:*\"]\n      forward_ssh: true\n"})
	r := w.proxyJump()
	if r.code != 0 || r.stdout != "inner-ok\n" {
		t.Fatalf("ProxyJump with forward_ssh: got exit %d %q (stderr %q), want inner-ok", r.code, r.stdout, r.stderr)
	}
	checkStream(t, w.streamEvent("protocol", "ssh"), audit.Accept, "services[ssh-in].policy.forward_local[0]")
}

func TestForwardAuditsHTTPHostAndPostgres(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "curl")
	w := newWorld(t, worldOptions{})
	hport, _ := countingHTTP(t)
	lport := w.localForward("127.0.0.1:" + strconv.Itoa(hport))
	r := w.run(nil, "curl", "-sS", "-H", "Host: Intranet.Corp", fmt.Sprintf("http://127.0.0.1:%d/x", lport))
	if r.code != 0 || r.stdout != "host=Intranet.Corp" {
		t.Fatalf("curl via ssh -L: got %d %q %q, want host=Intranet.Corp", r.code, r.stdout, r.stderr)
	}
	e := w.streamEvent("http_host", "intranet.corp")
	checkStream(t, e, audit.Accept, "services[ssh-in].policy.forward_local[0]")
	if e.Detail["protocol"] != "http" || e.Detail["http_method"] != "GET" {
		t.Errorf("got detail %v, want protocol http, method GET", e.Detail)
	}
	ends := w.events("forward.local.end", func(e audit.Event) bool { return e.Detail["http_host"] == "intranet.corp" })
	if len(ends) != 1 || ends[0].Detail["protocol"] != "http" {
		t.Errorf("forward.local.end: got %+v, want one with protocol http", ends)
	}

	// psql through a forward to the test PostgreSQL.
	dsn := os.Getenv("SLUICE_PG_DSN")
	if dsn == "" {
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatal("SLUICE_INTEROP=require: SLUICE_PG_DSN is not set: eval \"$(scripts/pg-test-env.sh)\" (as root)")
		}
		t.Skip("SLUICE_PG_DSN is not set")
	}
	sshtest.RequireTool(t, "psql")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	pport := w.localForward(u.Host)
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", pport, u.User.Username(), strings.TrimPrefix(u.Path, "/"))
	r = w.runEnv(nil, append(os.Environ(), "PGPASSWORD="+pass), "psql", conninfo, "-Atc", "select 40+2")
	if r.code != 0 || r.stdout != "42\n" {
		t.Fatalf("psql via ssh -L: got %d %q %q, want 42", r.code, r.stdout, r.stderr)
	}
	e = w.streamEvent("pg_user", u.User.Username())
	checkStream(t, e, audit.Accept, "services[ssh-in].policy.forward_local[0]")
	if e.Detail["pg_database"] != strings.TrimPrefix(u.Path, "/") {
		t.Errorf("got detail %v, want pg_database %s", e.Detail, strings.TrimPrefix(u.Path, "/"))
	}
}

// rawForward connects to an ssh -L port, writes each of parts with pause
// between them, and returns what came back until the gateway closed the
// stream (or 10 s passed) and how long that took.
func rawForward(t *testing.T, lport int, pause time.Duration, parts ...[]byte) (string, time.Duration) {
	t.Helper()
	return rawForwardFor(t, lport, 10*time.Second, pause, parts...)
}

// rawForwardFor is rawForward reading for at most readFor.
func rawForwardFor(t *testing.T, lport int, readFor, pause time.Duration, parts ...[]byte) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			break
		}
		time.Sleep(pause)
	}
	_ = c.SetReadDeadline(time.Now().Add(readFor))
	b, _ := io.ReadAll(c)
	return string(b), time.Since(start)
}

// helloBytes is the ClientHello crypto/tls sends for serverName.
func helloBytes(t *testing.T, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() { _ = tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}).Handshake() }()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	b.Close()
	return append(hdr, body...)
}

// recordsOf re-frames a one-record hello as records of one handshake byte
// each (RFC 8446 §5.1 allows it), cut into TCP writes of seg bytes.
func recordsOf(hello []byte, seg int) [][]byte {
	var all []byte
	for _, c := range hello[5:] {
		all = append(all, 22, 3, 1, 0, 1, c)
	}
	var parts [][]byte
	for len(all) > 0 {
		n := min(seg, len(all))
		parts = append(parts, all[:n])
		all = all[n:]
	}
	return parts
}

func TestForwardBySNIAndHost(t *testing.T) {
	sshtest.RequireTool(t, "curl")
	tport, tlsGot := countingHTTPS(t)
	hport, httpGot := countingHTTP(t)
	sport, sshGot := serverFirst(t, "SSH-2.0-OpenSSH_9.9\r\n")
	mport, _ := serverFirst(t, "220 mail ready\r\n")
	w := newWorld(t, worldOptions{policy: fmt.Sprintf(`      forward_local:
        - {to: "127.0.0.1:%d", protocols: [tls], sni: ["*.good.corp"], deny_sni: [bad.good.corp]}
        - {to: "127.0.0.1:%d", host: [intranet, "*.intranet"]}
        - "127.0.0.1:%d"
        - "127.0.0.1:%d"
`, tport, hport, sport, mport)})
	tl := w.localForward("127.0.0.1:" + strconv.Itoa(tport))
	hl := w.localForward("127.0.0.1:" + strconv.Itoa(hport))
	curlTLS := func(name string) result {
		return w.run(nil, "curl", "-sSk", "--max-time", "20", "--resolve", fmt.Sprintf("%s:%d:127.0.0.1", name, tl), fmt.Sprintf("https://%s:%d/", name, tl))
	}

	t.Run("tls allowed by SNI", func(t *testing.T) {
		r := curlTLS("www.good.corp")
		if r.code != 0 || r.stdout != "tls-ok" {
			t.Fatalf("curl: got %d %q %q, want tls-ok", r.code, r.stdout, r.stderr)
		}
		checkStream(t, w.streamEvent("sni", "www.good.corp"), audit.Accept, "services[ssh-in].policy.forward_local[0]")
	})
	t.Run("tls denied by SNI before any byte", func(t *testing.T) {
		before := tlsGot.Load()
		r := curlTLS("www.evil.corp")
		if r.code == 0 {
			t.Fatalf("curl: got exit 0 %q, want the stream closed", r.stdout)
		}
		checkStream(t, w.streamEvent("sni", "www.evil.corp"), audit.Reject, "services[ssh-in].policy.forward_local[0].sni")
		r = curlTLS("bad.good.corp")
		checkStream(t, w.streamEvent("sni", "bad.good.corp"), audit.Reject, "services[ssh-in].policy.forward_local[0].deny_sni[0]")
		sleepBriefly()
		if got := tlsGot.Load() - before; got != 0 {
			t.Fatalf("target received %d bytes of refused streams, want 0", got)
		}
	})
	t.Run("sni split across records and tiny segments", func(t *testing.T) {
		before := tlsGot.Load()
		evil := recordsOf(helloBytes(t, "split.evil.corp"), 7)
		if out, _ := rawForward(t, tl, 0, evil...); out != "" {
			t.Errorf("got %q back, want nothing", out)
		}
		checkStream(t, w.streamEvent("sni", "split.evil.corp"), audit.Reject, "services[ssh-in].policy.forward_local[0].sni")
		sleepBriefly()
		if got := tlsGot.Load() - before; got != 0 {
			t.Fatalf("target received %d bytes, want 0", got)
		}
		good := recordsOf(helloBytes(t, "split.good.corp"), 7)
		out, _ := rawForwardFor(t, tl, 2*time.Second, 0, good...)
		checkStream(t, w.streamEvent("sni", "split.good.corp"), audit.Accept, "services[ssh-in].policy.forward_local[0]")
		// The held bytes reach the target whole, and its answer (a
		// ServerHello record) comes back.
		var sent int64
		for _, p := range good {
			sent += int64(len(p))
		}
		if got := tlsGot.Load() - before; got != sent || len(out) == 0 || out[0] != 22 {
			t.Errorf("target received %d bytes and answered %d, want %d and a handshake record", got, len(out), sent)
		}
	})
	t.Run("trickled hello hits the time cap", func(t *testing.T) {
		before := tlsGot.Load()
		hello := helloBytes(t, "www.good.corp")
		var parts [][]byte
		for i := range 25 {
			parts = append(parts, hello[i:i+1])
		}
		out, took := rawForward(t, tl, 200*time.Millisecond, parts...)
		if out != "" {
			t.Errorf("got %q back, want nothing", out)
		}
		if took > 15*time.Second {
			t.Errorf("took %v, want the stream ended by the time cap", took)
		}
		checkStream(t, w.streamEvent("partial", "tls"), audit.Reject, "services[ssh-in].policy.forward_local[0].protocols")
		if got := tlsGot.Load() - before; got != 0 {
			t.Fatalf("target received %d bytes, want 0", got)
		}
	})
	t.Run("oversize hello", func(t *testing.T) {
		before := tlsGot.Load()
		out, took := rawForward(t, tl, 0, []byte{22, 3, 1, 0x40, 0, 1, 0x10, 0, 0})
		if out != "" || took > 2500*time.Millisecond {
			t.Errorf("got %q after %v, want nothing, decided without waiting", out, took)
		}
		checkStream(t, w.streamEvent("malformed", "ClientHello larger than 16 KiB"), audit.Reject, "services[ssh-in].policy.forward_local[0].sni")
		if got := tlsGot.Load() - before; got != 0 {
			t.Fatalf("target received %d bytes, want 0", got)
		}
	})
	t.Run("http host", func(t *testing.T) {
		r := w.run(nil, "curl", "-sS", "-H", "Host: wiki.intranet", fmt.Sprintf("http://127.0.0.1:%d/", hl))
		if r.code != 0 || r.stdout != "host=wiki.intranet" {
			t.Fatalf("curl: got %d %q %q", r.code, r.stdout, r.stderr)
		}
		checkStream(t, w.streamEvent("http_host", "wiki.intranet"), audit.Accept, "services[ssh-in].policy.forward_local[1]")
		before := httpGot.Load()
		r = w.run(nil, "curl", "-sS", "-H", "Host: evil.example", fmt.Sprintf("http://127.0.0.1:%d/", hl))
		if r.code == 0 {
			t.Fatalf("curl evil host: got exit 0 %q, want refused", r.stdout)
		}
		checkStream(t, w.streamEvent("http_host", "evil.example"), audit.Reject, "services[ssh-in].policy.forward_local[1].host")
		// The stream's end event says it was refused, and by which rule,
		// not the forward_local acceptance that opened the channel.
		ends := w.events("forward.local.end", func(e audit.Event) bool { return e.Detail["http_host"] == "evil.example" })
		if len(ends) != 1 || ends[0].Verdict != audit.Reject || ends[0].Rule != "services[ssh-in].policy.forward_local[1].host" || !strings.HasPrefix(ends[0].Reason, "stream refused: ") {
			t.Errorf("forward.local.end of the refused stream: got %+v, want a reject by forward_local[1].host", ends)
		}
		for name, req := range map[string]string{
			"more than one Host header": "GET / HTTP/1.1\r\nHost: intranet\r\nHost: evil.example\r\n\r\n",
			"folded header line":        "GET / HTTP/1.1\r\nHost: intranet\r\n evil.example\r\n\r\n",
		} {
			if out, _ := rawForward(t, hl, 0, []byte(req)); out != "" {
				t.Errorf("%s: got %q, want nothing", name, out)
			}
			checkStream(t, w.streamEvent("malformed", name), audit.Reject, "services[ssh-in].policy.forward_local[1].host")
		}
		sleepBriefly()
		if got := httpGot.Load() - before; got != 0 {
			t.Fatalf("target received %d bytes of refused requests, want 0", got)
		}
	})
	t.Run("server speaks first", func(t *testing.T) {
		// A silent client to an SSH server: decided by the server's
		// banner, refused, and the banner never reaches the client.
		sl := w.localForward("127.0.0.1:" + strconv.Itoa(sport))
		out, _ := rawForward(t, sl, 0)
		if out != "" {
			t.Errorf("ssh server: got %q, want nothing", out)
		}
		checkStream(t, w.streamEvent("port", strconv.Itoa(sport)), audit.Reject, "services[ssh-in].policy.forward_ssh")
		if sshGot.Load() != 0 {
			t.Errorf("ssh server received %d bytes, want 0", sshGot.Load())
		}
		// Another server-first protocol goes through at once, without
		// waiting for the client's time cap.
		ml := w.localForward("127.0.0.1:" + strconv.Itoa(mport))
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ml))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "220 mail ready\r\n" {
			t.Fatalf("got %q %v, want the greeting", line, err)
		}
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Errorf("greeting took %v, want it before the 3 s time cap", took)
		}
	})
}
