package console

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
)

// Gateway is what the console needs from the running gateway.
type Gateway interface {
	// LiveSessions returns the live master sessions.
	LiveSessions() []admin.Session
	// KillAs ends live master session id on behalf of operator and audits
	// it; admin.ErrNotFound when there is none.
	KillAs(ctx context.Context, id, operator string) error
}

// FleetGateway is implemented by a Gateway that may be a node of a fleet
// (internal/fleet): the session list's live sessions and the detail
// page's "live" are then the fleet's, and a session another node holds
// can be watched live from its recording in the shared recordings folder;
// a kill reaches the fleet through KillAs.
type FleetGateway interface {
	// FleetSessions returns the fleet's live master sessions (this
	// node's alone outside a fleet).
	FleetSessions() []admin.Session
	// FleetHolds reports whether another node of the fleet holds live
	// master session id; an error when the fleet's registry did not
	// answer.
	FleetHolds(ctx context.Context, id string) (bool, error)
}

// RecordingFollower is implemented by a Gateway that hands the console
// the lines of a live session's recording as the recorder queues them
// (record.File.Follow), so that a live view need not decompress the file
// as it grows.
type RecordingFollower interface {
	// FollowRecording follows the recording live master session id is
	// writing: the file's path, the Follower, and how many lines of the
	// file come before the Follower's first. stop ends the Follower.
	// admin.ErrNotFound when the session is not live or not recorded.
	FollowRecording(id string) (path string, fl *record.Follower, skip int64, stop func(), err error)
}

// Terminals is implemented by a Gateway whose live pty channels operators
// can be announced on and join.
type Terminals interface {
	// Attend tells the user of live pty channel id (a master session id:
	// its first live pty channel) on their terminal that operator watches
	// it, or has joined it read-write when readWrite. It returns
	// ErrJoinRefused when policy does not let operator join read-write,
	// and admin.ErrNotFound when there is no such live pty channel.
	Attend(id, operator string, readWrite bool) (Attendance, error)
}

// Attendance is one operator watching or joined to a live pty channel.
type Attendance interface {
	// Channel is the id of the channel attended.
	Channel() string
	// Input sends p to the target as the user's keystrokes (recorded as
	// theirs when the service records input); an error when the channel
	// is not joined read-write or has ended.
	Input(p []byte) error
	// Leave tells the user the operator has stopped watching.
	Leave()
}

// ErrJoinRefused is returned by Terminals.Attend when policy
// (console.join) does not let an operator join a channel read-write.
var ErrJoinRefused = errors.New("console: joining read-write is not allowed here")

// Store is what the console reads from the audit store.
type Store interface {
	Query(ctx context.Context, f audit.Filter) ([]audit.Event, error)
	Sessions(ctx context.Context, f audit.SessionFilter) ([]audit.SessionSummary, error)
}

// Params configure a Server.
type Params struct {
	Gateway Gateway
	Store   Store
	// Audit receives the console.* events of what operators do.
	Audit audit.Sink
	// StateDir holds the credentials (StateDir/console) and the
	// self-signed certificate.
	StateDir string
	// RecordDir is where recordings are; the console serves no file
	// outside it whatever the audit store names.
	RecordDir string
	// Listen is the address to listen on; CertFile and KeyFile a
	// configured certificate (both empty: self-signed).
	Listen            string
	CertFile, KeyFile string
	// SessionTimeout is how long a browser login lasts.
	SessionTimeout time.Duration
	// GatewayName is shown in page titles and the TOTP issuer.
	GatewayName string
	Logger      *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// LivePoll is how often a live view looks for more of the recording
	// (default 250ms).
	LivePoll time.Duration
}

// Server is the console. Start it with Serve; stop it with Shutdown.
type Server struct {
	p        Params
	creds    *Credentials
	sessions *browserSessions
	limiter  *loginLimiter
	once     oneTime
	cert     tls.Certificate
	srv      *http.Server
	handler  http.Handler
	joins    joins
}

