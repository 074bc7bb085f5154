package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNameTaken is returned by Join when a live node holds the name.
var ErrNameTaken = errors.New("fleet: gateway name taken")

// ErrNotFound is returned by Kill when no node lists the session.
var ErrNotFound = errors.New("fleet: no such live session in the fleet")

// killChannel is the NOTIFY channel of kill requests.
const killChannel = "sluice_kill"

// migrationLock is the pg_advisory_xact_lock key that serialises the
// creation of the tables: "fleet" in ASCII.
const migrationLock = 0x666c656574

var schema = []string{
	`CREATE TABLE IF NOT EXISTS fleet_nodes (
		name        TEXT COLLATE "C" PRIMARY KEY,
		token       TEXT NOT NULL,
		version     TEXT NOT NULL,
		config_hash TEXT NOT NULL,
		started     TIMESTAMPTZ NOT NULL,
		heartbeat   TIMESTAMPTZ NOT NULL,
		lease_until TIMESTAMPTZ NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS fleet_sessions (
		id        TEXT COLLATE "C" PRIMARY KEY,
		gateway   TEXT COLLATE "C" NOT NULL,
		user_name TEXT NOT NULL,
		client    TEXT NOT NULL,
		target    TEXT NOT NULL,
		start     TIMESTAMPTZ NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS fleet_sessions_gateway ON fleet_sessions (gateway)`,
	`CREATE TABLE IF NOT EXISTS fleet_totp_steps (
		user_name TEXT COLLATE "C" PRIMARY KEY,
		step      BIGINT NOT NULL,
		expires   TIMESTAMPTZ NOT NULL
	)`,
}

// Node describes this gateway in the registry.
type Node struct {
	Name       string // gateway.name
	Version    string // the sluice build
	ConfigHash string // SHA-256 of the config file, hex
}

// Session is one live master session of the fleet.
type Session struct {
	ID      string    `json:"id"`
	Gateway string    `json:"gateway"`
	User    string    `json:"user"`
	Client  string    `json:"client"`
	Target  string    `json:"target,omitempty"`
	Start   time.Time `json:"start"`
}

// Params are what Run needs from the gateway.
type Params struct {
	// Lease is how long the name outlasts the last heartbeat; Run
	// heartbeats every third of it.
	Lease time.Duration
	// Live returns the node's live sessions (Gateway unset).
	Live func() []Session
	// Kill ends live session id on operator's behalf ("" for the admin
	// socket); an error means the node does not hold it.
	Kill func(ctx context.Context, id, operator string) error
	// Lost is called, at most once per death, for each node whose lease
	// expired: it closes that gateway's open sessions in the audit store.
	// The node's registry rows go once it returns nil.
	Lost   func(ctx context.Context, gateway string) error
	Logger *slog.Logger
}

// Member is this node's place in the fleet, from Join to Leave.
type Member struct {
	pool  *pgxpool.Pool
	node  Node
	token string // tells this process's claim on the name from a later one's
	lease time.Duration
	// schema is the store's schema: NOTIFY reaches the whole database, so
	// a kill request names the schema of the fleet it is meant for.
	schema string

	poke chan struct{} // Changed → Run: sync the live sessions now

	mu     sync.Mutex
	synced map[string]Session // the rows of fleet_sessions as last written
}

