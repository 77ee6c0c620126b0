#!/usr/bin/env bash
# Installs the third-party Guacamole clients used by tests/clients/:
#   - pyguacamole (PyPI, pinned in tests/clients/requirements.txt) into a venv at
#     ${GUACR_CLIENTS_DIR:-/var/tmp/guacr-clients}/venv
#   - guacamole-common-js, playwright-core, ws (npm, pinned by tests/clients/package-lock.json)
#     into tests/clients/node_modules
# Idempotent; never reads stdin. Chromium comes from Debian (scripts/test-peers.sh install).
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLIENTS=$ROOT/tests/clients
DIR=${GUACR_CLIENTS_DIR:-/var/tmp/guacr-clients}
VENV=$DIR/venv

log() { printf 'clients-setup: %s\n' "$*" >&2; }
die() { printf 'clients-setup: ERROR: %s\n' "$*" >&2; exit 1; }

# --- Python: venv + pyguacamole
PY=${PYTHON:-}
if [[ -z $PY ]]; then
    if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
        PY=/usr/bin/python3
    else
        PY=$(command -v python3) || die "python3 not found"
    fi
fi
mkdir -p "$DIR"
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "creating venv $VENV with $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "venv creation failed (Debian: apt-get install python3-venv)"
fi
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$CLIENTS/requirements.txt"; then
    die "pip install -r $CLIENTS/requirements.txt failed"
fi
"$VENV/bin/python" -c 'import guacamole.client' || die "pyguacamole not importable in $VENV"
log "python ok: $VENV/bin/python ($("$VENV/bin/python" -m pip show pyguacamole 2>/dev/null | sed -n 's/^Version: /pyguacamole /p'))"

# --- Node: guacamole-common-js, playwright-core, ws
command -v npm >/dev/null || die "npm not found"
cd "$CLIENTS"
if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error
else
    npm install --no-audit --no-fund --loglevel=error
fi
[[ -f node_modules/guacamole-common-js/dist/esm/guacamole-common.js ]] ||
    die "guacamole-common-js ESM build missing after npm install"
log "node ok: $CLIENTS/node_modules"
[[ -x /usr/bin/chromium ]] || log "warning: /usr/bin/chromium missing (scripts/test-peers.sh install)"
