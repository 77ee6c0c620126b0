#!/usr/bin/env bash
# Test peer plug-in: an S3-compatible object store (moto's server, from PyPI) on
# 127.0.0.1:39000, for the upload of finished recordings. Bucket `guacr-test` is created on start.
# Called by scripts/test-peers.sh with install|start|stop|status.
set -euo pipefail
exec </dev/null
STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
PORT=${GUACR_TEST_S3_PORT:-39000}
HOST=127.0.0.1
VENV=${GUACR_S3_VENV:-/var/tmp/guacr-moto-venv}
DIR=$STATE/s3
PID=$DIR/moto.pid
LOG=$DIR/moto.log
BUCKET=guacr-test
log() { printf 'peers/s3: %s\n' "$*" >&2; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }
alive() { [[ -s $PID ]] && kill -0 "$(cat "$PID")" 2>/dev/null; }

cmd_install() {
    if [[ ! -x $VENV/bin/moto_server ]]; then
        log "installing moto[server] into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.*' >/dev/null
    fi
}

cmd_start() {
    mkdir -p "$DIR"
    [[ -x $VENV/bin/moto_server ]] || cmd_install
    if ! (alive && port_open); then
        port_open && { log "port $PORT taken by another process"; return 1; }
        : >"$LOG"
        setsid "$VENV/bin/moto_server" -H "$HOST" -p "$PORT" </dev/null >>"$LOG" 2>&1 &
        echo $! >"$PID"
        for _ in $(seq 100); do port_open && break; sleep 0.1; done
        port_open || { log "moto did not start"; tail -n 20 "$LOG" >&2; return 1; }
    fi
    # Create the bucket (idempotent: moto answers 409/200 when it exists).
    curl -s -o /dev/null -X PUT "http://$HOST:$PORT/$BUCKET" || true
    log "up on $HOST:$PORT (bucket $BUCKET)"
    mkdir -p "$STATE/env.d"
    {
        printf 'export GUACR_TEST_S3_ENDPOINT=%q\n' "http://$HOST:$PORT"
        printf 'export GUACR_TEST_S3_BUCKET=%q\n' "$BUCKET"
        printf 'export GUACR_TEST_S3_REGION=us-east-1\n'
        printf 'export GUACR_TEST_S3_ACCESS_KEY=testing\n'
        printf 'export GUACR_TEST_S3_SECRET_KEY=testing\n'
    } >"$STATE/env.d/s3"
}

cmd_stop() {
    if alive; then kill "$(cat "$PID")" 2>/dev/null || true; log "stopped"; fi
    rm -f "$PID"
}

cmd_status() {
    if alive && port_open; then echo "s3 (moto): running on $HOST:$PORT"; else echo "s3 (moto): not running"; return 1; fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
