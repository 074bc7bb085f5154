package console

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// browser is an HTTP client with a cookie jar, as a browser keeps them.
type browser struct {
	t  *testing.T
	w  *world
	hc *http.Client
}

func (w *world) browser() *browser {
	jar, _ := cookiejar.New(nil)
	hc := *w.hc
	hc.Jar = jar
	return &browser{t: w.t, w: w, hc: &hc}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.hc.Get(b.w.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.w.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// csrf returns the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no csrf field in %s", path)
	}
	return m[1]
}

// login posts the login form.
func (b *browser) login(name, password, code string) *http.Response {
	b.t.Helper()
	tok := b.csrf("/login")
	resp, _ := b.post("/login", url.Values{"csrf": {tok}, "name": {name}, "password": {password}, "code": {code}}, nil)
	return resp
}

const testPassword = "correct horse battery"

// operator creates operator alice and returns her TOTP secret.
func (w *world) operator() string {
	w.t.Helper()
	_, secret, err := w.srv.Credentials().NewOperator("alice", testPassword, "sluice gw1")
	if err != nil {
		w.t.Fatal(err)
	}
	return secret
}

func code(t *testing.T, secret string, at time.Time) string {
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoginNeedsPasswordAndCode(t *testing.T) {
	w := newWorld(t)
	secret := w.operator()
	w.now = time.Now()
	b := w.browser()
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("/ logged out: got %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tt := range []struct{ name, password, code string }{
		{"alice", "wrong password!", code(t, secret, w.now)},
		{"alice", testPassword, "000000"},
		{"alice", testPassword, code(t, secret, w.now.Add(-10*time.Minute))},
		{"mallory", testPassword, code(t, secret, w.now)},
	} {
		if resp := b.login(tt.name, tt.password, tt.code); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("login %+v: got %d, want 401", tt, resp.StatusCode)
		}
	}
	if resp := b.login("alice", testPassword, code(t, secret, w.now)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("good login: got %d, want 303", resp.StatusCode)
	}
	resp, body := b.get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, "Live sessions") || !strings.Contains(body, "alice") {
		t.Fatalf("/ logged in: got %d", resp.StatusCode)
	}
	// The session cookie's attributes.
	var set string
	b2 := w.browser()
	tok := b2.csrf("/login")
	// The next step's code: the first is used up.
	r2, _ := b2.post("/login", url.Values{"csrf": {tok}, "name": {"alice"}, "password": {testPassword}, "code": {code(t, secret, w.now.Add(30*time.Second))}}, nil)
	for _, c := range r2.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, cookieName+"=") && !strings.HasPrefix(c, cookieName+"=;") {
			set = c
		}
	}
	for _, attr := range []string{"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	// Logins are audited, failures with the name that was tried.
	ev, _ := w.store.Query(context.Background(), audit.Filter{Type: "console.login"})
	var rejects, accepts int
	for _, e := range ev {
		switch e.Verdict {
		case audit.Reject:
			rejects++
		case audit.Accept:
			accepts++
			if e.User != "alice" || e.Detail["operator"] != "alice" {
				t.Errorf("login event: got %+v", e)
			}
		}
	}
	if rejects != 4 || accepts != 2 {
		t.Errorf("console.login events: got %d rejects and %d accepts, want 4 and 2", rejects, accepts)
	}
}

func TestLoginCSRF(t *testing.T) {
	w := newWorld(t)
	secret := w.operator()
	w.now = time.Now()
	b := w.browser()
	b.get("/login")
	// No token, a wrong one, or a foreign origin: refused before checking.
	form := url.Values{"name": {"alice"}, "password": {testPassword}, "code": {code(t, secret, w.now)}}
	if resp, _ := b.post("/login", form, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without csrf: got %d, want 403", resp.StatusCode)
	}
	form.Set("csrf", "forged")
	if resp, _ := b.post("/login", form, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login with a forged csrf: got %d, want 403", resp.StatusCode)
	}
	form.Set("csrf", b.csrf("/login"))
	if resp, _ := b.post("/login", form, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login from another origin: got %d, want 403", resp.StatusCode)
	}
}

