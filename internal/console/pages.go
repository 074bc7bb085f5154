package console

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
)

//go:embed web/*.html web/static
var webFS embed.FS

// loginCookie holds the login form's CSRF token (double submit) before
// anyone is logged in.
const loginCookie = "__Host-sluice_login"

// oneTimeLoginTTL is how long a one-time login link stays usable.
const oneTimeLoginTTL = time.Hour

// pageAuditLimit is how many events the audit page shows.
const pageAuditLimit = 500

// page is what every template gets.
type page struct {
	Title    string
	Gateway  string
	Operator string
	CSRF     string
	Player   bool
	Error    string
	Data     any
}

// templates are the parsed pages, by file name.
type templates map[string]*template.Template

func parseTemplates() templates {
	funcs := template.FuncMap{
		"pathesc": url.PathEscape,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"whenms": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
		"deref":  func(p *int) int { return *p },
		"detail": detailRows,
		"master": masterID,
		"channel": func(master, id string) string {
			if id == master {
				return ""
			}
			return strings.TrimPrefix(id, master+"/")
		},
	}
	out := templates{}
	for _, name := range []string{"login.html", "sessions.html", "session.html", "player.html", "audit.html", "error.html"} {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(webFS, "web/layout.html", "web/"+name))
	}
	return out
}

// parsed are the templates, parsed once (they are embedded, so a parse
// error is a build error caught by the tests).
var parsed = sync.OnceValue(parseTemplates)

// detailRow is one key of an event's Detail, its value as JSON unless a
// string.
type detailRow struct{ Key, Value string }

func detailRows(d map[string]any) []detailRow {
	var out []detailRow
	for _, k := range slices.Sorted(maps.Keys(d)) {
		v, ok := d[k].(string)
		if !ok {
			b, _ := json.Marshal(d[k]) // decoded from JSON, so it encodes
			v = string(b)
		}
		out = append(out, detailRow{k, v})
	}
	return out
}

// masterID is the master session of id: its first two parts.
func masterID(id string) string {
	if parts := strings.SplitN(id, "/", 3); len(parts) == 3 {
		return parts[0] + "/" + parts[1]
	}
	return id
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	p.Gateway = s.p.GatewayName
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := parsed()[name].ExecuteTemplate(w, "layout", p); err != nil {
		s.p.Logger.Warn("console: rendering", "page", name, "err", err)
	}
}

func (s *Server) pageRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(webFS, "web/static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /login/once", s.loginOnce)
	mux.Handle("POST /logout", s.pageAuth(s.logout))
	mux.Handle("GET /{$}", s.pageAuth(s.sessionsPage))
	mux.Handle("GET /sessions/{id}", s.pageAuth(s.sessionPage))
	mux.Handle("GET /sessions/{id}/replay", s.pageAuth(s.playerPage(false)))
	mux.Handle("GET /sessions/{id}/live", s.pageAuth(s.playerPage(true)))
	mux.Handle("POST /sessions/{id}/kill", s.pageAuth(s.killPage))
	mux.Handle("GET /audit", s.pageAuth(s.auditPage))
}

