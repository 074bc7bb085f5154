#!/usr/bin/env bash
# Starts the Debian PostgreSQL cluster on 127.0.0.1:5432 for the audit store's
# test suite, creates the role and database "sluice" (idempotently) and prints
#
#   export SLUICE_PG_DSN=postgres://sluice:PASSWORD@127.0.0.1:5432/sluice?sslmode=disable
#
# on stdout, so callers can `eval "$(scripts/pg-test-env.sh)"`. Diagnostics go
# to stderr. Must run as root (it uses pg_ctlcluster and runuser).
# SLUICE_PG_PASSWORD overrides the test password.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "pg-test-env: must run as root" >&2
  exit 1
fi
if [ ! -d /etc/postgresql ]; then
  echo "pg-test-env: /etc/postgresql missing; install postgresql (scripts/install-test-deps.sh)" >&2
  exit 1
fi

# The newest installed major version.
ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
if [ -z "$ver" ]; then
  ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$ver" ]; then
  echo "pg-test-env: no PostgreSQL version found" >&2
  exit 1
fi
if [ ! -d "/etc/postgresql/$ver/main" ]; then
  pg_createcluster "$ver" main --port=5432 >&2
fi

status=$(pg_lsclusters --no-header | awk -v v="$ver" '$1 == v && $2 == "main" {print $4}')
if [ "$status" != "online" ]; then
  pg_ctlcluster "$ver" main start >&2
fi

port=$(pg_lsclusters --no-header | awk -v v="$ver" '$1 == v && $2 == "main" {print $3}')
password=${SLUICE_PG_PASSWORD:-sluice-test}

psql_pg() {
  runuser -u postgres -- psql --port="$port" -v ON_ERROR_STOP=1 -qAt "$@"
}

# Wait for the server to accept connections (pg_ctlcluster returns once the
# postmaster is up, but be tolerant of slow starts).
for _ in $(seq 1 30); do
  if psql_pg -c 'SELECT 1' >/dev/null 2>&1; then
    break
  fi
  sleep 1
done

if [ "$(psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname = 'sluice'")" != "1" ]; then
  psql_pg -c "CREATE ROLE sluice LOGIN PASSWORD '$password'" >&2
else
  psql_pg -c "ALTER ROLE sluice LOGIN PASSWORD '$password'" >&2
fi
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = 'sluice'")" != "1" ]; then
  psql_pg -c "CREATE DATABASE sluice OWNER sluice" >&2
fi

echo "export SLUICE_PG_DSN='postgres://sluice:${password}@127.0.0.1:${port}/sluice?sslmode=disable'"
