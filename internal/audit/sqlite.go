package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// sqliteDialect: numbered ?NNN parameters (https://sqlite.org/lang_expr.html#varparam);
// substr and length count characters alike.
var sqliteDialect = dialect{
	param: func(n int) string { return "?" + strconv.Itoa(n) },
	hasPrefix: func(col, p string) string {
		return "substr(" + col + ", 1, length(" + p + ")) = " + p
	},
}

// SQLite busy timeout: how long a writer waits for another process's lock
// (e.g. `sluice audit` reading during a checkpoint) before SQLITE_BUSY.
const sqliteBusyTimeoutMS = 5000

type sqliteStore struct {
	path    string
	gateway string // whose chain and instances this store writes

	// floor keeps, per service, the instance after the last one reserved:
	// a database opened anew by Probe (the file was deleted) has no
	// counter, and ids must not repeat.
	floorMu sync.Mutex
	floor   map[string]uint64

	// mu guards the fields below; Probe replaces them (write lock) when
	// the file was deleted or replaced.
	mu     sync.RWMutex
	opened os.FileInfo // the file w opened; nil after a failed reopen
	w      *sql.DB     // the one writer connection
	r      *sql.DB     // read-only connections for queries
	closed bool
}

var _ Store = (*sqliteStore)(nil)
var _ BatchWriter = (*sqliteStore)(nil)
var _ Prober = (*sqliteStore)(nil)

// OpenSQLite opens (creating if needed) the SQLite audit database at path:
// WAL journal, synchronous=FULL (a committed batch survives power loss),
// a busy timeout, and a single writer connection whose transactions take
// the write lock up front (BEGIN IMMEDIATE), so writers never deadlock on a
// lock upgrade. Reads use separate query-only connections, which WAL lets
// run alongside the writer.
func OpenSQLite(ctx context.Context, path, gateway string) (Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("audit: sqlite path %q must not contain '?' or '#'", path)
	}
	w, r, fi, err := openSQLiteDBs(ctx, path)
	if err != nil {
		return nil, err
	}
	return &sqliteStore{path: path, gateway: gateway, opened: fi, w: w, r: r}, nil
}

// openSQLiteDBs opens the writer and reader pools of the database at path
// and returns the file they opened, as it was then.
func openSQLiteDBs(ctx context.Context, path string) (w, r *sql.DB, opened os.FileInfo, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("audit: sqlite: %w", err)
	}
	// SQLite creates the database 0644 less the umask, and its -wal and
	// -shm files with the mode of the database: create the database 0600
	// first (an empty file is an empty database) and tighten files an
	// older version left open.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: sqlite: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := private(p); err != nil {
			return nil, nil, nil, fmt.Errorf("audit: sqlite: %w", err)
		}
	}
	common := "_pragma=busy_timeout(" + strconv.Itoa(sqliteBusyTimeoutMS) + ")"
	w, err = sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("audit: sqlite open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrateSQL(ctx, w, sqliteMigrations); err != nil {
		w.Close()
		return nil, nil, nil, fmt.Errorf("audit: sqlite %s: %w", path, err)
	}
	if opened, err = os.Stat(path); err != nil {
		w.Close()
		return nil, nil, nil, fmt.Errorf("audit: sqlite: %w", err)
	}
	r, err = sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, nil, nil, fmt.Errorf("audit: sqlite open: %w", err)
	}
	r.SetMaxOpenConns(4)
	return w, r, opened, nil
}

// sqliteMigrations: migrations[i] brings the schema to version i+1.
var sqliteMigrations = [][]string{
	{
		`CREATE TABLE events (
			id         INTEGER PRIMARY KEY AUTOINCREMENT,
			time_ns    INTEGER NOT NULL,
			type       TEXT NOT NULL,
			session_id TEXT NOT NULL,
			user_name  TEXT NOT NULL,
			verdict    TEXT NOT NULL,
			data       TEXT NOT NULL
		)`,
		`CREATE INDEX events_time ON events (time_ns)`,
		`CREATE INDEX events_session ON events (session_id, time_ns)`,
		`CREATE INDEX events_user ON events (user_name, time_ns)`,
		`CREATE INDEX events_type ON events (type, time_ns)`,
	},
	{
		`CREATE TABLE chain_heads (
			gateway TEXT PRIMARY KEY,
			seq     INTEGER NOT NULL,
			hash    TEXT NOT NULL
		)`,
		`CREATE TABLE instances (
			gateway TEXT NOT NULL,
			service TEXT NOT NULL,
			next    INTEGER NOT NULL,
			PRIMARY KEY (gateway, service)
		)`,
	},
}

