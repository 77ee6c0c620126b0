#!/usr/bin/env bash
# Test peer plug-in: real RDP servers on loopback, each showing an xterm.
#
#   xrdp 0.9 (Xvnc backend)  127.0.0.1:3389  TLS security            user guacr-rdp (guacr-rdp-bench: benchmarks)
#   xrdp 0.9 (Xvnc backend)  127.0.0.1:3391  standard RDP security   user guacr-rdp2
#                                            (encryption level none)
#     (two xrdp processes with their own ini files, one shared xrdp-sesman on 127.0.0.1:3350;
#      sessions take displays :100 and up; the session's "window manager" writes $DISPLAY to
#      ~/guacr-display and execs an xterm; a user's later logins reconnect to its session)
#   FreeRDP shadow servers sharing Xvfb :21 (1024x768) with an xterm, user guacr-rdp:
#     127.0.0.1:3390  NLA only (/sec:nla; CredSSP/NTLM checked against a SAM file)
#     127.0.0.1:3392  TLS only (/sec:tls +auth; the password is checked with PAM after login)
#
# Every xterm: core "fixed" font, 120x40 at +0+0, white background, no cursor blink,
# prompt `$ `, bracketed paste off, UTF-8 locale (C.UTF-8: non-ASCII keys type characters).
# Users are Unix users with a fixed test password.
# Called by scripts/test-peers.sh with install|start|stop|status.
set -euo pipefail
exec </dev/null
STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
DIR=$STATE/rdp
# What the session users run must be outside $STATE (mode 700): window manager, inputrc.
PUB=/var/tmp/guacr-rdp-session
HOST=127.0.0.1
TLS_PORT=3389
SHADOW_PORT=3390
SHADOW_TLS_PORT=3392
RDPSEC_PORT=3391
SESMAN_PORT=3350
SHADOW_DISPLAY=21
SESSION_DISPLAY_OFFSET=100
USER_TLS=guacr-rdp
USER_RDPSEC=guacr-rdp2
USER_BENCH=guacr-rdp-bench   # guacr-bench rdp: its own xrdp session, away from the tests
PASSWORD=guacr-rdp-pass1
PACKAGES=(xrdp xorgxrdp freerdp2-x11 freerdp2-shadow-x11 winpr-utils tigervnc-standalone-server
          xvfb xterm x11-apps x11-utils xfonts-base xclip xdotool openssl)
log() { printf 'peers/rdp: %s\n' "$*" >&2; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }
# xrdp-sesman 0.9 listens on [::1] whatever ListenAddress says.
listening() { [[ -n $(ss -ltnH "sport = :$1" 2>/dev/null) ]]; }

pid_of() { [[ -s $DIR/$1.pid ]] && tr -dc '0-9' <"$DIR/$1.pid"; }

pid_alive() {  # pid_alive NAME
    local pid
    pid=$(pid_of "$1") || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

spawn() {  # spawn NAME CMD... -> background process (own session/process group), pid file, log
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

descendants() {  # descendants PID -> every descendant pid, deepest last
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

stop_tree() {  # stop_tree NAME -> TERM the process and all its descendants (by pid), then KILL
    local pid pids i p
    pid=$(pid_of "$1") || { rm -f "$DIR/$1.pid"; return 0; }
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        pids="$pid $(descendants "$pid" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            local alive=0
            for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.1
        done
        for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    fi
    rm -f "$DIR/$1.pid"
}

cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} > 0)); then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
            --no-install-recommends "${missing[@]}"
    fi
    ensure_users
}

ensure_users() {
    local u
    for u in "$USER_TLS" "$USER_RDPSEC" "$USER_BENCH"; do
        id "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u"
        echo "$u:$PASSWORD" | chpasswd
    done
}

