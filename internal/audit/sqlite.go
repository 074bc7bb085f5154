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
	w *sql.DB // the one writer connection
	r *sql.DB // read-only connections for queries

	mu     sync.RWMutex
	closed bool
}

var _ Store = (*sqliteStore)(nil)
var _ BatchWriter = (*sqliteStore)(nil)

// OpenSQLite opens (creating if needed) the SQLite audit database at path:
// WAL journal, synchronous=FULL (a committed batch survives power loss),
// a busy timeout, and a single writer connection whose transactions take
// the write lock up front (BEGIN IMMEDIATE), so writers never deadlock on a
// lock upgrade. Reads use separate query-only connections, which WAL lets
// run alongside the writer.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("audit: sqlite path %q must not contain '?' or '#'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: sqlite: %w", err)
	}
	// SQLite creates the database 0644 less the umask, and its -wal and
	// -shm files with the mode of the database: create the database 0600
	// first (an empty file is an empty database) and tighten files an
	// older version left open.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: sqlite: %w", err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := private(p); err != nil {
			return nil, fmt.Errorf("audit: sqlite: %w", err)
		}
	}
	common := "_pragma=busy_timeout(" + strconv.Itoa(sqliteBusyTimeoutMS) + ")"
	w, err := sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("audit: sqlite open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrateSQL(ctx, w, sqliteMigrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("audit: sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("audit: sqlite open: %w", err)
	}
	r.SetMaxOpenConns(4)
	return &sqliteStore{w: w, r: r}, nil
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

// WriteBatch inserts events in one transaction.
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
	stmt, err := tx.PrepareContext(ctx, sqliteDialect.insertEvent())
	if err != nil {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		r, err := toRow(e)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, r.args()...); err != nil {
			return fmt.Errorf("audit: sqlite write: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: sqlite write: %w", err)
	}
	return nil
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

func (s *sqliteStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
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
