#!/usr/bin/env bash
# Sets up and runs guacr on its embedded defaults, in the foreground:
#   - the web gateway on http://127.0.0.1:8080 (users, connections, audit on SQLite in
#     /var/lib/guacr; the first run prints a one-time password for the `admin` user),
#   - the guacd-compatible protocol on 127.0.0.1:4822.
# Extra arguments go to guacr (e.g. -L debug). Installs what it needs (fonts, Node.js for
# the web client's build) and builds the web client and the binary first.
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/guacr-target}
command -v cargo >/dev/null || { echo "cargo is required (Rust >= 1.94)" >&2; exit 1; }
missing=()
fc-list 2>/dev/null | grep -qi "dejavu sans mono" || missing+=(fonts-dejavu-core fontconfig)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
    apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/web-build.sh
cargo build --release --locked -p guacr
export GUACR_WEB_DIR=${GUACR_WEB_DIR:-$ROOT/web/dist}
exec "$CARGO_TARGET_DIR/release/guacr" -f "$@"