// Join connects to the store at dsn, creates the fleet tables if missing
// and claims node.Name for lease: it fails with ErrNameTaken when another
// node holds the name and its lease has not expired. A name whose lease
// expired is taken over, and the rows of the sessions it listed dropped
// (the caller closes them in the audit store, as after a crash).
func Join(ctx context.Context, dsn string, node Node, lease time.Duration) (*Member, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	m := &Member{pool: pool, node: node, lease: lease, poke: make(chan struct{}, 1), synced: map[string]Session{}}
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&m.schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if err := m.join(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return m, nil
}

func (m *Member) join(ctx context.Context) error {
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	m.token = hex.EncodeToString(tok[:])
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		for _, stmt := range schema {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fleet: creating the tables: %w", err)
	}
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		const claim = `INSERT INTO fleet_nodes (name, token, version, config_hash, started, heartbeat, lease_until)
			VALUES ($1, $2, $3, $4, now(), now(), now() + make_interval(secs => $5))
			ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, version = EXCLUDED.version,
				config_hash = EXCLUDED.config_hash, started = now(), heartbeat = now(),
				lease_until = EXCLUDED.lease_until
			WHERE fleet_nodes.lease_until < now()
			RETURNING token`
		var got string
		err := tx.QueryRow(ctx, claim, m.node.Name, m.token, clean(m.node.Version), m.node.ConfigHash, m.lease.Seconds()).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return m.taken(ctx, tx)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM fleet_sessions WHERE gateway = $1`, m.node.Name)
		return err
	})
	if errors.Is(err, ErrNameTaken) {
		return err
	}
	if err != nil {
		return fmt.Errorf("fleet: joining as %q: %w", m.node.Name, err)
	}
	return nil
}

// taken is the ErrNameTaken of the node holding the name.
func (m *Member) taken(ctx context.Context, tx pgx.Tx) error {
	var (
		version string
		ago     float64
		left    float64
	)
	err := tx.QueryRow(ctx, `SELECT version, extract(epoch FROM now() - heartbeat)::float8, extract(epoch FROM lease_until - now())::float8
		FROM fleet_nodes WHERE name = $1`, m.node.Name).Scan(&version, &ago, &left)
	if err != nil {
		return fmt.Errorf("%w: %q is held by another node", ErrNameTaken, m.node.Name)
	}
	return fmt.Errorf("%w: %q is held by a running node (version %s, last heartbeat %.0fs ago); give this node another gateway.name, or stop that one (a dead node's name is free %.0fs after its last heartbeat)",
		ErrNameTaken, m.node.Name, version, ago, max(left, 0))
}

// Name is the gateway name the member holds.
func (m *Member) Name() string { return m.node.Name }

// Changed tells Run that the node's live sessions changed; it does not block.
func (m *Member) Changed() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// Run heartbeats, publishes the live sessions, reaps dead nodes and
// delivers kill requests until ctx is done. It returns when every
// goroutine it started has ended.
func (m *Member) Run(ctx context.Context, p Params) {
	var wg sync.WaitGroup
	ready := make(chan struct{})
	wg.Go(func() { m.listen(ctx, p, sync.OnceFunc(func() { close(ready) })) })
	// Sessions are published once kill requests can be heard, but a
	// store that refuses LISTEN does not keep them unpublished forever.
	select {
	case <-ready:
	case <-ctx.Done():
	case <-time.After(p.Lease / 3):
	}
	beat := time.NewTicker(p.Lease / 3)
	defer beat.Stop()
	for {
		m.sync(ctx, p)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-m.poke:
		case <-beat.C:
			m.heartbeat(ctx, p)
			m.reap(ctx, p)
			m.forgetSteps(ctx, p)
		}
	}
}

// heartbeat renews the lease; a lease lost (another process took the
// name after this one was silent too long) is logged and claimed again.
func (m *Member) heartbeat(ctx context.Context, p Params) {
	tag, err := m.pool.Exec(ctx, `UPDATE fleet_nodes SET heartbeat = now(), lease_until = now() + make_interval(secs => $3)
		WHERE name = $1 AND token = $2`, m.node.Name, m.token, p.Lease.Seconds())
	switch {
	case ctx.Err() != nil:
	case err != nil:
		p.Logger.Error("fleet: heartbeat failed", "gateway", m.node.Name, "err", err)
	case tag.RowsAffected() == 0:
		p.Logger.Error("fleet: lease lost (silent longer than gateway.fleet.lease); claiming the name again", "gateway", m.node.Name)
		m.mu.Lock()
		m.synced = map[string]Session{}
		m.mu.Unlock()
		if err := m.join(ctx); err != nil {
			p.Logger.Error("fleet: claiming the name again failed", "gateway", m.node.Name, "err", err)
		}
	}
}

// reap hands each node whose lease expired to p.Lost, then drops its
// rows. The row lock (SKIP LOCKED) lets one survivor reap a node while
// the others pass it by.
func (m *Member) reap(ctx context.Context, p Params) {
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name FROM fleet_nodes WHERE lease_until < now() AND name <> $1 FOR UPDATE SKIP LOCKED`, m.node.Name)
		if err != nil {
			return err
		}
		dead, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range dead {
			p.Logger.Warn("fleet: node lease expired: closing its sessions", "gateway", name)
			if err := p.Lost(ctx, name); err != nil {
				return fmt.Errorf("closing the sessions of %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM fleet_sessions WHERE gateway = $1`, name); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM fleet_nodes WHERE name = $1`, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		p.Logger.Error("fleet: reaping dead nodes failed", "err", err)
	}
}

// sync writes the difference between the live sessions and the rows last
// written: one insert per new session, one delete per ended one.
func (m *Member) sync(ctx context.Context, p Params) {
	live := map[string]Session{}
	for _, s := range p.Live() {
		s.Gateway = m.node.Name
		live[s.ID] = s
	}
	m.mu.Lock()
	var add, del []Session
	for id, s := range live {
		if _, ok := m.synced[id]; !ok {
			add = append(add, s)
		}
	}
	for id, s := range m.synced {
		if _, ok := live[id]; !ok {
			del = append(del, s)
		}
	}
	m.mu.Unlock()
	if len(add)+len(del) == 0 {
		return
	}
	var b pgx.Batch
	for _, s := range add {
		b.Queue(`INSERT INTO fleet_sessions (id, gateway, user_name, client, target, start) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET gateway = EXCLUDED.gateway`, clean(s.ID), s.Gateway, clean(s.User), clean(s.Client), clean(s.Target), s.Start)
	}
	for _, s := range del {
		b.Queue(`DELETE FROM fleet_sessions WHERE id = $1 AND gateway = $2`, clean(s.ID), s.Gateway)
	}
	if err := m.pool.SendBatch(ctx, &b).Close(); err != nil {
		if ctx.Err() == nil {
			p.Logger.Error("fleet: publishing the live sessions failed", "err", err)
		}
		return
	}
	m.mu.Lock()
	for _, s := range add {
		m.synced[s.ID] = s
	}
	for _, s := range del {
		delete(m.synced, s.ID)
	}
	m.mu.Unlock()
}

// killRequest is the payload of a NOTIFY on killChannel.
type killRequest struct {
	Schema   string `json:"schema"`
	ID       string `json:"id"`
	Gateway  string `json:"gateway"`
	Operator string `json:"operator,omitempty"`
}

// parseKillRequest reads a NOTIFY payload: a JSON killRequest with a
// schema, a session id and a gateway name; anything else is an error.
func parseKillRequest(payload string) (killRequest, error) {
	var r killRequest
	d := json.NewDecoder(strings.NewReader(payload))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return killRequest{}, fmt.Errorf("fleet: kill request: %w", err)
	}
	if d.More() {
		return killRequest{}, errors.New("fleet: kill request: data after the JSON object")
	}
	if r.Schema == "" || r.ID == "" || r.Gateway == "" {
		return killRequest{}, errors.New("fleet: kill request: schema, id and gateway are required")
	}
	return r, nil
}

// listenRetry is the pause before listening again after the connection
// carrying LISTEN failed.
const listenRetry = time.Second

// listen delivers the kill requests addressed to this node until ctx is
// done, on a connection of its own (LISTEN holds it); listening is called
// each time LISTEN has taken effect.
func (m *Member) listen(ctx context.Context, p Params, listening func()) {
	for ctx.Err() == nil {
		err := m.listenOnce(ctx, p, listening)
		if ctx.Err() != nil {
			return
		}
		p.Logger.Error("fleet: listening for kill requests failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(listenRetry):
		}
	}
}

func (m *Member) listenOnce(ctx context.Context, p Params, listening func()) error {
	pc, err := m.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection in LISTEN mode must not return to the pool.
	c := pc.Hijack()
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "LISTEN "+killChannel); err != nil {
		return err
	}
	listening()
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		r, err := parseKillRequest(n.Payload)
		if err != nil {
			p.Logger.Warn("fleet: malformed kill request", "err", err)
			continue
		}
		if r.Schema != m.schema || r.Gateway != m.node.Name {
			continue
		}
		if err := p.Kill(ctx, r.ID, r.Operator); err != nil {
			p.Logger.Warn("fleet: kill request for a session this node does not hold", "session_id", r.ID, "err", err)
			continue
		}
		m.Changed()
	}
}