// readHeaderTimeout bounds a request's headers (slowloris).
const readHeaderTimeout = 10 * time.Second

// defaultLivePoll is how often a live view polls a recording file.
const defaultLivePoll = 250 * time.Millisecond

// New returns a Server; it loads or makes its certificate.
func New(p Params) (*Server, error) {
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.LivePoll <= 0 {
		p.LivePoll = defaultLivePoll
	}
	if p.SessionTimeout <= 0 {
		p.SessionTimeout = 12 * time.Hour
	}
	dir := filepath.Join(p.StateDir, "console")
	cert, err := loadCertificate(p.CertFile, p.KeyFile, dir, p.Listen, p.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{
		p:        p,
		creds:    NewCredentials(dir, p.Now),
		sessions: newBrowserSessions(p.Now, p.SessionTimeout),
		limiter:  newLoginLimiter(p.Now),
		cert:     cert,
	}
	s.handler = s.routes()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(p.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Credentials returns the console's tokens and operators.
func (s *Server) Credentials() *Credentials { return s.creds }

// Handler returns the console's HTTP handler (for tests behind their own
// TLS listener).
func (s *Server) Handler() http.Handler { return s.handler }

// Certificate returns the certificate the console serves.
func (s *Server) Certificate() tls.Certificate { return s.cert }

// Listen opens the console's TCP listener.
func (s *Server) Listen() (net.Listener, error) {
	l, err := net.Listen("tcp", s.p.Listen)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return l, nil
}

// Serve answers HTTPS requests on l until Shutdown, when it returns nil.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// Shutdown stops the server, waiting for requests in progress until ctx
// is done; live views end when their request context is cancelled.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// routes is the console's mux, wrapped in the security headers.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h func(w http.ResponseWriter, r *http.Request, who operator)) {
		mux.Handle(pattern, s.apiAuth(h))
	}
	api("GET /api/v1/sessions", s.apiSessions)
	api("GET /api/v1/sessions/{id}", s.apiSession)
	api("GET /api/v1/sessions/{id}/recording", s.apiRecording)
	api("GET /api/v1/sessions/{id}/live", s.apiLive)
	api("POST /api/v1/sessions/{id}/kill", s.apiKill)
	api("POST /api/v1/sessions/{id}/input", s.apiInput)
	api("GET /api/v1/audit", s.apiAudit)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such endpoint", http.StatusNotFound)
	})
	s.pageRoutes(mux)
	return securityHeaders(mux)
}

// securityHeaders sets the headers of every answer: a CSP that allows
// only the console's own scripts, styles and connections (WebAssembly is
// asciinema-player's terminal emulator), no framing, no sniffing, no
// referrer outside the console, HSTS, and no caching of anything but the assets.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on form posts, and the Origin check needs the origin.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// clientAddr is the address of the request's peer, as the audit writes it.
func clientAddr(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.String()
	}
	return r.RemoteAddr
}

// clientHost is the peer's address without the port, the rate limit's key.
func clientHost(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().String()
	}
	return r.RemoteAddr
}

// operator is who makes a request: a browser login or a token.
type operator struct {
	Name string
	Via  string // "browser" or "token"
	// csrf is the browser session's CSRF token; empty for a token.
	csrf string
}

// auditEvent writes a console.* event about what who did.
func (s *Server) auditEvent(r *http.Request, typ string, who operator, sessionID string, verdict audit.Verdict, reason string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["operator"] = who.Name
	detail["via"] = who.Via
	e := audit.Event{
		Time: s.p.Now(), Type: typ, SessionID: sessionID, User: who.Name, ClientAddr: clientAddr(r),
		Service: "console", Verdict: verdict, Rule: "console", Reason: reason, Detail: detail,
	}
	if err := s.p.Audit.Write(context.WithoutCancel(r.Context()), e); err != nil {
		s.p.Logger.ErrorContext(r.Context(), "console: audit write failed", "type", typ, "err", err)
	}
}
