#!/usr/bin/env bash
# Test peer plug-in: PostgreSQL 15 on 127.0.0.1:54320 (superuser `postgres`, SCRAM password).
# Used by guacr-store (PostgreSQL backend) and the `postgresql` database console.
# Called by scripts/test-peers.sh with install|start|stop|status.
set -euo pipefail
exec </dev/null
STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
PORT=${GUACR_TEST_PG_PORT:-54320}
HOST=127.0.0.1
PASS=guacr-pg-pass
# Outside $STATE: that directory is root-only (mode 700) and the server runs as `postgres`.
DIR=${GUACR_PG_DIR:-/var/tmp/guacr-postgres}
DATA=$DIR/data
LOG=$DIR/server.log
log() { printf 'peers/postgres: %s\n' "$*" >&2; }

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [[ -n $d ]] || { log "PostgreSQL server binaries missing"; return 1; }
    echo "$d"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }

cmd_install() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        log "installing postgresql"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends postgresql postgresql-client
    fi
}

cmd_start() {
    local bin
    bin=$(bindir)
    mkdir -p "$DIR"
    chown postgres: "$DIR"
    chmod 700 "$DIR"
    if [[ ! -s $DATA/PG_VERSION ]]; then
        local pw
        pw=$(mktemp "$DIR/pw.XXXXXX")
        printf '%s\n' "$PASS" >"$pw"
        chown postgres: "$pw"
        runuser -u postgres -- "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 --pwfile="$pw" >"$DIR/initdb.log" 2>&1 ||
            { cat "$DIR/initdb.log" >&2; rm -f "$pw"; return 1; }
        rm -f "$pw"
    fi
    if ! port_open; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 30 \
            -o "-c listen_addresses=$HOST -c port=$PORT -c unix_socket_directories=$DIR -c max_connections=300 -c fsync=off" \
            start >/dev/null
    fi
    port_open || { log "not listening on $HOST:$PORT"; tail -n 20 "$LOG" >&2; return 1; }
    log "up on $HOST:$PORT"
    mkdir -p "$STATE/env.d"
    {
        printf 'export GUACR_TEST_PG_HOST=%q\n' "$HOST"
        printf 'export GUACR_TEST_PG_PORT=%q\n' "$PORT"
        printf 'export GUACR_TEST_PG_USER=postgres\n'
        printf 'export GUACR_TEST_PG_PASSWORD=%q\n' "$PASS"
        printf 'export GUACR_TEST_PG_URL=%q\n' "postgres://postgres:$PASS@$HOST:$PORT/postgres"
    } >"$STATE/env.d/postgres"
}

cmd_stop() {
    local bin
    bin=$(bindir) || return 0
    if [[ -s $DATA/postmaster.pid ]]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
        log "stopped"
    fi
}

cmd_status() {
    if port_open; then echo "postgres: running on $HOST:$PORT"; else echo "postgres: not running"; return 1; fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
