#!/usr/bin/env bash
# Sets up and runs the guacr daemon on its embedded defaults (127.0.0.1:4822,
# like guacd), in the foreground. Extra arguments go to guacr (e.g. -L debug).
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/guacr-target}
command -v cargo >/dev/null || { echo "cargo is required (Rust >= 1.94)" >&2; exit 1; }
if ! fc-list 2>/dev/null | grep -qi "dejavu sans mono"; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends fonts-dejavu-core fontconfig >/dev/null \
        || echo "fonts-dejavu-core not installed: using the built-in font" >&2
fi
cargo build --release --locked -p guacr
exec "$CARGO_TARGET_DIR/release/guacr" -f "$@"
