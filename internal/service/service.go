package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/zone"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("service: server closed")

// Audit event type written for every accepted or refused connection, and
// when an admitted session ends.
const (
	EventConnection    = "connection"
	EventConnectionEnd = "connection.end"
)

// Accept back-off after a temporary error, as net/http.Server does.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// Handler serves one admitted connection. Contract: it must return when
// ctx is done (Close relies on that) and should not close c; when it
// returns, the service closes c and ends the session.
type Handler func(ctx context.Context, m *session.Master, c net.Conn)

// Params configures a Service.
type Params struct {
	Gateway string
	Name    string
	// Listener is where connections come from; the caller listens and the
	// service closes it on Shutdown or Close.
	Listener net.Listener
	// Zones, ClientZones and ServerZones configure the sessions' access
	// control (see session.MasterParams).
	Zones       *zone.Tree
	ClientZones []string
	ServerZones []string
	// MaxSessions limits the live sessions; 0 means no limit.
	MaxSessions int
	// Admit, when set, is asked for every connection whose client zone is
	// permitted; an error refuses it, audited with the rule returned (the
	// gateway refuses sessions while its audit store is unavailable).
	Admit func(m *session.Master) (rule string, err error)
	// MaxSessionsPerUser limits the live sessions of one authenticated
	// user (see Authenticated); 0 means no limit.
	MaxSessionsPerUser int
	// Startups admits unauthenticated connections; it is shared by the
	// services of a gateway. Nil means no limit.
	Startups *Startups
	// Audit receives the service's audit events; nil logs them to Logger.
	Audit audit.Sink
	// Logger receives operational logs; nil discards them.
	Logger  *slog.Logger
	Handler Handler
	// Release, when set, is called once Handler serves no new connection:
	// when Reconfigure replaces it, or when the service stops accepting.
	// Connections being served carry on.
	Release func()
	// Clock is passed to the sessions; nil means time.Now.
	Clock func() time.Time
	// Instance, when set, returns the instance number of each new
	// connection's session id GATEWAY/SERVICE:INSTANCE; the gateway's come
	// from blocks reserved in the audit store, so that ids stay unique for
	// the life of the store, across restarts and reloads. An error refuses
	// the connection (it is logged). Nil numbers connections from 1.
	// Reconfigure keeps the Instance the service was created with.
	Instance func() (uint64, error)
}

// Service is one listener and its sessions.
type Service struct {
	p      Params
	log    *slog.Logger
	sink   audit.Sink
	ctx    context.Context // parent of every session; cancelled by Close
	cancel context.CancelCauseFunc

	// mu guards the fields below. It is never held while a session's lock
	// is taken, nor during I/O, the Handler or the audit sink.
	mu            sync.Mutex
	next          uint64
	closed        bool
	active        int // connection goroutines running
	live          map[*session.Master]struct{}
	pending       map[*session.Master]func() // releases the Startups slot
	userOf        map[*session.Master]string // counted in users
	users         map[string]int             // live sessions per user
	drained       chan struct{}              // closed when closed and active == 0
	drainedClosed bool
	shutdown      chan struct{} // closed when Shutdown or Close starts
}

