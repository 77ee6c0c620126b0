#!/usr/bin/env bash
# Test peer plug-in for the glass-to-glass benchmark (tests/web/glass.mjs):
#
#   :15  TigerVNC Xvnc 1920x1080   127.0.0.1:5905  SecurityTypes None  (GUACR_TEST_GLASS_*)
#
# showing an xterm over the whole screen and, at the top-left corner, glass-clock
# (tests/web/glass-clock.c, built here with gcc + Xlib): the wall clock in ms painted as a
# row of 32 black/white 16-px blocks every 4 ms. The desktop size is fixed (clients cannot
# resize it); another one: scripts/peers.d/glass.sh stop; GUACR_GLASS_GEOMETRY=1024x768
# scripts/peers.d/glass.sh start. Called by scripts/test-peers.sh with
# install|start|stop|status.
set -euo pipefail
exec </dev/null
STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
DIR=$STATE/glass
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/../../tests/web/glass-clock.c
HOST=127.0.0.1
DISP=15
PORT=5905
GEOMETRY=${GUACR_GLASS_GEOMETRY:-1920x1080}
PACKAGES=(tigervnc-standalone-server x11-utils xterm xfonts-base xdotool gcc libc6-dev libx11-dev)
log() { printf 'peers/glass: %s\n' "$*" >&2; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

pid_alive() {
    local pid
    [[ -s $DIR/$1.pid ]] || return 1
    pid=$(tr -dc '0-9' <"$DIR/$1.pid")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

spawn() {
    local name=$1
    shift
    setsid "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
}

stop_pid() {
    local pid i
    if pid_alive "$1"; then
        pid=$(tr -dc '0-9' <"$DIR/$1.pid")
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$1.pid"
}

display_up() { DISPLAY=:$DISP timeout 3 xdpyinfo >/dev/null 2>&1; }

wait_until() {  # wait_until WHAT NAME CMD...
    local what=$1 name=$2 i
    shift 2
    for ((i = 0; i < 150; i++)); do
        if "$@"; then return 0; fi
        if ! pid_alive "$name"; then break; fi
        sleep 0.1
    done
    log "$what did not come up; log $DIR/$name.log:"
    sed 's/^/    /' "$DIR/$name.log" >&2 2>/dev/null || true
    return 1
}

cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends "${missing[@]}"
}

cmd_start() {
    mkdir -p "$DIR/home"
    chmod 700 "$DIR"
    if [[ ! -x $DIR/glass-clock || $SRC -nt $DIR/glass-clock ]]; then
        gcc -O2 -Wall -o "$DIR/glass-clock" "$SRC" -lX11 || { log "cannot build $SRC (gcc, libx11-dev)"; return 1; }
    fi
    if ! pid_alive xvnc || ! port_open "$PORT" || ! display_up; then
        stop_pid xvnc
        rm -f "/tmp/.X$DISP-lock" "/tmp/.X11-unix/X$DISP"
        spawn xvnc Xvnc ":$DISP" -geometry "$GEOMETRY" -depth 24 -rfbport "$PORT" -interface "$HOST" \
            -localhost -SecurityTypes None -AlwaysShared -nolisten tcp -AcceptSetDesktopSize=0
        wait_until "Xvnc :$DISP on $HOST:$PORT" xvnc bash -c "timeout 2 bash -c 'exec 3<>/dev/tcp/$HOST/$PORT' 2>/dev/null && DISPLAY=:$DISP timeout 3 xdpyinfo >/dev/null 2>&1"
    fi
    if ! pid_alive xterm; then
        DISPLAY=:$DISP spawn xterm env -u SESSION_MANAGER HOME="$DIR/home" xterm -fn fixed -geometry 318x82+0+20 \
            -bg white -fg black -xrm 'XTerm*cursorBlink: false' -title guacr-glass -e env PS1='$ ' TERM=xterm bash --norc --noprofile
    fi
    if ! pid_alive clock; then
        DISPLAY=:$DISP spawn clock "$DIR/glass-clock" 4000
        sleep 0.3
        pid_alive clock || { log "glass-clock exited:"; sed 's/^/    /' "$DIR/clock.log" >&2; return 1; }
    fi
    log "up: Xvnc $HOST:$PORT (:$DISP, $GEOMETRY) with glass-clock"
    mkdir -p "$STATE/env.d"
    {
        printf 'export GUACR_TEST_GLASS_HOST=%q\n' "$HOST"
        printf 'export GUACR_TEST_GLASS_PORT=%q\n' "$PORT"
        printf 'export GUACR_TEST_GLASS_DISPLAY=:%q\n' "$DISP"
    } >"$STATE/env.d/glass"
}

cmd_stop() {
    local n
    for n in clock xterm xvnc; do stop_pid "$n"; done
    log "stopped"
}

cmd_status() {
    if port_open "$PORT" && pid_alive clock; then echo "glass: $HOST:$PORT up (glass-clock running)"; else echo "glass: $HOST:$PORT down"; return 1; fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
