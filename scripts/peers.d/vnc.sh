#!/usr/bin/env bash
# Test peer plug-in: real VNC servers on loopback, each showing an xterm.
#
#   :11  Xvfb 1024x768x24 + x11vnc   127.0.0.1:5901  VNC authentication (GUACR_TEST_VNC_X11VNC_*)
#   :12  TigerVNC Xvnc 1024x768      127.0.0.1:5902  SecurityTypes None  (GUACR_TEST_VNC_XVNC_NONE_*)
#   :13  TigerVNC Xvnc 1024x768      127.0.0.1:5903  VNC authentication (GUACR_TEST_VNC_XVNC_AUTH_*)
#   :14  TigerVNC Xvnc 1920x1080     127.0.0.1:5904  None, for the benchmark (GUACR_TEST_VNC_BENCH_*)
#
# Every display runs an xterm (core "fixed" font, 120x40 at +0+0 — full screen on :14 —, no cursor blink, a plain
# `$ ` prompt) that covers the screen centre, so keyboard focus (PointerRoot, no window
# manager) lands in it. Xvnc hosts are never blacklisted (wrong-password tests).
# Called by scripts/test-peers.sh with install|start|stop|status.
set -euo pipefail
exec </dev/null
STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
DIR=$STATE/vnc
HOST=127.0.0.1
X11VNC_PASS=vncpass1   # VNC authentication uses 8 characters at most
XVNC_PASS=vncpass3
PACKAGES=(xvfb x11vnc xterm x11-apps xauth tigervnc-standalone-server tigervnc-tools x11-utils
          xfonts-base xclip xdotool)
