#!/usr/bin/env bash
# Test peer plug-in: MariaDB (10.11 on Debian 12) on 127.0.0.1:33306.
# Test user `guacr` with a password, database `guacr_test` (all privileges on it).
# Used by the `mysql` database console tests (crates/guacr/tests/db.rs).
# Called by scripts/test-peers.sh with install|start|stop|status.
set -euo pipefail
exec </dev/null
STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
PORT=${GUACR_TEST_MYSQL_PORT:-33306}
HOST=127.0.0.1
USER_NAME=guacr
PASS=guacr-my-pass
DB=guacr_test
# Outside $STATE: that directory is root-only (mode 700) and the server runs as `mysql`.
DIR=${GUACR_MARIADB_DIR:-/var/tmp/guacr-mariadb}
DATA=$DIR/data
SOCK=$DIR/mysqld.sock
LOG=$DIR/server.log
log() { printf 'peers/mariadb: %s\n' "$*" >&2; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }

cmd_install() {
    if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
        log "installing mariadb-server"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends mariadb-server mariadb-client
        # The package starts the system service; this peer runs its own server.
        systemctl disable --now mariadb >/dev/null 2>&1 || service mariadb stop >/dev/null 2>&1 || true
    fi
}

sql() { mariadb --no-defaults --socket="$SOCK" -uroot "$@"; }

cmd_start() {
    local bin=/usr/sbin/mariadbd
    [[ -x $bin ]] || bin=$(command -v mariadbd)
    mkdir -p "$DIR"
    chown mysql: "$DIR"
    chmod 700 "$DIR"
    if [[ ! -d $DATA/mysql ]]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$DATA" \
            --auth-root-authentication-method=socket --skip-test-db >"$DIR/install.log" 2>&1 ||
            { cat "$DIR/install.log" >&2; return 1; }
    fi
    if ! port_open; then
        "$bin" --no-defaults --user=mysql --datadir="$DATA" --bind-address=$HOST --port="$PORT" \
            --socket="$SOCK" --pid-file="$DIR/mariadbd.pid" --skip-name-resolve \
            --max-connections=300 --log-error="$LOG" >/dev/null 2>&1 &
        disown || true
        for _ in $(seq 1 100); do
            port_open && [[ -S $SOCK ]] && break
            sleep 0.2
        done
    fi
    port_open || { log "not listening on $HOST:$PORT"; tail -n 20 "$LOG" >&2; return 1; }
    sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB\`;
CREATE USER IF NOT EXISTS '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$PASS';
ALTER USER '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$PASS';
GRANT ALL PRIVILEGES ON \`$DB\`.* TO '$USER_NAME'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
    log "up on $HOST:$PORT"
    mkdir -p "$STATE/env.d"
    {
        printf 'export GUACR_TEST_MYSQL_HOST=%q\n' "$HOST"
        printf 'export GUACR_TEST_MYSQL_PORT=%q\n' "$PORT"
        printf 'export GUACR_TEST_MYSQL_USER=%q\n' "$USER_NAME"
        printf 'export GUACR_TEST_MYSQL_PASSWORD=%q\n' "$PASS"
        printf 'export GUACR_TEST_MYSQL_DATABASE=%q\n' "$DB"
        printf 'export GUACR_TEST_MYSQL_URL=%q\n' "mysql://$USER_NAME:$PASS@$HOST:$PORT/$DB"
    } >"$STATE/env.d/mariadb"
}

cmd_stop() {
    if [[ -s $DIR/mariadbd.pid ]]; then
        local pid
        pid=$(cat "$DIR/mariadbd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        log "stopped"
    fi
}

cmd_status() {
    if port_open; then echo "mariadb: running on $HOST:$PORT"; else echo "mariadb: not running"; return 1; fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
