#!/usr/bin/env bash
# End-to-end tests of the web client (tests/web, Playwright + Debian's Chromium) against the
# real guacr binary and the real OpenSSH and VNC test peers (WebRTC: data channel, H.264
# video, fallback; ICE needs an interface other than lo with an address), once on SQLite and once on PostgreSQL
# (a fresh database per run on the peers' PostgreSQL, GUACR_TEST_PG_URL).
#   scripts/web-test.sh            both databases
#   scripts/web-test.sh sqlite     only SQLite
#   scripts/web-test.sh postgres   only PostgreSQL
# Screenshots and guacr's logs: ${GUACR_WEB_ARTIFACTS:-/tmp/guacr-web-artifacts}.
# Idempotent; never reads stdin; runs as root.
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/guacr-target}
PEERS_ENV=${GUACR_PEERS_ENV:-/var/tmp/guacr-peers/env}
export GUACR_WEB_ARTIFACTS=${GUACR_WEB_ARTIFACTS:-/tmp/guacr-web-artifacts}
WHICH=${1:-all}
case $WHICH in all|sqlite|postgres) ;; *) echo "usage: $0 [all|sqlite|postgres]" >&2; exit 2 ;; esac

log() { printf 'web-test: %s\n' "$*" >&2; }
die() { printf 'web-test: ERROR: %s\n' "$*" >&2; exit 1; }

# --- peers (OpenSSH, PostgreSQL) and Chromium
if [[ ! -x /usr/bin/chromium || ! -x /usr/sbin/sshd ]]; then
    log "installing the test peers and Chromium"
    "$ROOT/scripts/test-peers.sh" install
fi
"$ROOT/scripts/test-peers.sh" start >&2
[[ -f $PEERS_ENV ]] || die "$PEERS_ENV missing after scripts/test-peers.sh start"

# --- build: web client, guacr, test dependencies
"$ROOT/scripts/web-build.sh"
log "building guacr (cargo build -p guacr)"
(cd "$ROOT" && cargo build -q -p guacr) || die "cargo build -p guacr failed"
export GUACR_BIN=${GUACR_BIN:-$CARGO_TARGET_DIR/debug/guacr}
(cd "$ROOT/tests/web" && npm ci --no-audit --no-fund --loglevel=error --prefer-offline) ||
    die "npm ci failed in tests/web"

# e2e: the client over WebSocket/HTTP; webrtc-unit: the WebRTC tunnel's parser;
# webrtc: the WebRTC transport (data channel, H.264 video, fallback) against x11vnc and OpenSSH.
SUITES=(e2e.test.mjs webrtc-unit.test.mjs webrtc.test.mjs)

run_suite() {  # run_suite LABEL FILE...
    local label=$1
    shift
    log "running $* on $label"
    (cd "$ROOT/tests/web" && node --test --test-concurrency=1 --test-reporter=spec "$@")
}

status=0
if [[ $WHICH == all || $WHICH == sqlite ]]; then
    unset GUACR_WEB_TEST_DB_URL
    run_suite SQLite "${SUITES[@]}" || status=1
fi

if [[ $WHICH == all || $WHICH == postgres ]]; then
    PG_URL=$(bash -c 'set -a; . "$0"; printf %s "${GUACR_TEST_PG_URL:-}"' "$PEERS_ENV")
    [[ -n $PG_URL ]] || die "GUACR_TEST_PG_URL missing from $PEERS_ENV (the postgres peer plug-in did not start)"
    command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"
    # A fresh database per suite file: each starts its own guacr with its own secret key.
    DBS=()
    trap 'for d in "${DBS[@]}"; do psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done' EXIT
    for suite in "${SUITES[@]}"; do
        DB=guacr_web_$$_$RANDOM
        psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >/dev/null ||
            die "cannot create database $DB on $PG_URL"
        DBS+=("$DB")
        export GUACR_WEB_TEST_DB_URL=${PG_URL%/*}/$DB
        run_suite "PostgreSQL ($DB)" "$suite" || status=1
    done
fi

if [[ $status -ne 0 ]]; then
    die "web end-to-end tests failed (screenshots and logs in $GUACR_WEB_ARTIFACTS)"
fi
log "all web end-to-end tests passed"
