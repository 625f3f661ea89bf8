#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the cloud's test suite and benchmark, and prints
# its URL. Installs PostgreSQL from the Debian packages when it is missing. Root only (it runs
# the server as the `postgres` user). Usage: eval "$(scripts/pg-up.sh)"  -> exports TILLMESH_PG_URL
# Stop it with: scripts/pg-up.sh stop
set -euo pipefail
DIR="${TILLMESH_PG_DIR:-/tmp/tillmesh-pg}"
PORT="${TILLMESH_PG_PORT:-55432}"

bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$d" ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    d="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  fi
  echo "$d"
}
BIN="$(bindir)"

if [ "${1:-}" = stop ]; then
  su postgres -c "$BIN/pg_ctl -D $DIR/data -m fast stop" >&2 || true
  exit 0
fi

if ! su postgres -c "$BIN/pg_ctl -D $DIR/data status" >/dev/null 2>&1; then
  rm -rf "$DIR" && mkdir -p "$DIR" && chown postgres: "$DIR"
  su postgres -c "$BIN/initdb -D $DIR/data -U postgres --auth=trust -E UTF8 --no-sync" >&2
  # The suite creates one database per test; the benchmark wants a durable (fsync) server,
  # which is PostgreSQL's default and is kept here.
  su postgres -c "$BIN/pg_ctl -D $DIR/data -l $DIR/log -w -o '-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200' start" >&2
fi
echo "export TILLMESH_PG_URL=postgres://postgres@127.0.0.1:$PORT/postgres"
