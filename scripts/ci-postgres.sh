#!/usr/bin/env bash
# Start a throw-away PostgreSQL on 127.0.0.1:54329 for the registry tests and write .hms-ci/postgres.env
# (HMS_TEST_POSTGRES_URL). Used by .ci/run and `make test-postgres`; a session's servers do not outlive it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
data=${HMS_PG_DATA:-/tmp/hms-ci-postgres}
port=54329
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  rm -rf "$data"; mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
fi
for db in hms_test; do
  as_pg "$bin/psql" -h 127.0.0.1 -p $port -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
    || as_pg "$bin/psql" -h 127.0.0.1 -p $port -U postgres -qc "CREATE DATABASE $db"
done
mkdir -p .hms-ci
echo "HMS_TEST_POSTGRES_URL=postgresql+psycopg2://postgres@127.0.0.1:$port/hms_test" > .hms-ci/postgres.env
echo "[ci] PostgreSQL ready on 127.0.0.1:$port"
