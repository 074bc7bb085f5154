package audit

import (
	"context"
	"errors"
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
	{
		`CREATE TABLE chain_heads (
			gateway TEXT COLLATE "C" PRIMARY KEY,
			seq     BIGINT NOT NULL,
			hash    TEXT NOT NULL
		)`,
		`CREATE TABLE instances (
			gateway TEXT COLLATE "C" NOT NULL,
			service TEXT COLLATE "C" NOT NULL,
			next    BIGINT NOT NULL,
			PRIMARY KEY (gateway, service)
		)`,
	},
}

// postgresMigrationLock is the pg_advisory_xact_lock key that serialises
// concurrent migrations (two gateways starting at once): "sluice" in ASCII.
const postgresMigrationLock = 0x736c75696365

type postgresStore struct {
	gateway string // whose chain and instances this store writes
	pool    *pgxpool.Pool

	mu     sync.RWMutex
	closed bool
}

var _ Store = (*postgresStore)(nil)
var _ BatchWriter = (*postgresStore)(nil)
var _ Prober = (*postgresStore)(nil)

// OpenPostgres connects a pool to the PostgreSQL database named by dsn (a
// postgres:// URL; runtime parameters such as search_path may be given as
// query parameters) and applies pending migrations.
func OpenPostgres(ctx context.Context, dsn, gateway string) (Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: postgres: %w", err)
	}
	if err := migratePostgres(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("audit: postgres: %w", err)
	}
	return &postgresStore{gateway: gateway, pool: pool}, nil
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

// WriteBatch inserts events in one transaction, each linked to the chain
// of the store's gateway: one round trip locks and reads the chain head,
// one more sends the inserts and the new head pipelined.
func (s *postgresStore) WriteBatch(ctx context.Context, events []Event) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		if err := s.queueChained(ctx, tx, &b, events); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("audit: postgres write: %w", err)
	}
	return nil
}

// queueChained locks the chain head of the store's gateway in tx (so that
// two processes of one gateway name cannot fork the chain) and queues on b
// the inserts of events linked after it and the update of the head.
func (s *postgresStore) queueChained(ctx context.Context, tx pgx.Tx, b *pgx.Batch, events []Event) error {
	var (
		seq  int64
		hash string
	)
	const lock = `SELECT seq, hash FROM chain_heads WHERE gateway = $1 FOR UPDATE`
	err := tx.QueryRow(ctx, lock, s.gateway).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err = tx.Exec(ctx, `INSERT INTO chain_heads (gateway, seq, hash) VALUES ($1, 0, '') ON CONFLICT DO NOTHING`, s.gateway); err == nil {
			err = tx.QueryRow(ctx, lock, s.gateway).Scan(&seq, &hash)
		}
	}
	if err != nil {
		return err
	}
	head, err := headOf(uint64(seq), hash)
	if err != nil {
		return err
	}
	ins := postgresDialect.insertEvent()
	for _, e := range events {
		var data []byte
		if data, head, err = link(head, s.gateway, &e); err != nil {
			return err
		}
		b.Queue(ins, rowOf(e, data).args()...)
	}
	b.Queue(`UPDATE chain_heads SET seq = $2, hash = $3 WHERE gateway = $1`, s.gateway, int64(head.seq), head.hex())
	return nil
}

// ReserveInstances implements InstanceReserver.
func (s *postgresStore) ReserveInstances(ctx context.Context, service string, n uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if n == 0 || n > maxReserve {
		return 0, fmt.Errorf("audit: reserve %d instances: want 1..%d", n, maxReserve)
	}
	var first uint64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		const lock = `SELECT next FROM instances WHERE gateway = $1 AND service = $2 FOR UPDATE`
		var next int64
		err := tx.QueryRow(ctx, lock, s.gateway, service).Scan(&next)
		if errors.Is(err, pgx.ErrNoRows) {
			if next, err = s.legacyNext(ctx, tx, service); err != nil {
				return err
			}
			if _, err = tx.Exec(ctx, `INSERT INTO instances (gateway, service, next) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, s.gateway, service, next); err == nil {
				err = tx.QueryRow(ctx, lock, s.gateway, service).Scan(&next)
			}
		}
		if err != nil {
			return err
		}
		first = uint64(max(next, 1))
		if first > maxInstance-n {
			return fmt.Errorf("counter of %s/%s exhausted", s.gateway, service)
		}
		var b pgx.Batch
		b.Queue(`UPDATE instances SET next = $3 WHERE gateway = $1 AND service = $2`, s.gateway, service, int64(first+n))
		if err := s.queueChained(ctx, tx, &b, []Event{reservation(s.gateway, service, first, n)}); err != nil {
			return err
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("audit: postgres reserve: %w", err)
	}
	return first, nil
}

// legacyNext is the instance after the highest one the events of
// GATEWAY/SERVICE use, for a store written before the instances table.
func (s *postgresStore) legacyNext(ctx context.Context, tx pgx.Tx, service string) (int64, error) {
	prefix := s.gateway + "/" + service + ":"
	rows, err := tx.Query(ctx, `SELECT DISTINCT session_id FROM events WHERE `+postgresDialect.hasPrefix("session_id", "$1"), indexKey(prefix))
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

var _ rawStore = (*postgresStore)(nil)

func (s *postgresStore) scanRaw(ctx context.Context, fn func(rawEvent) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	rows, err := s.pool.Query(ctx, selectRaw)
	if err != nil {
		return fmt.Errorf("audit: postgres verify: %w", err)
	}
	defer rows.Close()
	return scanRawRows(rows, "postgres", fn)
}

func (s *postgresStore) storedHeads(ctx context.Context) (map[string]chainHead, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT gateway, seq, hash FROM chain_heads`)
	if err != nil {
		return nil, fmt.Errorf("audit: postgres verify: %w", err)
	}
	defer rows.Close()
	return scanHeads(rows)
}
