package gateway

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/session"
)

// Failed-login log lines: at most loginLogBurst per loginLogWindow one by
// one; the rest of a window are counted in one summary line, so a flood of
// failed logins costs the log at most loginLogBurst + 1 lines per window
// (Gateway.loginLog, a thin.Burst).
const (
	loginLogBurst  = 20
	loginLogWindow = 10 * time.Second
)

// login is what the gateway knows of one connection's authentication: its
// master session and the attempts refused so far, for the audit and for
// the one log line a failed login gets. The connection's ServerConfig
// reports to it (see Authenticator.Callbacks).
type login struct {
	m *session.Master

	mu      sync.Mutex
	refused int
	methods []string // distinct methods refused, in the order tried
	user    string   // of the last refusal
	rule    string
	reason  string
	// owed is the second factor the client owes since its first method
	// passed, until a keyboard-interactive attempt is refused; "" when
	// none.
	owed, owedBy string
}

// owe records that the client passed its first method as user and owes
// factor (auth.Login.Owed).
func (l *login) owe(id auth.Identity, factor string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owed, l.owedBy = factor, id.User
}

// refuse records one refused attempt.
func (l *login) refuse(method, user, rule, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if method == auth.MethodKeyboardInteractive {
		l.owed = ""
	}
	l.refused++
	if !slices.Contains(l.methods, method) {
		l.methods = append(l.methods, method)
	}
	l.user, l.rule, l.reason = user, rule, reason
}

// refused audits one refused authentication attempt of l's connection
// and counts it against the source.
func (g *Gateway) refused(l *login, r auth.Refusal) {
	l.refuse(r.Method, r.User, r.Rule, r.Reason)
	g.penalise(l.m)
	e := l.m.AuditEvent("auth")
	e.User = r.User
	e.Verdict, e.Rule, e.Reason = audit.Reject, r.Rule, r.Reason
	e.Detail = map[string]any{"method": r.Method}
	_ = g.write(context.Background(), e)
}

// loginDone writes the log line of a connection that ended without
// authenticating after at least one refused attempt: one line per failed
// login, not per attempt, thinned under a flood. A connection that never
// tried (a port scan, a failed handshake) writes none: its audit event
// says what happened.
//
// A client that passed its first method and left without answering the
// second factor it owed is refused and audited here, once.
func (g *Gateway) loginDone(l *login) {
	if l.m.User() != "" {
		return
	}
	l.mu.Lock()
	owed, user := l.owed, l.owedBy
	l.mu.Unlock()
	if owed != "" {
		g.refused(l, auth.Refusal{Method: auth.MethodKeyboardInteractive, User: user, Rule: "services[" + l.m.Service() + "].mfa", Reason: "connection ended without answering the second factor (" + owed + ")"})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused == 0 || !g.loginLog.Allow(struct{}{}) {
		return
	}
	g.logger.LogAttrs(context.Background(), slog.LevelWarn, "login failed",
		slog.String("service", l.m.Service()), slog.String("session_id", l.m.ID()),
		slog.String("user", l.user), slog.String("source", l.m.ClientAddr().String()),
		slog.String("methods", strings.Join(l.methods, ",")), slog.Int("attempts", l.refused),
		slog.String("rule", l.rule), slog.String("reason", l.reason))
}
