package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
)

// cookieName is the browser session's cookie. The __Host- prefix makes
// the browser refuse it unless Secure, host-only and Path=/.
const cookieName = "__Host-sluice_console"

// csrfHeader carries the CSRF token on the pages' fetch calls; forms send
// it as the field "csrf".
const csrfHeader = "X-Sluice-CSRF"

// randomID returns 32 random bytes, base64url.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// browserSession is one browser login.
type browserSession struct {
	operator string
	csrf     string
	expires  time.Time
}

// browserSessions are the logins, in memory: a restart logs everyone out.
type browserSessions struct {
	mu   sync.Mutex
	m    map[string]browserSession
	now  func() time.Time
	life time.Duration
}

func newBrowserSessions(now func() time.Time, life time.Duration) *browserSessions {
	return &browserSessions{m: map[string]browserSession{}, now: now, life: life}
}

// create logs operator in and returns the cookie value.
func (b *browserSessions) create(operator string) (id string, s browserSession) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for k, v := range b.m {
		if !now.Before(v.expires) {
			delete(b.m, k)
		}
	}
	id = randomID()
	s = browserSession{operator: operator, csrf: randomID(), expires: now.Add(b.life)}
	b.m[id] = s
	return id, s
}

func (b *browserSessions) get(id string) (browserSession, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.m[id]
	if !ok || !b.now().Before(s.expires) {
		delete(b.m, id)
		return browserSession{}, false
	}
	return s, true
}

func (b *browserSessions) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, id)
}

// Login rate limit: at most loginFailures failed attempts per client
// address and per operator name within loginWindow; further attempts are
// refused unchecked until the window has passed.
const (
	loginFailures = 5
	loginWindow   = 15 * time.Minute
	// maxLimiterKeys bounds the limiter's memory; beyond it the oldest
	// windows are dropped.
	maxLimiterKeys = 100_000
)

type loginLimiter struct {
	mu  sync.Mutex
	m   map[string]limitWindow
	now func() time.Time
}

type limitWindow struct {
	start    time.Time
	failures int
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{m: map[string]limitWindow{}, now: now}
}

// allowed reports whether a login may be tried for every key.
func (l *loginLimiter) allowed(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		w, ok := l.m[k]
		if ok && now.Sub(w.start) < loginWindow && w.failures >= loginFailures {
			return false
		}
	}
	return true
}

// failed counts a failed login against every key.
func (l *loginLimiter) failed(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.m) >= maxLimiterKeys {
		for k, w := range l.m {
			if now.Sub(w.start) >= loginWindow {
				delete(l.m, k)
			}
		}
	}
	for _, k := range keys {
		w := l.m[k]
		if now.Sub(w.start) >= loginWindow {
			w = limitWindow{start: now}
		}
		w.failures++
		l.m[k] = w
	}
}

// browserOperator returns the operator of the request's login cookie.
func (s *Server) browserOperator(r *http.Request) (operator, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return operator{}, false
	}
	bs, ok := s.sessions.get(c.Value)
	if !ok {
		return operator{}, false
	}
	return operator{Name: bs.operator, Via: "browser", csrf: bs.csrf}, true
}

// csrfOK checks a browser POST: the CSRF token (form field or header)
// must be the session's, and the Origin, when sent, must be this host.
func csrfOK(r *http.Request, who operator) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host {
		return false
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(who.csrf)) == 1
}

// apiAuth authenticates an API request by bearer token or login cookie;
// a cookie-authenticated POST must also pass csrfOK.
func (s *Server) apiAuth(h func(http.ResponseWriter, *http.Request, operator)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			tok, ok := strings.CutPrefix(a, "Bearer ")
			if !ok {
				unauthorized(w, "want Authorization: Bearer TOKEN")
				return
			}
			name, err := s.creds.CheckToken(strings.TrimSpace(tok))
			switch {
			case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrNoToken):
				reason := "unknown token"
				if errors.Is(err, ErrTokenExpired) {
					reason = "token expired"
				}
				// Audited (an expired token by its name), thinned.
				s.auditRefusal(r, "token-addr", "console.auth", operator{Via: "token"}, err.Error())
				unauthorized(w, reason)
				return
			case err != nil:
				s.p.Logger.ErrorContext(r.Context(), "console: reading tokens", "err", err)
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			h(w, r, operator{Name: name, Via: "token"})
			return
		}
		who, ok := s.browserOperator(r)
		if !ok {
			unauthorized(w, "log in or send Authorization: Bearer TOKEN")
			return
		}
		if r.Method != http.MethodGet && !csrfOK(r, who) {
			http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
			return
		}
		h(w, r, who)
	})
}

// auditRefusal writes a reject event of typ, at most loginFailures per
// client address per loginWindow for each kind of refusal, so that a
// client repeating a refused request (a bad token, a login past the rate
// limit, a used one-time link) cannot flood the audit store; the rest are
// refused unwritten.
func (s *Server) auditRefusal(r *http.Request, kind, typ string, who operator, reason string) {
	key := kind + ":" + clientHost(r)
	if !s.limiter.allowed(key) {
		return
	}
	s.limiter.failed(key)
	s.auditEvent(r, typ, who, "", audit.Reject, reason, nil)
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	http.Error(w, msg, http.StatusUnauthorized)
}
