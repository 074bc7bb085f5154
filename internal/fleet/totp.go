package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluice-ssh/sluice/internal/mfa"
)

// Steps is the fleet's memory of accepted TOTP codes, an mfa.Ledger: one
// row per user in fleet_totp_steps holding the time step of the last code
// accepted for it by any node. Being in the store, it outlives a restart.
type Steps struct {
	pool *pgxpool.Pool
}

var _ mfa.Ledger = (*Steps)(nil)

// Steps returns the member's ledger of accepted TOTP codes; it is usable
// until Leave.
func (m *Member) Steps() *Steps { return &Steps{pool: m.pool} }

// Accept records step for user unless a step as late or later is recorded.
// One statement decides: of two nodes inserting or raising the same user's
// row at once, PostgreSQL makes the second wait for the first and then
// re-checks the condition against the row the first wrote, so exactly
// one of two checks of one code sees a row returned.
func (s *Steps) Accept(ctx context.Context, user string, step uint64, expires time.Time) (bool, error) {
	if step > math.MaxInt64 {
		return false, fmt.Errorf("fleet: TOTP step %d out of range", step)
	}
	const accept = `INSERT INTO fleet_totp_steps (user_name, step, expires) VALUES ($1, $2, $3)
		ON CONFLICT (user_name) DO UPDATE SET step = EXCLUDED.step, expires = EXCLUDED.expires
		WHERE fleet_totp_steps.step < EXCLUDED.step
		RETURNING step`
	var got int64
	err := s.pool.QueryRow(ctx, accept, clean(user), int64(step), expires).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("fleet: recording a used TOTP code: %w", err)
	}
	return true, nil
}

// stepsKept is how long a user's row outlives the validity of its last
// code before it is deleted: a margin for nodes whose clocks run behind
// the database's (a node that is further behind could accept again a code
// older than the forgotten step, but it accepts stale codes anyway).
const stepsKept = time.Hour

// forgetSteps deletes the rows of users whose last accepted code expired
// more than stepsKept ago: every code a node would accept now is of a
// later step.
func (m *Member) forgetSteps(ctx context.Context, p Params) {
	_, err := m.pool.Exec(ctx, `DELETE FROM fleet_totp_steps WHERE expires < now() - make_interval(secs => $1)`, stepsKept.Seconds())
	if err != nil && ctx.Err() == nil {
		p.Logger.Error("fleet: forgetting expired TOTP steps failed", "err", err)
	}
}
