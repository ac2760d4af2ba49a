#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the catalog tests and prints, for `eval`:
#   export TASKLOG_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   export TASKLOG_TEST_POSTGRES_DATA=/tmp/tasklog-pg.XXXXXX
# Usage in .ci/run:  eval "$(.ci/postgres.sh)"   and at the end:  .ci/postgres.sh stop
#
# Best effort: when TASKLOG_TEST_POSTGRES_URL is already set, or anything fails (no apt, no
# network, not root), it prints nothing and exits 0, and the tests fall back to in-process PGlite.
# Only the export lines go to stdout; everything else goes to stderr.
set -uo pipefail

log() { echo "postgres.sh: $*" >&2; }

# Runs a command as the `postgres` user when we are root (initdb and postgres refuse root).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

find_bin() {
  local dir
  # Newest installed major version first.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  return 1
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

stop() {
  local bin data="${TASKLOG_TEST_POSTGRES_DATA:-}"
  [ -n "$data" ] && [ -d "$data" ] || return 0
  bin="$(find_bin)" || return 0
  as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >&2 || true
  rm -rf "$data"
}

start() {
  if [ -n "${TASKLOG_TEST_POSTGRES_URL:-}" ]; then
    log "TASKLOG_TEST_POSTGRES_URL is already set; nothing to start"
    return 0
  fi

  local bin
  if ! bin="$(find_bin)"; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
      log "pg_ctl not found and cannot install it (needs root and apt-get)"
      return 1
    fi
    log "installing Debian's postgresql"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 ||
      return 1
    bin="$(find_bin)" || return 1
  fi
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    log "running as root but there is no postgres user to run the server as"
    return 1
  fi

  local data port
  data="$(mktemp -d /tmp/tasklog-pg.XXXXXX)" || return 1
  [ "$(id -u)" -eq 0 ] && chown postgres "$data"
  # trust: the server listens on loopback only and lives as long as the CI run.
  # C.UTF-8: UTF-8 text; the tests create their databases with their own collation.
  if ! as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >&2; then
    rm -rf "$data"
    return 1
  fi
  port="$(free_port)" || return 1
  # -F: no fsync; a test database need not survive a power loss.
  if ! as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-k /tmp -p $port -h 127.0.0.1 -F" start >&2; then
    cat "$data/server.log" >&2 2>/dev/null
    rm -rf "$data"
    return 1
  fi
  if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
    as_postgres "$bin/pg_ctl" -D "$data" -m immediate stop >&2
    rm -rf "$data"
    return 1
  fi
  echo "export TASKLOG_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
  echo "export TASKLOG_TEST_POSTGRES_DATA=$data"
}

case "${1:-start}" in
  start) start || log "no PostgreSQL started; the tests will use PGlite" ;;
  stop) stop ;;
  *) log "usage: $0 [start|stop]" ;;
esac
exit 0
