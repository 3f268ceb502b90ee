#!/usr/bin/env bash
# Make sure the services the Celery tests use are up on this machine: PostgreSQL on 127.0.0.1:5432
# (the Airflow metadata DB and Celery result backend) and Redis on 127.0.0.1:6379 (the Celery broker).
# Idempotent: whatever already answers is left alone; whatever is down is started, then waited for.
# It never creates databases or flushes anything: each test session makes (and drops) its own database
# and uses its own Redis key prefix (tools/stacks/celery_stack.py).
#
#   bash scripts/services.sh          # from .ci/run, before pytest; tests/celery also calls it
#
# Expects a Debian machine with the packages postgresql (one cluster "main", trust auth on 127.0.0.1
# for the role postgres) and redis-server installed, as on the CI machine. Run it as root (or as a user
# allowed to start both).
set -euo pipefail

# The defaults are the CI machine's; the overrides exist to try this script on a spare cluster/port.
PG_HOST=127.0.0.1
PG_PORT=${SERVICES_PG_PORT:-5432}
PG_CLUSTER=${SERVICES_PG_CLUSTER:-main}
REDIS_HOST=127.0.0.1
REDIS_PORT=${SERVICES_REDIS_PORT:-6379}
WAIT_SECONDS=${SERVICES_WAIT_SECONDS:-60}

say() { echo "services: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: install the Debian package $2 (apt-get install -y $2)"
}

wait_for() { # wait_for NAME COMMAND...: retry COMMAND until it succeeds or WAIT_SECONDS pass
  local name=$1; shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$name did not come up within ${WAIT_SECONDS}s"
    sleep 0.5
  done
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
redis_up() { [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

# -- PostgreSQL -------------------------------------------------------------------------------------
need pg_isready postgresql-client
if pg_up; then
  say "PostgreSQL is up on $PG_HOST:$PG_PORT"
else
  need pg_ctlcluster postgresql-common
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$version" ]] || die "no PostgreSQL cluster under /etc/postgresql (install the package postgresql)"
  # A fresh container may lack the socket dir (it lives on a tmpfs on most systems).
  install -d -m 2775 -o postgres -g postgres /var/run/postgresql 2>/dev/null || true
  say "starting PostgreSQL $version/$PG_CLUSTER"
  pg_ctlcluster --skip-systemctl-redirect "$version" "$PG_CLUSTER" start || pg_up \
    || die "pg_ctlcluster could not start $version/$PG_CLUSTER (see /var/log/postgresql/)"
  wait_for PostgreSQL pg_up
  say "PostgreSQL is up on $PG_HOST:$PG_PORT"
fi
psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc "select 1" >/dev/null \
  || die "PostgreSQL answers but the role postgres cannot log in over TCP without a password (trust auth)"

# -- Redis ------------------------------------------------------------------------------------------
need redis-cli redis-tools
if redis_up; then
  say "Redis is up on $REDIS_HOST:$REDIS_PORT"
else
  need redis-server redis-server
  mkdir -p /var/lib/redis /var/log/redis
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log \
    || die "redis-server did not start (see /var/log/redis/ci.log)"
  wait_for Redis redis_up
  say "Redis is up on $REDIS_HOST:$REDIS_PORT"
fi