// New returns a Service; call Serve to run it.
func New(p Params) *Service {
	s := &Service{
		p:        p,
		log:      p.Logger,
		sink:     p.Audit,
		live:     make(map[*session.Master]struct{}),
		pending:  make(map[*session.Master]func()),
		userOf:   make(map[*session.Master]string),
		users:    make(map[string]int),
		drained:  make(chan struct{}),
		shutdown: make(chan struct{}),
	}
	s.p.ClientZones = slices.Clone(p.ClientZones)
	s.p.ServerZones = slices.Clone(p.ServerZones)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("service", p.Name)
	if s.sink == nil {
		s.sink = audit.LogSink{Logger: s.log}
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	return s
}

// Serve accepts connections until the listener fails or the service is shut
// down, when it returns ErrServerClosed. Each connection is served in its
// own goroutine, which the service owns: Shutdown and Close wait for them.
func (s *Service) Serve() error {
	var delay time.Duration
	for {
		c, err := s.p.Listener.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.shutdown:
					t.Stop()
				}
				continue
			}
			return fmt.Errorf("service: %s: accept: %w", s.p.Name, err)
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return ErrServerClosed
		}
		s.active++
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// instance returns the instance number of a new connection's session.
func (s *Service) instance() (uint64, error) {
	if s.p.Instance != nil { // set by New only
		return s.p.Instance()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next, nil
}

// serveConn runs one connection from admission to the end of its session.
func (s *Service) serveConn(c net.Conn) {
	defer s.connDone()
	id, err := s.instance()
	if err != nil {
		s.log.Error("connection refused: no session id", "client", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	p := s.current()
	m := session.NewMaster(s.ctx, session.MasterParams{
		Gateway:     p.Gateway,
		Service:     p.Name,
		Instance:    id,
		Zones:       p.Zones,
		ClientZones: p.ClientZones,
		ServerZones: p.ServerZones,
		OnEnd:       s.ended,
		Clock:       p.Clock,
	})
	m.Hold(c)
	defer m.Destroy()
	session.Set(m, serviceKey, s)

	if err := m.SetClient(addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())); err != nil {
		rule := ""
		if de, ok := errors.AsType[*session.DeniedError](err); ok {
			rule = de.Rule
		}
		s.reject(m, rule, err)
		return
	}
	if p.Admit != nil {
		if rule, err := p.Admit(m); err != nil {
			s.reject(m, rule, err)
			return
		}
	}
	if rule, err := s.admit(m); err != nil {
		s.reject(m, rule, err)
		return
	}
	if p.Startups != nil {
		release, err := p.Startups.Begin(m.ClientAddr().Addr())
		if err != nil {
			s.mu.Lock()
			delete(s.live, m)
			s.mu.Unlock()
			rule := ""
			if le, ok := errors.AsType[*LimitError](err); ok {
				rule = le.Rule
			}
			s.reject(m, rule, err)
			return
		}
		s.mu.Lock()
		s.pending[m] = release
		s.mu.Unlock()
	}
	e := m.AuditEvent(EventConnection)
	e.Verdict, e.Rule = audit.Accept, fmt.Sprintf("services[%s].client_zones", p.Name)
	s.write(m.Context(), e)
	p.Handler(m.Context(), m, c)
}

// admit registers m as live unless the service is closing or full.
func (s *Service) admit(m *session.Master) (rule string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", session.ErrShutdown
	}
	if s.p.MaxSessions > 0 && len(s.live) >= s.p.MaxSessions {
		return fmt.Sprintf("services[%s].max_sessions", s.p.Name),
			fmt.Errorf("%w: %d sessions live, limit %d", session.ErrDenied, len(s.live), s.p.MaxSessions)
	}
	s.live[m] = struct{}{}
	return "", nil
}

// serviceKey holds, on each master, the service that admitted it. The key
// is made once and never changes.
var serviceKey = session.NewKey[*Service]("service")

// Authenticated tells the service that admitted m that m's user has
// authenticated (the proxy calls it once m.User is set): the connection no
// longer counts against Startups, and it counts against MaxSessionsPerUser
// from now on. A refusal by that limit returns the rule and a *LimitError;
// the caller ends the session. For a master no service admitted it does
// nothing.
func Authenticated(m *session.Master) (rule string, err error) {
	s, ok := session.Lookup(m, serviceKey)
	if !ok {
		return "", nil
	}
	return s.authenticated(m)
}

func (s *Service) authenticated(m *session.Master) (rule string, err error) {
	user := m.User()
	s.mu.Lock()
	release := s.pending[m]
	delete(s.pending, m)
	_, live := s.live[m]
	_, counted := s.userOf[m]
	var refused error
	switch {
	case !live || counted:
	case s.p.MaxSessionsPerUser > 0 && s.users[user] >= s.p.MaxSessionsPerUser:
		rule = fmt.Sprintf("services[%s].max_sessions_per_user", s.p.Name)
		refused = &LimitError{Rule: rule, Reason: fmt.Sprintf("%d sessions of user %s live, limit %d", s.users[user], user, s.p.MaxSessionsPerUser)}
	default:
		s.userOf[m] = user
		s.users[user]++
	}
	startups := s.p.Startups
	s.mu.Unlock()
	if release != nil {
		release()
	}
	if startups != nil {
		startups.Succeeded(m.ClientAddr().Addr())
	}
	return rule, refused
}

// reject audits a refused connection and ends its session with cause.
func (s *Service) reject(m *session.Master, rule string, cause error) {
	e := m.AuditEvent(EventConnection)
	e.Verdict, e.Rule, e.Reason = audit.Reject, rule, cause.Error()
	s.write(m.Context(), e)
	m.End(cause)
}

// ended is the sessions' OnEnd: it forgets a live session and audits its end.
func (s *Service) ended(m *session.Master, cause error) {
	s.mu.Lock()
	_, wasLive := s.live[m]
	delete(s.live, m)
	release := s.pending[m]
	delete(s.pending, m)
	if user, ok := s.userOf[m]; ok {
		delete(s.userOf, m)
		if s.users[user]--; s.users[user] <= 0 {
			delete(s.users, user)
		}
	}
	s.mu.Unlock()
	if release != nil {
		release()
	}
	if !wasLive {
		return
	}
	e := m.AuditEvent(EventConnectionEnd)
	e.Reason = cause.Error()
	s.write(m.Context(), e)
}

// write sends e to the sink. The event outlives the session it describes,
// so the session's cancellation does not apply to the write.
func (s *Service) write(ctx context.Context, e audit.Event) {
	if err := s.sink.Write(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit write failed", "session_id", e.SessionID, "type", e.Type, "err", err)
	}
}

func (s *Service) connDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	s.checkDrainedLocked()
}

func (s *Service) checkDrainedLocked() {
	if s.closed && s.active == 0 && !s.drainedClosed {
		s.drainedClosed = true
		close(s.drained)
	}
}

// Live returns the sessions admitted and not yet ended.
func (s *Service) Live() []*session.Master {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session.Master, 0, len(s.live))
	for m := range s.live {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *session.Master) int { return cmp.Compare(a.InstanceID(), b.InstanceID()) })
	return out
}

// stop marks the service closed and closes the listener.
func (s *Service) stop() error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.checkDrainedLocked()
	s.mu.Unlock()
	if !first {
		return nil
	}
	close(s.shutdown)
	if r := s.current().Release; r != nil {
		r()
	}
	if err := s.p.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("service: %s: close listener: %w", s.p.Name, err)
	}
	return nil
}

// Shutdown stops accepting and waits until every connection has finished or
// ctx is done, in which case it returns ctx.Err() and the connections go on;
// Close ends them.
func (s *Service) Shutdown(ctx context.Context) error {
	if err := s.stop(); err != nil {
		return err
	}
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting, ends every session now with session.ErrShutdown
// (closing its connection) and waits for the connection goroutines, which
// relies on Handlers returning when their context is done.
func (s *Service) Close() error {
	err := s.stop()
	s.cancel(session.ErrShutdown)
	<-s.drained
	return err
}

// addrPort converts a net.Addr to a netip.AddrPort; it is invalid for
// addresses that are not IP (a Unix socket), which no zone holds.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