func TestKillFromPageNeedsCSRF(t *testing.T) {
	w := newWorld(t)
	secret := w.operator()
	w.now = time.Now()
	id := w.session(1, "bob", "db:22", 0, true)
	b := w.browser()
	if resp := b.login("alice", testPassword, code(t, secret, w.now)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: got %d", resp.StatusCode)
	}
	path := "/sessions/" + esc(id) + "/kill"
	if resp, _ := b.post(path, url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("kill without csrf: got %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.post(path, url.Values{"csrf": {"forged"}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("kill with a forged csrf: got %d, want 403", resp.StatusCode)
	}
	// The API by cookie needs the token too.
	if resp, _ := b.post("/api/v1/sessions/"+esc(id)+"/kill", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("API kill by cookie without csrf: got %d, want 403", resp.StatusCode)
	}
	if len(w.gw.killed) != 0 {
		t.Fatalf("killed without csrf: %v", w.gw.killed)
	}
	tok := b.csrf("/")
	if resp, _ := b.post(path, url.Values{"csrf": {tok}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("kill: got %d, want 303", resp.StatusCode)
	}
	if want := id + " by alice"; len(w.gw.killed) != 1 || w.gw.killed[0] != want {
		t.Fatalf("killed: got %v, want [%s]", w.gw.killed, want)
	}
	// After logout the cookie is worth nothing, even if replayed.
	old := b.hc.Jar.Cookies(mustURL(t, w.base))
	if resp, _ := b.post("/logout", url.Values{"csrf": {tok}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %d", resp.StatusCode)
	}
	b.hc.Jar.SetCookies(mustURL(t, w.base), old)
	if resp, _ := b.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("/ with the cookie of a logged-out session: got %d, want 303", resp.StatusCode)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// browserFrom is a browser connecting from the loopback address ip
// (127.0.0.0/8 is all loopback), so that tests can tell the per-address
// limits from the per-operator ones.
func (w *world) browserFrom(ip string) *browser {
	b := w.browser()
	tr := w.hc.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = d.DialContext
	w.t.Cleanup(tr.CloseIdleConnections)
	b.hc.Transport = tr
	return b
}

// TestLoginRateLimited tells the two limits apart: failures from one
// address against many names block that address for everyone (and not
// other addresses); failures against one name from many addresses block
// that name everywhere (and not other names). Both end with the window.
func TestLoginRateLimited(t *testing.T) {
	w := newWorld(t)
	secret := w.operator()
	_, bobSecret, err := w.srv.Credentials().NewOperator("bob", testPassword, "sluice gw1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w.now = start

	// Per address: each failure names another operator.
	a := w.browserFrom("127.0.0.2")
	for i := range loginFailures {
		if resp := a.login(fmt.Sprintf("nobody%d", i), "wrong password!", "000000"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d from 127.0.0.2: got %d, want 401", i, resp.StatusCode)
		}
	}
	if resp := a.login("bob", testPassword, code(t, bobSecret, w.now)); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("bob's good login from the blocked address: got %d, want 429", resp.StatusCode)
	}
	if resp := w.browserFrom("127.0.0.3").login("bob", testPassword, code(t, bobSecret, w.now)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob's good login from another address: got %d, want 303", resp.StatusCode)
	}

	// Per operator: each failure comes from another address.
	for i := range loginFailures {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		if resp := w.browserFrom(ip).login("alice", "wrong password!", "000000"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("alice's failure %d from %s: got %d, want 401", i, ip, resp.StatusCode)
		}
	}
	// The right password and code are refused unchecked now, from a
	// fresh address, while another operator logs in from it.
	c := w.browserFrom("127.0.2.1")
	if resp := c.login("alice", testPassword, code(t, secret, w.now)); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's good login after %d failures: got %d, want 429", loginFailures, resp.StatusCode)
	}
	if resp := c.login("bob", testPassword, code(t, bobSecret, w.now.Add(30*time.Second))); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob's good login from alice's fresh address: got %d, want 303", resp.StatusCode)
	}

	// The window passes.
	w.now = start.Add(loginWindow + time.Second)
	if resp := w.browserFrom("127.0.2.2").login("alice", testPassword, code(t, secret, w.now)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice after the window: got %d, want 303", resp.StatusCode)
	}
	if resp := a.login("bob", testPassword, code(t, bobSecret, w.now)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob from 127.0.0.2 after the window: got %d, want 303", resp.StatusCode)
	}
	// The same code again (a replayed form) is refused.
	if resp := w.browser().login("alice", testPassword, code(t, secret, w.now)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a used code: got %d, want 401", resp.StatusCode)
	}
}

// TestRefusalsThinned: a client hammering the login past its limit, or
// trying used one-time links, is refused every time but audited at most
// loginFailures times per window.
func TestRefusalsThinned(t *testing.T) {
	w := newWorld(t)
	w.operator()
	w.now = time.Now()
	b := w.browser()
	const tries = 4 * loginFailures
	for range loginFailures + tries {
		b.login("alice", "wrong password!", "000000")
	}
	if resp := b.login("alice", "wrong password!", "000000"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("login past the limit: got %d, want 429", resp.StatusCode)
	}
	for range tries {
		if resp, _ := b.get("/login/once?code=guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad one-time link: got %d, want 401", resp.StatusCode)
		}
	}
	ev, err := w.store.Query(context.Background(), audit.Filter{Type: "console.login", Verdict: audit.Reject})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range ev {
		count[e.Reason]++
	}
	for reason, want := range map[string]int{
		"wrong operator, password or code": loginFailures,
		"too many failed logins":           loginFailures,
		"unknown or used one-time login":   loginFailures,
	} {
		if count[reason] != want {
			t.Errorf("console.login rejects %q: got %d, want %d (of %d tries)", reason, count[reason], want, tries)
		}
	}
	// A window later the refusals are written again.
	w.now = w.now.Add(loginWindow + time.Second)
	b.get("/login/once?code=guess")
	if ev, _ = w.store.Query(context.Background(), audit.Filter{Type: "console.login", Verdict: audit.Reject}); len(ev) != 3*loginFailures+1 {
		t.Errorf("rejects after the window: got %d, want %d", len(ev), 3*loginFailures+1)
	}
}

func TestSecurityHeaders(t *testing.T) {
	w := newWorld(t)
	b := w.browser()
	for _, path := range []string{"/login", "/api/v1/sessions", "/static/console.js"} {
		resp, _ := b.get(path)
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self' 'wasm-unsafe-eval';", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "http") {
			t.Errorf("%s: CSP %q allows an outside source", path, csp)
		}
		for _, d := range strings.Split(csp, ";") {
			if f := strings.Fields(d); len(f) > 0 && (f[0] == "script-src" || f[0] == "default-src") && strings.Contains(d, "unsafe-inline") {
				t.Errorf("%s: CSP directive %q allows inline scripts", path, strings.TrimSpace(d))
			}
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s: %s got %q, want %q", path, h, got, want)
			}
		}
	}
}

