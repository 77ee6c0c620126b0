#!/usr/bin/env bash
# Builds the browser client into web/dist (served by guacr: [web] assets, GUACR_WEB_DIR,
# or the checkout's web/dist found next to the binary).
#   - installs web/'s node dependencies (npm ci from package-lock.json; offline cache first)
#   - type-checks the TypeScript sources (tsc --noEmit)
#   - bundles with esbuild into web/dist (hashed asset names, .gz/.br copies)
#   - prints the gzipped size of the first page load and fails above 300 KB
# Idempotent; never reads stdin; runs as root.
set -euo pipefail
exec </dev/null

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEB=$ROOT/web
log() { printf 'web-build: %s\n' "$*" >&2; }
die() { printf 'web-build: ERROR: %s\n' "$*" >&2; exit 1; }

command -v node >/dev/null || die "node not found (Node.js >= 18 is needed)"
command -v npm >/dev/null || die "npm not found"
cd "$WEB"

NPM_FLAGS=(--no-audit --no-fund --loglevel=error --prefer-offline)
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.guacr-lock-sha256
if [[ -d node_modules && -f $stamp && $(cat "$stamp") == "$lock_sum" ]]; then
    log "node_modules up to date"
else
    log "installing node dependencies (npm ci)"
    npm ci "${NPM_FLAGS[@]}" || die "npm ci failed in $WEB"
    echo "$lock_sum" > "$stamp"
fi

log "type-checking"
node_modules/.bin/tsc --noEmit -p . || die "TypeScript errors"
log "bundling"
node build.mjs || die "build failed"
[[ -f dist/index.html ]] || die "dist/index.html missing after the build"
log "done: $WEB/dist"
