#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
# Installs what it needs (apt, PyPI, npm), starts the real peers on loopback
# (OpenSSH, telnetd, PostgreSQL, MariaDB, VNC servers on Xvfb, xrdp, FreeRDP shadow, an S3 server; see
# scripts/test-peers.sh and scripts/peers.d), then runs: fmt, clippy, unit +
# integration tests against the real peers, the fuzz targets build, the third-party
# client checks (pyguacamole, guacamole-common-js in headless Chromium for SSH, VNC and RDP)
# against a running guacr, and the web client's end-to-end suite (Playwright +
# Chromium against the real binary, on SQLite and on PostgreSQL).
set -euo pipefail
exec </dev/null
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/guacr-target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Incremental caches of every test binary grow the target directory by tens of GB.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export GUACR_PEERS_DIR=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
mkdir -p "$CARGO_TARGET_DIR"
# Every checkout path and every change leaves another copy of each test binary (hundreds of
# MB each) in the shared target directory: keep only the newest of each before building, so
# a long-lived cache does not fill the disk (it did, twice: rustc then fails with ENOSPC).
rm -rf "$CARGO_TARGET_DIR/debug/incremental"
if [ -d "$CARGO_TARGET_DIR/debug/deps" ] && command -v python3 >/dev/null; then
    python3 - "$CARGO_TARGET_DIR/debug/deps" <<'PY'
import os, re, sys
deps = sys.argv[1]
newest = {}
for f in os.listdir(deps):
    p = os.path.join(deps, f)
    m = re.fullmatch(r"(.+)-[0-9a-f]{16}", f)
    if not m or not os.path.isfile(p) or not os.access(p, os.X_OK):
        continue
    newest.setdefault(m.group(1), []).append((os.path.getmtime(p), p))
for runs in newest.values():
    for _, p in sorted(runs)[:-1]:
        for q in (p, p + ".d"):
            if os.path.exists(q):
                os.remove(q)
PY
fi

step() { printf '\n=== %s\n' "$*"; }
command -v cargo >/dev/null || { echo "cargo is required (Rust >= 1.94)" >&2; exit 1; }

step "install and start test peers"
scripts/test-peers.sh install
scripts/test-peers.sh start
trap 'scripts/test-peers.sh stop >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
source "$GUACR_PEERS_DIR/env"

step "third-party clients (pyguacamole, guacamole-common-js)"
scripts/clients-setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked 2>&1 | tee "$CARGO_TARGET_DIR/test-output.txt"

step "fuzz targets build"
if rustup toolchain list 2>/dev/null | grep -q nightly && command -v cargo-fuzz >/dev/null; then
    (cd fuzz && CARGO_TARGET_DIR=${GUACR_FUZZ_TARGET_DIR:-/var/cache/guacr-fuzz-target} cargo +nightly fuzz build)
else
    echo "nightly toolchain or cargo-fuzz missing: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
    (cd fuzz && CARGO_TARGET_DIR=${GUACR_FUZZ_TARGET_DIR:-/var/cache/guacr-fuzz-target} cargo +nightly fuzz build)
fi

step "third-party clients against a running guacr"
cargo build --locked -p guacr
PORT=${GUACR_TEST_PORT:-14823}
"$CARGO_TARGET_DIR/debug/guacr" -f -b 127.0.0.1 -l "$PORT" -L info > "$CARGO_TARGET_DIR/guacr-clients.log" 2>&1 &
GUACR_PID=$!
trap 'kill $GUACR_PID 2>/dev/null || true; scripts/test-peers.sh stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
VENV=${GUACR_CLIENTS_DIR:-/var/tmp/guacr-clients}/venv
"$VENV/bin/python" tests/clients/pyguacamole_check.py --host 127.0.0.1 --port "$PORT" \
    --ssh-port "$GUACR_TEST_SSH_PORT" --user "$GUACR_TEST_PW_USER" --password "$GUACR_TEST_PW_PASSWORD"
node tests/clients/gcjs_check.mjs --host 127.0.0.1 --port "$PORT" \
    --ssh-port "$GUACR_TEST_SSH_PORT" --user "$GUACR_TEST_PW_USER" --password "$GUACR_TEST_PW_PASSWORD" \
    --screenshot "$CARGO_TARGET_DIR/gcjs.png"
node tests/clients/gcjs_check.mjs --host 127.0.0.1 --port "$PORT" --protocol vnc \
    --vnc-port "$GUACR_TEST_VNC_XVNC_NONE_PORT" --screenshot "$CARGO_TARGET_DIR/gcjs-vnc.png"
node tests/clients/gcjs_check.mjs --host 127.0.0.1 --port "$PORT" --protocol rdp \
    --rdp-port "$GUACR_TEST_RDP_XRDP_TLS_PORT" --user "$GUACR_TEST_RDP_XRDP_TLS_USER" \
    --password "$GUACR_TEST_RDP_PASSWORD" --security tls --screenshot "$CARGO_TARGET_DIR/gcjs-rdp.png"
kill $GUACR_PID 2>/dev/null || true

step "web client end-to-end (Playwright + Chromium; SQLite, then PostgreSQL)"
scripts/web-test.sh 2>&1 | tee "$CARGO_TARGET_DIR/web-test-output.txt"

step "summary"
grep -E '^test result:' "$CARGO_TARGET_DIR/test-output.txt" | awk '{p+=$4; f+=$6; i+=$8} END {printf "cargo test: %d passed, %d failed, %d skipped\n", p, f, i}'
grep -E '^ℹ (pass|fail) ' "$CARGO_TARGET_DIR/web-test-output.txt" | awk '$2=="pass"{p+=$3} $2=="fail"{f+=$3} END {printf "web end-to-end (both databases): %d passed, %d failed\n", p, f}'