// migrateSQL applies the pending migrations in one transaction, recording
// the reached version in schema_version.
func migrateSQL(ctx context.Context, db *sql.DB, migrations [][]string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: schema version %d is newer than this sluice knows (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		for _, stmt := range migrations[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate: version %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (`+strconv.Itoa(len(migrations))+`)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func (s *sqliteStore) Write(ctx context.Context, e Event) error {
	return s.WriteBatch(ctx, []Event{e})
}

// WriteBatch inserts events in one transaction, each linked to the chain
// of the store's gateway.
func (s *sqliteStore) WriteBatch(ctx context.Context, events []Event) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	defer tx.Rollback()
	if err := s.insertChained(ctx, tx, events); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	return nil
}

// insertChained inserts events in tx after the chain head it reads there
// (the write lock is held since BEGIN IMMEDIATE) and stores the new head.
func (s *sqliteStore) insertChained(ctx context.Context, tx *sql.Tx, events []Event) error {
	var (
		seq  int64
		hash string
	)
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM chain_heads WHERE gateway = ?1`, s.gateway).Scan(&seq, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	head, err := headOf(uint64(seq), hash)
	if err != nil {
		return err
	}
	stmt, err := tx.PrepareContext(ctx, sqliteDialect.insertEvent())
	if err != nil {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		var data []byte
		if data, head, err = link(head, s.gateway, &e); err != nil {
			return err
		}
		r := rowOf(e, data)
		if _, err := stmt.ExecContext(ctx, r.args()...); err != nil {
			return fmt.Errorf("audit: sqlite write: %w", err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO chain_heads (gateway, seq, hash) VALUES (?1, ?2, ?3)
		ON CONFLICT (gateway) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`, s.gateway, int64(head.seq), head.hex())
	if err != nil {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	return nil
}

// ReserveInstances implements InstanceReserver.
func (s *sqliteStore) ReserveInstances(ctx context.Context, service string, n uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if n == 0 || n > maxReserve {
		return 0, fmt.Errorf("audit: reserve %d instances: want 1..%d", n, maxReserve)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("audit: sqlite reserve: %w", err)
	}
	defer tx.Rollback()
	var next int64
	err = tx.QueryRowContext(ctx, `SELECT next FROM instances WHERE gateway = ?1 AND service = ?2`, s.gateway, service).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		next, err = s.legacyNext(ctx, tx, service)
	}
	if err != nil {
		return 0, fmt.Errorf("audit: sqlite reserve: %w", err)
	}
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	first := max(uint64(max(next, 1)), s.floor[service])
	if first > maxInstance-n {
		return 0, fmt.Errorf("audit: reserve instances of %s/%s: counter exhausted", s.gateway, service)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO instances (gateway, service, next) VALUES (?1, ?2, ?3)
		ON CONFLICT (gateway, service) DO UPDATE SET next = excluded.next`, s.gateway, service, int64(first+n))
	if err != nil {
		return 0, fmt.Errorf("audit: sqlite reserve: %w", err)
	}
	if err := s.insertChained(ctx, tx, []Event{reservation(s.gateway, service, first, n)}); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("audit: sqlite reserve: %w", err)
	}
	if s.floor == nil {
		s.floor = map[string]uint64{}
	}
	s.floor[service] = first + n
	return first, nil
}

// legacyNext is the instance after the highest one the events of
// GATEWAY/SERVICE use, for a store written before the instances table.
func (s *sqliteStore) legacyNext(ctx context.Context, tx *sql.Tx, service string) (int64, error) {
	prefix := s.gateway + "/" + service + ":"
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT session_id FROM events WHERE `+sqliteDialect.hasPrefix("session_id", "?1"), indexKey(prefix))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var high uint64
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		high = max(high, instanceOf(id, prefix))
	}
	return int64(high) + 1, rows.Err()
}

func (s *sqliteStore) Query(ctx context.Context, f Filter) ([]Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	q, args := sqliteDialect.selectEvents(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: sqlite query: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("audit: sqlite query: %w", err)
		}
		e, err := fromJSON(data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: sqlite query: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) Sessions(ctx context.Context, f SessionFilter) ([]SessionSummary, error) {
	return summarise(ctx, s.Query, f)
}

// Probe checks that the database file is still the one at the store's
// path. When it was deleted or replaced, Probe closes the old connections
// (SQLite then checkpoints into the old file and removes its -wal and -shm,
// which must not be applied to a new database), opens a new database at
// the path and returns an error wrapping ErrStoreReplaced.
func (s *sqliteStore) Probe(ctx context.Context) error {
	s.mu.RLock()
	closed, opened := s.closed, s.opened
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if opened != nil {
		same, err := stillAt(s.path, opened)
		if err != nil || same {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.opened != nil {
		_ = s.r.Close() // the old file's connections: nothing to keep
		_ = s.w.Close()
		s.opened = nil
	}
	w, r, fi, err := openSQLiteDBs(ctx, s.path)
	if err != nil {
		return fmt.Errorf("%w: %s: reopening: %w", ErrStoreReplaced, s.path, err)
	}
	s.w, s.r, s.opened = w, r, fi
	return fmt.Errorf("%w: %s: opened a new database", ErrStoreReplaced, s.path)
}

func (s *sqliteStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if s.opened == nil {
		return nil // closed by a failed Probe
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// private makes the file at path (if any) readable and writable by its
// owner only, when it is not already.
func private(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return os.Chmod(path, st.Mode().Perm()&0o700)
}

var _ rawStore = (*sqliteStore)(nil)

func (s *sqliteStore) scanRaw(ctx context.Context, fn func(rawEvent) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, selectRaw)
	if err != nil {
		return fmt.Errorf("audit: sqlite verify: %w", err)
	}
	defer rows.Close()
	return scanRawRows(rows, "sqlite", fn)
}

func (s *sqliteStore) storedHeads(ctx context.Context) (map[string]chainHead, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT gateway, seq, hash FROM chain_heads`)
	if err != nil {
		return nil, fmt.Errorf("audit: sqlite verify: %w", err)
	}
	defer rows.Close()
	return scanHeads(rows)
}