// killWait bounds how long Kill waits for the holding node to drop the
// session from the registry; killPoll is how often it looks, and
// killResend how often it sends the request again (a holder whose LISTEN
// connection was being replaced missed it).
const (
	killWait   = 10 * time.Second
	killPoll   = 100 * time.Millisecond
	killResend = time.Second
)

// Kill asks the node holding live session id to end it on operator's
// behalf (the holder audits the kill) and waits until the session has
// left the registry. ErrNotFound when no node lists it.
func (m *Member) Kill(ctx context.Context, id, operator string) error {
	return requestKill(ctx, m.pool, m.schema, id, operator)
}

// Kill is Member.Kill for a command that is not a node (`sluice kill`),
// on the fleet whose store is at dsn.
func Kill(ctx context.Context, dsn, id, operator string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	defer c.Close(context.Background())
	var schema string
	if err := c.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return requestKill(ctx, c, schema, id, operator)
}

func requestKill(ctx context.Context, q querier, schema, id, operator string) error {
	var gw string
	err := q.QueryRow(ctx, `SELECT gateway FROM fleet_sessions WHERE id = $1`, clean(id)).Scan(&gw)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("fleet: kill: %w", err)
	}
	payload, err := json.Marshal(killRequest{Schema: schema, ID: id, Gateway: gw, Operator: operator})
	if err != nil {
		return fmt.Errorf("fleet: kill: %w", err)
	}
	notify := func(ctx context.Context) error {
		_, err := q.Exec(ctx, `SELECT pg_notify($1, $2)`, killChannel, string(payload))
		return err
	}
	if err := notify(ctx); err != nil {
		return fmt.Errorf("fleet: kill: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	t := time.NewTicker(killPoll)
	defer t.Stop()
	for sent := time.Now(); ; {
		if time.Since(sent) >= killResend {
			if err := notify(wctx); err != nil {
				return fmt.Errorf("fleet: kill sent to %s, not confirmed: %w", gw, err)
			}
			sent = time.Now()
		}
		var n int
		if err := q.QueryRow(wctx, `SELECT count(*) FROM fleet_sessions WHERE id = $1`, clean(id)).Scan(&n); err != nil {
			return fmt.Errorf("fleet: kill sent to %s, not confirmed: %w", gw, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("fleet: kill sent to %s, but the session is still listed after %v", gw, killWait)
		case <-t.C:
		}
	}
}

// querier is what listing and killing need: a pool or a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Sessions returns the fleet's live sessions, oldest first.
func (m *Member) Sessions(ctx context.Context) ([]Session, error) {
	return listSessions(ctx, m.pool)
}

func listSessions(ctx context.Context, q querier) ([]Session, error) {
	rows, err := q.Query(ctx, `SELECT s.id, s.gateway, s.user_name, s.client, s.target, s.start
		FROM fleet_sessions s JOIN fleet_nodes n ON n.name = s.gateway
		WHERE n.lease_until >= now() ORDER BY s.start, s.id`)
	if err != nil {
		return nil, fmt.Errorf("fleet: sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) {
		var s Session
		err := r.Scan(&s.ID, &s.Gateway, &s.User, &s.Client, &s.Target, &s.Start)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: sessions: %w", err)
	}
	return out, nil
}

// Holder returns the name of the live node that lists live session id, or
// "" when none does.
func (m *Member) Holder(ctx context.Context, id string) (string, error) {
	var gw string
	err := m.pool.QueryRow(ctx, `SELECT s.gateway FROM fleet_sessions s JOIN fleet_nodes n ON n.name = s.gateway
		WHERE s.id = $1 AND n.lease_until >= now()`, clean(id)).Scan(&gw)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("fleet: holder of %s: %w", id, err)
	}
	return gw, nil
}

// undefinedTable is PostgreSQL's SQLSTATE undefined_table (Appendix A,
// PostgreSQL Error Codes).
const undefinedTable = "42P01"

// List returns the live sessions of the fleet whose store is at dsn, for
// a command that is not a node (`sluice sessions --live`).
func List(ctx context.Context, dsn string) ([]Session, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	defer c.Close(context.Background())
	list, err := listSessions(ctx, c)
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == undefinedTable {
		return nil, errors.New("fleet: no fleet registry in the store: has a gateway with gateway.fleet run on it?")
	}
	return list, err
}

// Leave drops the node's sessions and its claim on the name, so that the
// name is free at once, and closes the connections. Call it after the
// node's sessions have ended and Run has returned.
func (m *Member) Leave(ctx context.Context) error {
	defer m.pool.Close()
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM fleet_sessions WHERE gateway = $1`, m.node.Name); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM fleet_nodes WHERE name = $1 AND token = $2`, m.node.Name, m.token)
		return err
	})
	if err != nil {
		return fmt.Errorf("fleet: leaving: %w", err)
	}
	return nil
}

// clean is s as a PostgreSQL text value: valid UTF-8 without NUL.
func clean(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
