package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types and Detail keys the stores interpret (see doc.go). Other event
// types are stored and queried but not summarised.
const (
	TypeSessionStart = "session.start"
	TypeSessionEnd   = "session.end"

	DetailTarget     = "target"
	DetailExitStatus = "exit_status"
	DetailBytesIn    = "bytes_in"
	DetailBytesOut   = "bytes_out"
	DetailRecording  = "recording"
	// DetailRecordings (in session.end) lists the session's recordings as
	// objects {"path": PATH, "sha256": HEX}; `sluice audit verify` hashes
	// each file again.
	DetailRecordings = "recordings"
)

// ErrClosed is returned by a Store or Queue used after Close.
var ErrClosed = errors.New("audit: closed")

// Store is a durable Sink that can be queried. Implementations are safe for
// concurrent use. Writes are synchronous and may be slow (disk, network):
// the gateway writes through a Queue, never on the data path.
type Store interface {
	Sink
	InstanceReserver
	// Query returns the events matching f in time order (ties in write order).
	Query(ctx context.Context, f Filter) ([]Event, error)
	// Sessions summarises master sessions from their session.start and
	// session.end events, ordered by start time.
	Sessions(ctx context.Context, f SessionFilter) ([]SessionSummary, error)
	// Close releases the store. Later calls return ErrClosed.
	Close() error
}

// BatchWriter is implemented by stores that can write several events in one
// transaction (one fsync, one commit). Queue uses it when available.
type BatchWriter interface {
	WriteBatch(ctx context.Context, events []Event) error
}

// Filter selects events. Zero fields do not filter.
type Filter struct {
	Since time.Time // events at or after Since
	Until time.Time // events strictly before Until
	User  string    // exact user name
	// SessionPrefix matches session ids that start with it, so a master id
	// also selects its stacked sessions ("gw1/ssh-in:42" matches
	// "gw1/ssh-in:42/ssh/session:0"); add a trailing "/" to exclude the
	// master itself.
	SessionPrefix string
	Type          string  // exact event type
	TypePrefix    string  // event types that start with it ("console." selects console.login, console.kill)
	Verdict       Verdict // exact verdict
	// Limit, when positive, keeps only the newest Limit matching events (still
	// returned oldest first), which is what "show the last N" wants.
	Limit int
}

// SessionFilter selects master sessions by their session.start event.
type SessionFilter struct {
	Since         time.Time // started at or after Since
	Until         time.Time // started strictly before Until
	User          string
	SessionPrefix string
	Limit         int // the newest Limit sessions when positive
}

// SessionSummary describes one master session. End is zero and ExitStatus
// nil while no session.end has been stored (the session is live, or the
// gateway stopped without writing it).
type SessionSummary struct {
	ID         string    `json:"id"`
	User       string    `json:"user"`
	Client     string    `json:"client"`
	Target     string    `json:"target,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	ExitStatus *int      `json:"exit_status,omitempty"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	Recording  string    `json:"recording,omitempty"`
}

// Open opens the store named by sink, as the audit.sink config key spells it,
// for the gateway named gateway: the events it writes are linked in that
// gateway's hash chain (see Link) and ReserveInstances counts that
// gateway's session ids. Stores shared by several gateways (PostgreSQL)
// keep one chain and one set of counters per gateway name, so the names
// must differ.
//
//	sqlite              STATEDIR/audit.db (the embedded default)
//	jsonl:PATH          append-only JSON lines; a relative PATH is joined to stateDir
//	postgres://...      PostgreSQL (also postgresql://...), a libpq/pgx URL
//
// Pending schema migrations are applied before Open returns.
func Open(ctx context.Context, sink, stateDir, gateway string) (Store, error) {
	switch {
	case sink == "sqlite":
		return OpenSQLite(ctx, filepath.Join(stateDir, "audit.db"), gateway)
	case strings.HasPrefix(sink, "jsonl:"):
		p := strings.TrimPrefix(sink, "jsonl:")
		if p == "" {
			return nil, errors.New("audit: jsonl sink needs a path (jsonl:PATH)")
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(stateDir, p)
		}
		return OpenJSONL(p, gateway)
	case strings.HasPrefix(sink, "postgres://"), strings.HasPrefix(sink, "postgresql://"):
		return OpenPostgres(ctx, sink, gateway)
	default:
		return nil, fmt.Errorf("audit: unknown sink %q (want sqlite, jsonl:PATH or postgres://...)", sink)
	}
}