func TestOneTimeLogin(t *testing.T) {
	w := newWorld(t)
	link := w.srv.OneTimeLogin("demo-op")
	b := w.browser()
	if resp, _ := b.get(link); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("one-time link: got %d, want 303", resp.StatusCode)
	}
	if resp, body := b.get("/"); resp.StatusCode != 200 || !strings.Contains(body, "demo-op") {
		t.Fatalf("/ after the link: got %d", resp.StatusCode)
	}
	if resp, _ := w.browser().get(link); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the link used again: got %d, want 401", resp.StatusCode)
	}
}

func TestPagesRender(t *testing.T) {
	w := newWorld(t)
	w.now = time.Now()
	id := w.session(1, "bob", "db:22", 0, true)
	w.write(audit.Event{Time: t0.Add(time.Second), Type: "sftp.close", SessionID: id + "/ssh/session:0/sftp", User: "bob", Verdict: audit.Accept, Rule: "services[ssh-in].policy.subsystems.sftp",
		Detail: map[string]any{"path": "/etc/<script>alert(1)</script>", "sha256": "ab12"}})
	ch, f := w.recordSession(id, "hi")
	defer w.closeRecordings(f)
	b := w.browser()
	b.get(w.srv.OneTimeLogin("op"))
	for path, want := range map[string][]string{
		"/":                                {id, "Kill", "Watch"},
		"/sessions/" + esc(id):             {"sftp.close", "ab12", "&lt;script&gt;", ch, "Replay", "Watch live"},
		"/sessions/" + esc(id) + "/replay": {"asciinema-player.min.js", `data-src="/api/v1/sessions/gw1%2fssh-in:1/recording"`},
		"/sessions/" + esc(id) + "/live":   {`data-live="true"`},
		"/audit?type=sftp.":                {"sftp.close", "format=csv"},
		"/audit?since=bad":                 {"bad time"},
	} {
		resp, body := b.get(path)
		if resp.StatusCode != 200 {
			t.Errorf("%s: got %d", path, resp.StatusCode)
		}
		for _, s := range want {
			if !strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
				t.Errorf("%s lacks %q", path, s)
			}
		}
		if strings.Contains(body, "<script>alert") {
			t.Errorf("%s: unescaped script", path)
		}
	}
}

// TestLoginHostileName: a login with a huge name is refused like any
// other, and what it writes to the audit store and the rate limiter is
// bounded (no operator can have a name longer than maxNameLen); a body
// past maxLoginForm is not read.
func TestLoginHostileName(t *testing.T) {
	w := newWorld(t)
	w.operator()
	b := w.browser()
	if resp := b.login(strings.Repeat("a", 8<<10), testPassword, "000000"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("8 KiB name: got %d, want 401", resp.StatusCode)
	}
	if resp := b.login(strings.Repeat("b", 1<<20), testPassword, "000000"); resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusOK {
		t.Errorf("1 MiB form: got %d, want a refusal", resp.StatusCode)
	}
	ev, err := w.store.Query(context.Background(), audit.Filter{Type: "console.login"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) == 0 {
		t.Fatal("no console.login event for the refused login")
	}
	for _, e := range ev {
		if len(e.User) > maxNameLen {
			t.Errorf("console.login event keeps a %d-byte name, want at most %d", len(e.User), maxNameLen)
		}
	}
}
