package pgtest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DSN returns the test PostgreSQL's DSN, SLUICE_PG_DSN. Without it the
// test fails under SLUICE_INTEROP=require and is skipped otherwise.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("SLUICE_PG_DSN")
	if dsn != "" {
		return dsn
	}
	msg := "SLUICE_PG_DSN is not set: eval \"$(scripts/pg-test-env.sh)\" (as root)"
	if os.Getenv("SLUICE_INTEROP") == "require" {
		t.Fatalf("SLUICE_INTEROP=require: %s", msg)
	}
	t.Skip(msg)
	return ""
}

// Schema returns a DSN of the test PostgreSQL (see DSN) whose search_path
// is a schema made for t and dropped at cleanup.
func Schema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	schema := "sluice_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect for cleanup: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse SLUICE_PG_DSN: %v", err)
	}
	v := u.Query()
	v.Set("search_path", schema)
	u.RawQuery = v.Encode()
	return u.String()
}
