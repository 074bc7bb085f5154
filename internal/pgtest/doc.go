// Package pgtest gives tests a PostgreSQL database of their own: the test
// server that scripts/pg-test-env.sh starts and names in SLUICE_PG_DSN, a
// schema per test, dropped at cleanup. It imports nothing of Sluice's, so
// that every package's tests can use it, the audit store's included.
package pgtest