// pageAuth sends a browser that is not logged in to the login page and
// checks the CSRF token of every POST.
func (s *Server) pageAuth(h func(http.ResponseWriter, *http.Request, operator)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := s.browserOperator(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && !csrfOK(r, who) {
			http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
			return
		}
		h(w, r, who)
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin shows the login form with a fresh double-submit token.
func (s *Server) renderLogin(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	tok := randomID()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	s.render(w, status, "login.html", page{Title: "Log in", CSRF: tok, Error: msg})
}

// startSession logs the browser in as name.
func (s *Server) startSession(w http.ResponseWriter, name string) {
	id, _ := s.sessions.create(name)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(s.p.SessionTimeout / time.Second)})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// maxLoginForm bounds the login form's body: a name, a password, a code
// and the CSRF token fit many times over.
const maxLoginForm = 16 << 10

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	c, err := r.Cookie(loginCookie)
	form := r.PostFormValue("csrf")
	if o := r.Header.Get("Origin"); err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 || o != "" && o != "https://"+r.Host {
		s.renderLogin(w, r, http.StatusForbidden, "The form expired; try again.")
		return
	}
	name := r.PostFormValue("name")
	if len(name) > maxNameLen {
		// No operator has such a name (nameRE); the audit event and the
		// limiter key keep a bounded prefix.
		name = name[:maxNameLen]
	}
	who := operator{Name: name, Via: "browser"}
	keys := []string{"addr:" + clientHost(r), "operator:" + name}
	if !s.limiter.allowed(keys...) {
		s.auditRefusal(r, "limited-addr", "console.login", who, "too many failed logins")
		s.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed logins; wait a few minutes.")
		return
	}
	err = s.creds.CheckLogin(name, r.PostFormValue("password"), r.PostFormValue("code"))
	if errors.Is(err, ErrBadLogin) {
		s.limiter.failed(keys...)
		s.auditEvent(r, "console.login", who, "", audit.Reject, "wrong operator, password or code", nil)
		s.renderLogin(w, r, http.StatusUnauthorized, "Wrong operator, password or code.")
		return
	}
	if err != nil {
		s.p.Logger.ErrorContext(r.Context(), "console: reading operators", "err", err)
		s.renderLogin(w, r, http.StatusInternalServerError, "The console cannot read its operators; see the gateway's log.")
		return
	}
	s.startSession(w, name)
	s.auditEvent(r, "console.login", who, "", audit.Accept, "", map[string]any{"method": "password+totp"})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// oneTime are the unused one-time login codes.
type oneTime struct {
	mu    sync.Mutex
	codes map[string]oneTimeCode
}

type oneTimeCode struct {
	operator string
	expires  time.Time
}

// OneTimeLogin returns a path that logs a browser in as operator once,
// within an hour: what `sluice demo` prints.
func (s *Server) OneTimeLogin(operator string) string {
	code := randomID()
	s.once.mu.Lock()
	defer s.once.mu.Unlock()
	if s.once.codes == nil {
		s.once.codes = map[string]oneTimeCode{}
	}
	s.once.codes[code] = oneTimeCode{operator: operator, expires: s.p.Now().Add(oneTimeLoginTTL)}
	return "/login/once?code=" + code
}

func (s *Server) loginOnce(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	s.once.mu.Lock()
	c, ok := s.once.codes[code]
	delete(s.once.codes, code)
	s.once.mu.Unlock()
	if !ok || !s.p.Now().Before(c.expires) {
		s.auditRefusal(r, "once-addr", "console.login", operator{Via: "one-time link"}, "unknown or used one-time login")
		s.renderLogin(w, r, http.StatusUnauthorized, "That login link has been used or has expired.")
		return
	}
	s.startSession(w, c.operator)
	s.auditEvent(r, "console.login", operator{Name: c.operator, Via: "browser"}, "", audit.Accept, "", map[string]any{"method": "one-time link"})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, who operator) {
	if c, err := r.Cookie(cookieName); err == nil {
		s.sessions.remove(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	s.auditEvent(r, "console.logout", who, "", audit.Accept, "", nil)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) pageError(w http.ResponseWriter, who operator, status int, msg string) {
	s.render(w, status, "error.html", page{Title: http.StatusText(status), Operator: who.Name, CSRF: who.csrf, Error: msg})
}

func (s *Server) sessionsPage(w http.ResponseWriter, r *http.Request, who operator) {
	q := r.URL.Query()
	sq, err := s.parseSessionQuery(r)
	if err != nil {
		s.pageError(w, who, http.StatusBadRequest, err.Error())
		return
	}
	live, err := s.listSessions(r, sessionQuery{live: true, limit: maxSessionLimit})
	if err != nil {
		s.pageError(w, who, http.StatusServiceUnavailable, "The audit store is unavailable.")
		return
	}
	recent, err := s.listSessions(r, sq)
	if err != nil {
		s.pageError(w, who, http.StatusServiceUnavailable, "The audit store is unavailable.")
		return
	}
	data := struct {
		Live              []SessionInfo
		Recent            SessionList
		User, Host, Since string
	}{live.Sessions, recent, q.Get("user"), q.Get("host"), q.Get("since")}
	s.render(w, http.StatusOK, "sessions.html", page{Title: "Sessions", Operator: who.Name, CSRF: who.csrf, Data: data})
}

func (s *Server) sessionPage(w http.ResponseWriter, r *http.Request, who operator) {
	d, ok, err := s.sessionDetail(r, r.PathValue("id"))
	if err != nil {
		s.pageError(w, who, http.StatusServiceUnavailable, "The audit store is unavailable.")
		return
	}
	if !ok {
		s.pageError(w, who, http.StatusNotFound, "No such session.")
		return
	}
	s.render(w, http.StatusOK, "session.html", page{Title: d.Session.ID, Operator: who.Name, CSRF: who.csrf, Data: d})
}

func (s *Server) playerPage(live bool) func(http.ResponseWriter, *http.Request, operator) {
	return func(w http.ResponseWriter, r *http.Request, who operator) {
		id := r.PathValue("id")
		ch := r.URL.Query().Get("channel")
		if ch != "" && ch != id && !strings.HasPrefix(ch, id+"/") {
			s.pageError(w, who, http.StatusNotFound, "That channel is not in this session.")
			return
		}
		kind := "recording"
		if live {
			kind = "live"
		}
		src := "/api/v1/sessions/" + url.PathEscape(id) + "/" + kind
		if ch != "" {
			src += "?channel=" + url.QueryEscape(ch)
		}
		title := ch
		if title == "" {
			title = id
		}
		data := struct {
			Session, Channel, Src string
			Live                  bool
		}{id, title, src, live}
		s.render(w, http.StatusOK, "player.html", page{Title: title, Operator: who.Name, CSRF: who.csrf, Player: true, Data: data})
	}
}

func (s *Server) killPage(w http.ResponseWriter, r *http.Request, who operator) {
	rec := &statusRecorder{}
	s.apiKill(rec, r, who)
	if rec.status != http.StatusNoContent {
		s.pageError(w, who, rec.status, "No such live session: it may have ended already.")
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// statusRecorder keeps only the status an API handler answers.
type statusRecorder struct {
	status int
	h      http.Header
}

func (s *statusRecorder) Header() http.Header {
	if s.h == nil {
		s.h = http.Header{}
	}
	return s.h
}
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}
func (s *statusRecorder) WriteHeader(code int) { s.status = code }

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, who operator) {
	q := r.URL.Query()
	vals := map[string]string{}
	kept := url.Values{}
	for _, k := range []string{"user", "session", "type", "verdict", "since", "until"} {
		vals[k] = q.Get(k)
		if v := q.Get(k); v != "" {
			kept.Set(k, v)
		}
	}
	data := struct {
		Q      map[string]string
		Query  string
		Events []audit.Event
		More   bool
	}{Q: vals, Query: kept.Encode()}
	p := page{Title: "Audit", Operator: who.Name, CSRF: who.csrf}
	f, err := s.auditQuery(r)
	if err == nil {
		f.Limit = pageAuditLimit + 1
		data.Events, err = s.queryAudit(r, f)
		if err != nil {
			s.pageError(w, who, http.StatusServiceUnavailable, "The audit store is unavailable.")
			return
		}
		if len(data.Events) > pageAuditLimit {
			data.Events, data.More = data.Events[1:], true
		}
		slices.Reverse(data.Events) // newest first
	} else {
		p.Error = fmt.Sprint(err)
	}
	p.Data = data
	s.render(w, http.StatusOK, "audit.html", p)
}
