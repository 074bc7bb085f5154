package fleet

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/pgtest"

	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sluice-ssh/sluice/internal/mfa"
)

func totpKey(t *testing.T) *otp.Key {
	t.Helper()
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Sluice", AccountName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func totpCode(t *testing.T, key *otp.Key, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(key.Secret(), at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTOTPOnceAcrossFleet: two nodes checking one code at once accept it
// exactly once; an earlier step's code is then refused on either node; a
// node restarted with an empty memory still refuses the used code, and
// accepts the next step's.
func TestTOTPOnceAcrossFleet(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	key := totpKey(t)
	now := time.Unix(1_800_000_000, 0) // a fixed clock, mid-step
	clock := func() time.Time { return now }
	gw1, gw2 := join(t, dsn, "gw1", time.Minute), join(t, dsn, "gw2", time.Minute)
	nodes := []*mfa.Verifier{mfa.NewSharedVerifier(clock, gw1.Steps()), mfa.NewSharedVerifier(clock, gw2.Steps())}
	code := totpCode(t, key, now)
	for round := range 5 {
		user := "alice" + string(rune('a'+round)) // a new user each round: the insert races, then the update
		var accepted, reused atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 16 {
			wg.Go(func() {
				<-start
				switch err := nodes[i%2].Check(user, key, code); {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, mfa.ErrReused):
					reused.Add(1)
				default:
					t.Errorf("node %d: got %v, want nil or ErrReused", i%2+1, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if accepted.Load() != 1 || reused.Load() != 15 {
			t.Fatalf("%s: got %d accepted and %d refused as reused, want 1 and 15", user, accepted.Load(), reused.Load())
		}
	}
	prev := totpCode(t, key, now.Add(-30*time.Second))
	for i, v := range nodes {
		if err := v.Check("alicea", key, prev); !errors.Is(err, mfa.ErrReused) {
			t.Errorf("previous step's code on node %d: got %v, want ErrReused", i+1, err)
		}
	}
	// Raising an existing row races too: the next step's code, on both.
	now = now.Add(30 * time.Second)
	next := totpCode(t, key, now)
	var accepted atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if nodes[i%2].Check("alicea", key, next) == nil {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 1 {
		t.Fatalf("next step, racing: got %d accepted, want 1", accepted.Load())
	}
	// A restart: gw1 leaves and joins again, with a new Verifier.
	if err := gw1.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	gw1 = join(t, dsn, "gw1", time.Minute)
	restarted := mfa.NewSharedVerifier(clock, gw1.Steps())
	if err := restarted.Check("alicea", key, next); !errors.Is(err, mfa.ErrReused) {
		t.Errorf("used code after a restart: got %v, want ErrReused", err)
	}
	if err := restarted.Check("aliceb", key, code); !errors.Is(err, mfa.ErrReused) {
		t.Errorf("another user's used code after a restart: got %v, want ErrReused", err)
	}
	now = now.Add(30 * time.Second)
	if err := restarted.Check("alicea", key, totpCode(t, key, now)); err != nil {
		t.Errorf("the following step's code after a restart: got %v, want accepted", err)
	}
	for _, m := range []*Member{gw1, gw2} {
		if err := m.Leave(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A store that does not answer: the code is refused, not accepted.
	now = now.Add(30 * time.Second)
	err := nodes[1].Check("alicea", key, totpCode(t, key, now))
	if !errors.Is(err, mfa.ErrLedger) {
		t.Errorf("store closed: got %v, want ErrLedger", err)
	}
	t.Log(err)
}

// TestTOTPStepsForgotten: the row of a user whose last code expired more
// than stepsKept ago is deleted at a heartbeat; a recent one stays.
func TestTOTPStepsForgotten(t *testing.T) {
	dsn := pgtest.Schema(t)
	ctx := context.Background()
	m := join(t, dsn, "gw1", time.Minute)
	defer m.Leave(ctx)
	steps := m.Steps()
	now := time.Now()
	for user, at := range map[string]time.Time{"old": now.Add(-stepsKept - time.Minute), "recent": now} {
		if ok, err := steps.Accept(ctx, user, uint64(at.Unix()/30), at); !ok || err != nil {
			t.Fatalf("Accept %s: got %v, %v, want true, nil", user, ok, err)
		}
	}
	m.forgetSteps(ctx, Params{Logger: slog.New(slog.DiscardHandler)})
	rows, err := m.pool.Query(ctx, `SELECT user_name FROM fleet_totp_steps ORDER BY user_name`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "recent" {
		t.Errorf("rows left: got %q, want [recent]", left)
	}
}
