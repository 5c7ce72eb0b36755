#!/usr/bin/env bash
# A private PostgreSQL for the tests: its own data directory and a unix socket in DIR, no TCP port,
# trust auth, a database `sandboxer_test`.
#   scripts/pg-test-server.sh start DIR   initdb + start; prints the store URL on stdout
#   scripts/pg-test-server.sh stop DIR    stops it (immediate) and removes DIR
#   scripts/pg-test-server.sh down DIR    stops it as a crash would (immediate), keeping DIR
#   scripts/pg-test-server.sh up DIR      starts it again after `down`
# PG_DURABLE=1 at start keeps fsync and synchronous_commit on (a 201/202 survives a crash); the
# default turns them off for speed.
# Uses Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run
# as root, so as root the server runs as the `postgres` system user (DIR is chown'ed to it).
set -euo pipefail

usage() { echo "usage: $0 start|stop|down|up DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "$0: PostgreSQL is not installed; apt-get install postgresql (make test does)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_server() {
  as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 -o "$(cat "$1/opts")" start >/dev/null || {
    echo "$0: the server did not start:" >&2; tail -n 20 "$1/server.log" >&2; exit 1; }
}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ ${#dir} -gt 90 ]; then
    echo "$0: $dir is too long for a unix socket path; use a shorter directory (e.g. mktemp -d /tmp/pg.XXXXXX)" >&2
    exit 1
  fi
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    echo "$0: initdb failed:" >&2; cat "$dir/initdb.log" >&2; exit 1; }
  opts="-c listen_addresses='' -k $dir -p 5432 -c max_connections=400"
  if [ "${PG_DURABLE:-0}" != 1 ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  echo "$opts" >"$dir/opts"
  start_server "$dir"
  as_owner "$bin/createdb" -h "$dir" -p 5432 -U postgres sandboxer_test
  echo "postgres:///sandboxer_test?host=$dir&user=postgres"
  ;;
stop)
  [ -d "$dir" ] || exit 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
down)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  ;;
up)
  start_server "$dir"
  ;;
*) usage ;;
esac
