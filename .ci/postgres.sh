#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests: a new data directory
# under /tmp, loopback only, a free port, trust authentication, no fsync
# (the cluster is thrown away; a killed *router* still loses nothing, as
# PostgreSQL itself is not killed). Prints two lines to eval:
#   export SWITCHBOARD_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/postgres
#   export SWITCHBOARD_TEST_POSTGRES_DIR=DIR   (stop with .ci/postgres.sh stop DIR)
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
  echo "postgresql is not installed (apt-get install postgresql)" >&2
  exit 1
fi
# initdb refuses to run as root: run it as the postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  as_owner "$bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null
  rm -rf "$2"
  exit 0
fi

dir=$(mktemp -d /tmp/switchboard-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >"$dir/initdb.log"
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off -c shared_buffers=64MB" \
  start >/dev/null
echo "export SWITCHBOARD_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
echo "export SWITCHBOARD_TEST_POSTGRES_DIR=$dir"