write_configs() {
    mkdir -p "$DIR/shadow-home"
    chmod 755 "$DIR"
    if [[ ! -s $DIR/key.pem || ! -s $DIR/cert.pem ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=guacr-rdp-test \
            -keyout "$DIR/key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
    fi
    mkdir -p "$PUB"
    chmod 755 "$PUB"
    printf 'set enable-bracketed-paste off\n' >"$PUB/inputrc"
    chmod 644 "$PUB/inputrc"
    # The session's window manager: note the display, then an xterm (the session ends with it).
    cat >"$PUB/startwm.sh" <<EOF
#!/bin/sh
echo "\$DISPLAY" > "\$HOME/guacr-display"
exec env -u SESSION_MANAGER LC_ALL=C.UTF-8 INPUTRC=$PUB/inputrc xterm -fn fixed -geometry 120x40+0+0 \\
    -bg white -fg black -xrm 'XTerm*cursorBlink: false' -xrm 'XTerm*selectToClipboard: false' \\
    -title guacr-rdp -e env PS1='\$ ' TERM=xterm bash --norc --noprofile
EOF
    chmod 755 "$PUB/startwm.sh"
    cat >"$DIR/sesman.ini" <<EOF
[Globals]
ListenAddress=$HOST
ListenPort=$SESMAN_PORT
EnableUserWindowManager=false
UserWindowManager=startwm.sh
DefaultWindowManager=$PUB/startwm.sh
ReconnectScript=/bin/true

[Security]
AllowRootLogin=false
MaxLoginRetry=0
TerminalServerUsers=tsusers
TerminalServerAdmins=tsadmins
AlwaysGroupCheck=false
RestrictOutboundClipboard=none
RestrictInboundClipboard=none

[Sessions]
X11DisplayOffset=$SESSION_DISPLAY_OFFSET
MaxSessions=200
KillDisconnected=false
DisconnectedTimeLimit=0
IdleTimeLimit=0
Policy=Default

[Logging]
LogFile=$DIR/sesman-file.log
LogLevel=INFO
EnableSyslog=false

[Xvnc]
param=Xvnc
param=-bs
param=-nolisten
param=tcp
param=-localhost
param=-ac
param=-dpi
param=96

[Chansrv]
FuseMountName=thinclient_drives
FileUmask=077
EnableFuseMount=false

[ChansrvLogging]
LogLevel=INFO
EnableSyslog=false

[SessionVariables]
EOF
    local name port sec
    for name in tls rdpsec; do
        # Standard RDP security without encryption: IronRDP implements only that variant
        # (xfreerdp 2.11 here fails xrdp's RC4 levels low/medium/high with MAC errors too).
        if [[ $name == tls ]]; then
            port=$TLS_PORT sec=tls crypt=high
        else
            port=$RDPSEC_PORT sec=rdp crypt=none
        fi
        cat >"$DIR/xrdp-$name.ini" <<EOF
[Globals]
ini_version=1
fork=true
port=tcp://$HOST:$port
use_vsock=false
tcp_nodelay=true
tcp_keepalive=true
security_layer=$sec
crypt_level=$crypt
certificate=$DIR/cert.pem
key_file=$DIR/key.pem
ssl_protocols=TLSv1.2, TLSv1.3
autorun=Xvnc
allow_channels=true
allow_multimon=false
bitmap_cache=true
bitmap_compression=true
bulk_compression=true
max_bpp=32
new_cursors=true
use_fastpath=both
require_credentials=true

[Logging]
LogFile=$DIR/xrdp-$name-file.log
LogLevel=INFO
EnableSyslog=false

[Channels]
rdpdr=false
rdpsnd=true
drdynvc=true
cliprdr=true
rail=false
xrdpvr=false
tcutils=false

[Xvnc]
name=Xvnc
lib=libvnc.so
username=ask
password=ask
ip=127.0.0.1
port=-1
EOF
    done
    # NTLM SAM file for the shadow server's NLA.
    winpr-hash -u "$USER_TLS" -p "$PASSWORD" -f sam >"$DIR/shadow.sam"
    chmod 600 "$DIR/shadow.sam"
}

start_xrdp() {
    sh /usr/share/xrdp/socksetup
    if ! pid_alive sesman || ! listening "$SESMAN_PORT"; then
        stop_tree sesman
        spawn sesman xrdp-sesman -n -c "$DIR/sesman.ini"
        wait_until "xrdp-sesman on port $SESMAN_PORT" sesman listening "$SESMAN_PORT"
    fi
    local name port
    for name in tls rdpsec; do
        if [[ $name == tls ]]; then port=$TLS_PORT; else port=$RDPSEC_PORT; fi
        if ! pid_alive "xrdp-$name" || ! port_open "$port"; then
            stop_tree "xrdp-$name"
            spawn "xrdp-$name" xrdp -n -c "$DIR/xrdp-$name.ini"
            wait_until "xrdp ($name) on $HOST:$port" "xrdp-$name" port_open "$port"
        fi
    done
}

start_shadow() {
    local d=$SHADOW_DISPLAY
    if ! pid_alive xvfb || ! display_up "$d"; then
        stop_tree xterm
        stop_tree xvfb
        rm -f "/tmp/.X$d-lock" "/tmp/.X11-unix/X$d"
        spawn xvfb Xvfb ":$d" -screen 0 1024x768x24 -nolisten tcp -noreset
        wait_until "Xvfb :$d" xvfb display_up "$d"
    fi
    if ! pid_alive xterm; then
        DISPLAY=:$d spawn xterm env -u SESSION_MANAGER LC_ALL=C.UTF-8 HOME="$DIR/shadow-home" INPUTRC="$PUB/inputrc" \
            xterm -fn fixed -geometry 120x40+0+0 -bg white -fg black -xrm 'XTerm*cursorBlink: false' \
            -xrm 'XTerm*selectToClipboard: false' -title guacr-rdp-shadow \
            -e env PS1='$ ' TERM=xterm bash --norc --noprofile
        wait_until "xterm on :$d" xterm bash -c "[[ -n \$(DISPLAY=:$d xdotool search --class xterm 2>/dev/null) ]]"
    fi
    if ! pid_alive shadow || ! port_open "$SHADOW_PORT"; then
        stop_tree shadow
        DISPLAY=:$d HOME="$DIR/shadow-home" spawn shadow freerdp-shadow-cli \
            "/bind-address:$HOST" "/port:$SHADOW_PORT" +auth "/sam-file:$DIR/shadow.sam" /sec:nla
        wait_until "freerdp-shadow-cli (NLA) on $HOST:$SHADOW_PORT" shadow port_open "$SHADOW_PORT"
    fi
    if ! pid_alive shadow-tls || ! port_open "$SHADOW_TLS_PORT"; then
        stop_tree shadow-tls
        DISPLAY=:$d HOME="$DIR/shadow-home" spawn shadow-tls freerdp-shadow-cli \
            "/bind-address:$HOST" "/port:$SHADOW_TLS_PORT" +auth /sec:tls
        wait_until "freerdp-shadow-cli (TLS) on $HOST:$SHADOW_TLS_PORT" shadow-tls port_open "$SHADOW_TLS_PORT"
    fi
}

cmd_start() {
    mkdir -p "$DIR"
    ensure_users
    write_configs
    start_xrdp
    start_shadow
    log "up: xrdp TLS $HOST:$TLS_PORT ($USER_TLS), xrdp RDP security $HOST:$RDPSEC_PORT ($USER_RDPSEC), FreeRDP shadow $HOST:$SHADOW_PORT (NLA) and $HOST:$SHADOW_TLS_PORT (TLS) on :$SHADOW_DISPLAY ($USER_TLS)"
    mkdir -p "$STATE/env.d"
    {
        printf 'export GUACR_TEST_RDP_HOST=%q\n' "$HOST"
        printf 'export GUACR_TEST_RDP_PASSWORD=%q\n' "$PASSWORD"
        printf 'export GUACR_TEST_RDP_XRDP_TLS_PORT=%q\n' "$TLS_PORT"
        printf 'export GUACR_TEST_RDP_XRDP_TLS_USER=%q\n' "$USER_TLS"
        printf 'export GUACR_TEST_RDP_XRDP_CERT=%q\n' "$DIR/cert.pem"
        printf 'export GUACR_TEST_RDP_XRDP_TLS_DISPLAY_FILE=%q\n' "$(getent passwd "$USER_TLS" | cut -d: -f6)/guacr-display"
        printf 'export GUACR_TEST_RDP_XRDP_RDP_PORT=%q\n' "$RDPSEC_PORT"
        printf 'export GUACR_TEST_RDP_XRDP_RDP_USER=%q\n' "$USER_RDPSEC"
        printf 'export GUACR_TEST_RDP_XRDP_RDP_DISPLAY_FILE=%q\n' "$(getent passwd "$USER_RDPSEC" | cut -d: -f6)/guacr-display"
        printf 'export GUACR_TEST_RDP_BENCH_USER=%q\n' "$USER_BENCH"
        printf 'export GUACR_TEST_RDP_SHADOW_PORT=%q\n' "$SHADOW_PORT"
        printf 'export GUACR_TEST_RDP_SHADOW_TLS_PORT=%q\n' "$SHADOW_TLS_PORT"
        printf 'export GUACR_TEST_RDP_SHADOW_USER=%q\n' "$USER_TLS"
        printf 'export GUACR_TEST_RDP_SHADOW_DISPLAY=:%q\n' "$SHADOW_DISPLAY"
    } >"$STATE/env.d/rdp"
}

cmd_stop() {
    local n
    # sesman's descendants are the sessions (Xvnc, xterm, chansrv).
    for n in xrdp-tls xrdp-rdpsec sesman shadow shadow-tls xterm xvfb; do
        stop_tree "$n"
    done
    local u home
    for u in "$USER_TLS" "$USER_RDPSEC" "$USER_BENCH"; do
        home=$(getent passwd "$u" | cut -d: -f6) && rm -f "$home/guacr-display"
    done
    log "stopped"
}

cmd_status() {
    local rc=0 p
    for p in $TLS_PORT $RDPSEC_PORT $SHADOW_PORT $SHADOW_TLS_PORT; do
        if port_open "$p"; then echo "rdp: $HOST:$p up"; else echo "rdp: $HOST:$p down"; rc=1; fi
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
