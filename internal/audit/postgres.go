package audit

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresDialect: $n parameters; session_id is COLLATE "C" so ordering and
// prefix tests are bytewise, as in SQLite.
var postgresDialect = dialect{
	param: func(n int) string { return "$" + strconv.Itoa(n) },
	hasPrefix: func(col, p string) string {
		return "starts_with(" + col + ", " + p + "::text)"
	},
}

// postgresMigrations: postgresMigrations[i] brings the schema to version i+1.
// data is json, not jsonb: json keeps the text as written and accepts the
// \u0000 escape that jsonb refuses.
var postgresMigrations = [][]string{
	{
		`CREATE TABLE events (
			id         BIGSERIAL PRIMARY KEY,
			time_ns    BIGINT NOT NULL,
			type       TEXT NOT NULL,
			session_id TEXT COLLATE "C" NOT NULL,
			user_name  TEXT NOT NULL,
			verdict    TEXT NOT NULL,
			data       JSON NOT NULL
		)`,
		`CREATE INDEX events_time ON events (time_ns)`,
		`CREATE INDEX events_session ON events (session_id text_pattern_ops, time_ns)`,
		`CREATE INDEX events_user ON events (user_name, time_ns)`,
		`CREATE INDEX events_type ON events (type, time_ns)`,
	},
}

// postgresMigrationLock is the pg_advisory_xact_lock key that serialises
// concurrent migrations (two gateways starting at once): "sluice" in ASCII.
const postgresMigrationLock = 0x736c75696365

type postgresStore struct {
	pool *pgxpool.Pool

	mu     sync.RWMutex
	closed bool
}

var _ Store = (*postgresStore)(nil)
var _ BatchWriter = (*postgresStore)(nil)
var _ Prober = (*postgresStore)(nil)

// OpenPostgres connects a pool to the PostgreSQL database named by dsn (a
// postgres:// URL; runtime parameters such as search_path may be given as
// query parameters) and applies pending migrations.
func OpenPostgres(ctx context.Context, dsn string) (Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: postgres: %w", err)
	}
	if err := migratePostgres(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("audit: postgres: %w", err)
	}
	return &postgresStore{pool: pool}, nil
}

func migratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(postgresMigrationLock)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if v > len(postgresMigrations) {
			return fmt.Errorf("migrate: schema version %d is newer than this sluice knows (%d)", v, len(postgresMigrations))
		}
		if v == len(postgresMigrations) {
			return nil
		}
		for i := v; i < len(postgresMigrations); i++ {
			for _, stmt := range postgresMigrations[i] {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("migrate: version %d: %w", i+1, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, len(postgresMigrations)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	})
}

func (s *postgresStore) Write(ctx context.Context, e Event) error {
	return s.WriteBatch(ctx, []Event{e})
}

// WriteBatch inserts events in one transaction, pipelined in one round trip.
func (s *postgresStore) WriteBatch(ctx context.Context, events []Event) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	var b pgx.Batch
	ins := postgresDialect.insertEvent()
	for _, e := range events {
		r, err := toRow(e)
		if err != nil {
			return err
		}
		b.Queue(ins, r.args()...)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("audit: postgres write: %w", err)
	}
	return nil
}

func (s *postgresStore) Query(ctx context.Context, f Filter) ([]Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	q, args := postgresDialect.selectEvents(f)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: postgres query: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("audit: postgres query: %w", err)
		}
		e, err := fromJSON(data)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: postgres query: %w", err)
	}
	return out, nil
}

func (s *postgresStore) Sessions(ctx context.Context, f SessionFilter) ([]SessionSummary, error) {
	return summarise(ctx, s.Query, f)
}

// Probe checks that the server answers (a ping on a pooled connection).
func (s *postgresStore) Probe(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("audit: postgres probe: %w", err)
	}
	return nil
}

func (s *postgresStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.pool.Close()
	return nil
}
