package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Session is one live master session as the API lists it.
type Session struct {
	ID     string    `json:"id"`
	User   string    `json:"user"`
	Client string    `json:"client"`
	Target string    `json:"target,omitempty"`
	Start  time.Time `json:"start"`
}

// ErrNotFound is returned by Gateway.Kill when no live session has the id.
var ErrNotFound = errors.New("admin: no such live session")

// Gateway is what the API needs from the running gateway.
type Gateway interface {
	// LiveSessions returns the live master sessions of every service.
	LiveSessions() []Session
	// Kill ends the live master session id on an operator's behalf and
	// audits it; ErrNotFound when there is none.
	Kill(ctx context.Context, id string) error
}

// notFoundHeader marks a 404 that means "no such live session", apart
// from the mux's 404 for an unknown path.
const notFoundHeader = "Sluice-Not-Found"

// readHeaderTimeout bounds a request's headers; clients are local tools.
const readHeaderTimeout = 10 * time.Second

// Server serves the API. Start it with Serve; stop it with Shutdown.
type Server struct {
	gw  Gateway
	log *slog.Logger
	srv *http.Server
}

// NewServer returns a Server for gw; logger receives request errors.
func NewServer(gw Gateway, logger *slog.Logger) *Server {
	s := &Server{gw: gw, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions", s.sessions)
	mux.HandleFunc("POST /sessions/{id}/kill", s.kill)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve answers requests on l until Shutdown, when it returns nil.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// Shutdown stops the server, waiting for requests in progress until ctx
// is done, and closes the listener (which removes the socket).
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	list := s.gw.LiveSessions()
	if list == nil {
		list = []Session{}
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(list); err != nil {
		s.log.WarnContext(r.Context(), "admin: writing the session list", "err", err)
	}
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.gw.Kill(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		w.Header().Set(notFoundHeader, "session")
		http.Error(w, fmt.Sprintf("no live session %q", id), http.StatusNotFound)
	case err != nil:
		s.log.ErrorContext(r.Context(), "admin: kill", "session_id", id, "err", err)
		http.Error(w, "kill failed", http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