// indexKey is how a string is kept in an indexed column: valid UTF-8 without
// NUL (PostgreSQL text rejects both), each invalid byte replaced by U+FFFD as
// encoding/json does, so the key of a string equals the key of its JSON round
// trip. The full event JSON keeps the value as encoding/json writes it.
// Filters go through the same mapping.
func indexKey(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // an invalid byte ranges as one utf8.RuneError
		if r == 0 {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// matches reports whether e passes f, for stores that filter in Go. It
// compares the same normalised keys the SQL stores index.
func (f Filter) matches(e Event) bool {
	switch {
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.User != "" && indexKey(e.User) != indexKey(f.User):
		return false
	case f.SessionPrefix != "" && !strings.HasPrefix(indexKey(e.SessionID), indexKey(f.SessionPrefix)):
		return false
	case f.Type != "" && indexKey(e.Type) != indexKey(f.Type):
		return false
	case f.TypePrefix != "" && !strings.HasPrefix(indexKey(e.Type), indexKey(f.TypePrefix)):
		return false
	case f.Verdict != "" && indexKey(string(e.Verdict)) != indexKey(string(f.Verdict)):
		return false
	}
	return true
}

// isMaster reports whether id names a master session, GATEWAY/SERVICE:INSTANCE
// (DESIGN.md): stacked sessions append further "/NAME" parts.
func isMaster(id string) bool { return strings.Count(id, "/") == 1 }

// summarise implements Store.Sessions on top of Query: the session.start
// events selected by f, then the session.end events of the same sessions.
func summarise(ctx context.Context, query func(context.Context, Filter) ([]Event, error), f SessionFilter) ([]SessionSummary, error) {
	starts, err := query(ctx, Filter{Since: f.Since, Until: f.Until, User: f.User, SessionPrefix: f.SessionPrefix, Type: TypeSessionStart, Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	var out []SessionSummary
	byID := map[string]int{}
	for _, e := range starts {
		if !isMaster(e.SessionID) {
			continue
		}
		if _, dup := byID[e.SessionID]; dup {
			continue
		}
		s := SessionSummary{ID: e.SessionID, User: e.User, Client: e.ClientAddr, Start: e.Time, Target: e.Target}
		applyDetail(&s, e.Detail)
		byID[e.SessionID] = len(out)
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, nil
	}
	// A session's end carries its master's user, as its start does, so the
	// user filter narrows the ends too (the console lists one user's
	// sessions among 100,000 this way).
	ends, err := query(ctx, Filter{Since: out[0].Start, User: f.User, SessionPrefix: f.SessionPrefix, Type: TypeSessionEnd})
	if err != nil {
		return nil, err
	}
	for _, e := range ends {
		i, ok := byID[e.SessionID]
		if !ok {
			continue
		}
		s := &out[i]
		s.End = e.Time
		if e.Target != "" {
			s.Target = e.Target
		}
		applyDetail(s, e.Detail)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

func applyDetail(s *SessionSummary, d map[string]any) {
	if v, ok := d[DetailTarget].(string); ok && v != "" {
		s.Target = v
	}
	if v, ok := detailInt(d, DetailExitStatus); ok && v >= math.MinInt32 && v <= math.MaxInt32 {
		n := int(v)
		s.ExitStatus = &n
	}
	if v, ok := detailInt(d, DetailBytesIn); ok {
		s.BytesIn = v
	}
	if v, ok := detailInt(d, DetailBytesOut); ok {
		s.BytesOut = v
	}
	if v, ok := d[DetailRecording].(string); ok && v != "" {
		s.Recording = v
	}
}

// detailInt reads an integer Detail value as written in memory (int kinds)
// or read back from JSON (float64).
func detailInt(d map[string]any, key string) (int64, bool) {
	switch v := d[key].(type) {
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint32:
		return int64(v), true
	case uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case float64:
		if v != math.Trunc(v) || v < math.MinInt64 || v >= math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	}
	return 0, false
}

// keepNewest trims events (in time order) to the newest limit.
func keepNewest(events []Event, limit int) []Event {
	if limit > 0 && len(events) > limit {
		return events[len(events)-limit:]
	}
	return events
}