log() { printf 'peers/vnc: %s\n' "$*" >&2; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

pid_alive() {  # pid_alive NAME
    local pid
    [[ -s $DIR/$1.pid ]] || return 1
    pid=$(tr -dc '0-9' <"$DIR/$1.pid")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

spawn() {  # spawn NAME CMD... -> background process with pid file and log
    local name=$1
    shift
    setsid "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
}

display_up() { DISPLAY=:$1 timeout 3 xdpyinfo >/dev/null 2>&1; }

wait_until() {  # wait_until WHAT NAME CMD... -> poll CMD for 15 s
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

stop_pid() {  # stop_pid NAME
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

xterm_window() { DISPLAY=:$1 xdotool search --class xterm 2>/dev/null | head -n1; }

start_xterm() {  # start_xterm DISPLAY [GEOMETRY]
    local d=$1 geometry=${2:-120x40+0+0}
    if pid_alive "xterm$d" && [[ -n $(xterm_window "$d") ]]; then return 0; fi
    stop_pid "xterm$d"
    # Pasted newlines must run commands (tests paste with a middle click).
    printf 'set enable-bracketed-paste off\n' >"$DIR/inputrc"
    DISPLAY=:$d spawn "xterm$d" env -u SESSION_MANAGER HOME="$DIR/home" INPUTRC="$DIR/inputrc" \
        xterm -fn fixed -geometry "$geometry" -bg white -fg black -xrm 'XTerm*cursorBlink: false' \
        -xrm 'XTerm*selectToClipboard: false' -title "guacr-vnc-$d" \
        -e env PS1='$ ' TERM=xterm bash --norc --noprofile
    wait_until "xterm on :$d" "xterm$d" bash -c "[[ -n \$(DISPLAY=:$d xdotool search --class xterm 2>/dev/null) ]]"
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

start_xvfb_x11vnc() {
    if ! pid_alive xvfb11 || ! display_up 11; then
        stop_pid xvfb11
        rm -f /tmp/.X11-lock /tmp/.X11-unix/X11
        spawn xvfb11 Xvfb :11 -screen 0 1024x768x24 -nolisten tcp -noreset
        wait_until "Xvfb :11" xvfb11 display_up 11
    fi
    start_xterm 11
    if ! pid_alive x11vnc || ! port_open 5901; then
        stop_pid x11vnc
        x11vnc -storepasswd "$X11VNC_PASS" "$DIR/x11vnc.passwd" >/dev/null 2>&1
        spawn x11vnc x11vnc -display :11 -rfbport 5901 -localhost -no6 -rfbauth "$DIR/x11vnc.passwd" \
            -forever -shared -noxdamage -nowf -nowcr -xkb -norc
        wait_until "x11vnc on $HOST:5901" x11vnc port_open 5901
    fi
}

start_xvnc() {  # start_xvnc DISPLAY PORT GEOMETRY SECURITY [XTERM_GEOMETRY]
    local d=$1 port=$2 geometry=$3 sec=$4 xgeometry=${5:-} extra=()
    if [[ $sec == VncAuth ]]; then
        echo "$XVNC_PASS" | vncpasswd -f >"$DIR/xvnc$d.passwd"
        chmod 600 "$DIR/xvnc$d.passwd"
        extra=(-PasswordFile "$DIR/xvnc$d.passwd")
    fi
    if ! pid_alive "xvnc$d" || ! port_open "$port" || ! display_up "$d"; then
        stop_pid "xvnc$d"
        rm -f "/tmp/.X$d-lock" "/tmp/.X11-unix/X$d"
        spawn "xvnc$d" Xvnc ":$d" -geometry "$geometry" -depth 24 -rfbport "$port" -interface "$HOST" \
            -localhost -SecurityTypes "$sec" "${extra[@]}" -AlwaysShared -nolisten tcp \
            -BlacklistThreshold=1000000 -BlacklistTimeout=0 -AcceptSetDesktopSize=1
        wait_until "Xvnc :$d on $HOST:$port" "xvnc$d" bash -c "timeout 2 bash -c 'exec 3<>/dev/tcp/$HOST/$port' 2>/dev/null && DISPLAY=:$d timeout 3 xdpyinfo >/dev/null 2>&1"
    fi
    start_xterm "$d" $xgeometry
}

cmd_start() {
    mkdir -p "$DIR/home"
    chmod 700 "$DIR"
    start_xvfb_x11vnc
    start_xvnc 12 5902 1024x768 None
    start_xvnc 13 5903 1024x768 VncAuth
    start_xvnc 14 5904 1920x1080 None 318x82+0+0
    log "up: x11vnc $HOST:5901 (:11), Xvnc $HOST:5902 (:12, None), $HOST:5903 (:13, VncAuth), $HOST:5904 (:14, 1920x1080)"
    mkdir -p "$STATE/env.d"
    {
        printf 'export GUACR_TEST_VNC_HOST=%q\n' "$HOST"
        printf 'export GUACR_TEST_VNC_X11VNC_PORT=5901\n'
        printf 'export GUACR_TEST_VNC_X11VNC_PASSWORD=%q\n' "$X11VNC_PASS"
        printf 'export GUACR_TEST_VNC_X11VNC_DISPLAY=:11\n'
        printf 'export GUACR_TEST_VNC_XVNC_NONE_PORT=5902\n'
        printf 'export GUACR_TEST_VNC_XVNC_NONE_DISPLAY=:12\n'
        printf 'export GUACR_TEST_VNC_XVNC_AUTH_PORT=5903\n'
        printf 'export GUACR_TEST_VNC_XVNC_AUTH_PASSWORD=%q\n' "$XVNC_PASS"
        printf 'export GUACR_TEST_VNC_XVNC_AUTH_DISPLAY=:13\n'
        printf 'export GUACR_TEST_VNC_BENCH_PORT=5904\n'
        printf 'export GUACR_TEST_VNC_BENCH_DISPLAY=:14\n'
    } >"$STATE/env.d/vnc"
}

cmd_stop() {
    local n
    for n in xterm11 xterm12 xterm13 xterm14 x11vnc xvfb11 xvnc12 xvnc13 xvnc14; do
        stop_pid "$n"
    done
    log "stopped"
}

cmd_status() {
    local rc=0 p
    for p in 5901 5902 5903 5904; do
        if port_open "$p"; then echo "vnc: $HOST:$p up"; else echo "vnc: $HOST:$p down"; rc=1; fi
    done
    return $rc
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
