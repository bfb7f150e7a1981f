#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the storage tests and print the SQLAlchemy URL to use.
# Installs Debian's postgresql when missing. Idempotent: safe to run when the server is already up.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >&2
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 30); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done
runuser -u postgres -- psql -q -tc "SELECT 1 FROM pg_roles WHERE rolname='dse'" | grep -q 1 \
  || runuser -u postgres -- psql -q -c "CREATE ROLE dse LOGIN SUPERUSER PASSWORD 'dse'" >&2
runuser -u postgres -- psql -q -tc "SELECT 1 FROM pg_database WHERE datname='dse_test'" | grep -q 1 \
  || runuser -u postgres -- createdb -O dse dse_test >&2
echo "postgresql+psycopg2://dse:dse@127.0.0.1:5432/dse_test"
