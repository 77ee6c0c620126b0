#!/usr/bin/env bash
# Real SSH and telnet servers on loopback for guacr's integration tests.
#
#   scripts/test-peers.sh install   # apt packages, test users, client keys (idempotent)
#   scripts/test-peers.sh start     # sshd on 127.0.0.1:2222, telnetd (inetd) on 127.0.0.1:2323
#   scripts/test-peers.sh stop      # stop both, by pid
#   scripts/test-peers.sh status    # exit 0 if both are up
#
# State (host key, client keys, configs, logs, pid files, env) lives in
# ${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}; `source "$GUACR_PEERS_DIR/env"` after `start`.
# Must run as root. Never reads stdin.
#
# More peers (PostgreSQL, MariaDB, VNC servers, ...) are plug-ins: every executable
# scripts/peers.d/NAME.sh is called with the same verb (install|start|stop|status) after
# the built-in peers, with GUACR_PEERS_DIR exported. On `start` a plug-in writes its
# `export K=V` lines to $GUACR_PEERS_DIR/env.d/NAME; they are appended to the env file.
set -euo pipefail

STATE=${GUACR_PEERS_DIR:-/var/tmp/guacr-peers}
SSH_PORT=${GUACR_TEST_SSH_PORT:-2222}
TELNET_PORT=${GUACR_TEST_TELNET_PORT:-2323}
HOST=127.0.0.1

PW_USER=guacr-pw
PW_PASS=guacr-test-pw
KEY_USER=guacr-key
KEY_PASS=guacr-key-pass
PROMPT='guacr$ '

PACKAGES=(openssh-server sshpass inetutils-telnetd inetutils-inetd inetutils-telnet
          fonts-dejavu-core chromium python3-venv ffmpeg
          nasm)  # nasm: openh264 (guacr-video) builds from source

SSHD_CONF=$STATE/sshd_config
SSHD_PID=$STATE/sshd.pid
SSHD_LOG=$STATE/sshd.log
HOSTKEY=$STATE/ssh_host_ed25519_key
INETD_CONF=$STATE/inetd.conf
INETD_PID=$STATE/inetd.pid
INETD_LOG=$STATE/inetd.log
KEYDIR=$STATE/keys
KEY_ED25519=$KEYDIR/id_ed25519
KEY_ED25519_ENC=$KEYDIR/id_ed25519_enc
KEY_RSA_PEM_ENC=$KEYDIR/id_rsa_pem_enc
KEY_RSA_PEM=$KEYDIR/id_rsa_pem

log() { printf 'test-peers: %s\n' "$*" >&2; }
die() { printf 'test-peers: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
exec </dev/null

# ---------------------------------------------------------------- helpers

port_open() {  # port_open PORT -> 0 if something accepts on 127.0.0.1:PORT
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

pid_alive() {  # pid_alive PIDFILE -> 0 if the pid in PIDFILE is a live process
    local pid
    [[ -s $1 ]] || return 1
    pid=$(tr -dc '0-9' <"$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

wait_port() {  # wait_port PORT PIDFILE LOG NAME -> bounded wait (10 s), fail loudly
    local port=$1 pidfile=$2 logf=$3 name=$4 i
    for ((i = 0; i < 100; i++)); do
        if port_open "$port" && pid_alive "$pidfile"; then
            log "$name up on $HOST:$port (pid $(cat "$pidfile"))"
            return 0
        fi
        sleep 0.1
    done
    log "$name did not come up on $HOST:$port within 10 s; log $logf:"
    sed 's/^/    /' "$logf" >&2 2>/dev/null || true
    die "$name failed to start"
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME
    local pidfile=$1 name=$2 pid i
    if pid_alive "$pidfile"; then
        pid=$(tr -dc '0-9' <"$pidfile")
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    else
        log "$name not running"
    fi
    rm -f "$pidfile"
}

run_plugins() {  # run_plugins VERB -> run every scripts/peers.d/*.sh with VERB; status ORs failures
    local dir f rc=0
    dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peers.d
    [[ -d $dir ]] || return 0
    export GUACR_PEERS_DIR=$STATE
    for f in "$dir"/*.sh; do
        [[ -f $f ]] || continue
        if [[ $1 == status ]]; then
            bash "$f" status || rc=1
        else
            bash "$f" "$1" || die "$(basename "$f") $1 failed"
        fi
    done
    return $rc
}

# ---------------------------------------------------------------- install

apt_lists_fresh() {  # 0 if apt lists exist and are newer than 1 day
    [[ -n $(find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -mtime -1 2>/dev/null | head -n1) ]]
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return 0
    fi
    if ! apt_lists_fresh; then
        log "apt-get update"
        apt-get -o DPkg::Lock::Timeout=600 update -q
    fi
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
        --no-install-recommends "${missing[@]}"
}

ensure_user() {  # ensure_user NAME
    if ! id -u "$1" >/dev/null 2>&1; then
        log "creating user $1"
        useradd --create-home --shell /bin/bash "$1"
    fi
    if [[ $(getent passwd "$1" | cut -d: -f7) != /bin/bash ]]; then
        usermod --shell /bin/bash "$1"
    fi
    local home
    home=$(getent passwd "$1" | cut -d: -f6)
    [[ -d $home ]] || { mkdir -p "$home"; cp -rT /etc/skel "$home"; chown -R "$1:" "$home"; }
    # Simple, detectable prompt; no motd / last-login noise.
    local rc=$home/.bashrc
    [[ -f $rc ]] || { touch "$rc"; chown "$1:" "$rc"; }
    sed -i '/^# guacr-test-prompt begin$/,/^# guacr-test-prompt end$/d' "$rc"
    cat >>"$rc" <<EOF
# guacr-test-prompt begin
PS1='$PROMPT'
unset PROMPT_COMMAND
bind 'set enable-bracketed-paste off' 2>/dev/null
# guacr-test-prompt end
EOF
    # A login shell reads ~/.profile (Debian's skel sources ~/.bashrc from it).
    if [[ ! -f $home/.profile ]]; then
        printf '[ -f ~/.bashrc ] && . ~/.bashrc\n' >"$home/.profile"
        chown "$1:" "$home/.profile"
    fi
    touch "$home/.hushlogin"
    chown "$1:" "$home/.hushlogin"
}

ensure_keys() {
    mkdir -p "$KEYDIR"
    chmod 700 "$STATE" "$KEYDIR"
    if [[ ! -s $KEY_ED25519 || ! -s $KEY_ED25519.pub ]]; then
        log "generating ed25519 client key"
        rm -f "$KEY_ED25519" "$KEY_ED25519.pub" "$KEY_ED25519_ENC" "$KEY_ED25519_ENC.pub"
        ssh-keygen -q -t ed25519 -N '' -C guacr-test-ed25519 -f "$KEY_ED25519"
    fi
    if [[ ! -s $KEY_ED25519_ENC ]]; then
        # Same key, passphrase-protected, OpenSSH format.
        cp "$KEY_ED25519" "$KEY_ED25519_ENC"
        cp "$KEY_ED25519.pub" "$KEY_ED25519_ENC.pub"
        chmod 600 "$KEY_ED25519_ENC"
        ssh-keygen -q -p -P '' -N "$KEY_PASS" -f "$KEY_ED25519_ENC" >/dev/null
    fi
    if [[ ! -s $KEY_RSA_PEM_ENC || ! -s $KEY_RSA_PEM_ENC.pub ]]; then
        log "generating RSA (PEM, passphrase) client key"
        rm -f "$KEY_RSA_PEM_ENC" "$KEY_RSA_PEM_ENC.pub" "$KEY_RSA_PEM" "$KEY_RSA_PEM.pub"
        ssh-keygen -q -t rsa -b 3072 -m PEM -N "$KEY_PASS" -C guacr-test-rsa -f "$KEY_RSA_PEM_ENC"
    fi
    if [[ ! -s $KEY_RSA_PEM ]]; then
        # Same RSA key, unencrypted, still PEM.
        cp "$KEY_RSA_PEM_ENC" "$KEY_RSA_PEM"
        cp "$KEY_RSA_PEM_ENC.pub" "$KEY_RSA_PEM.pub"
        chmod 600 "$KEY_RSA_PEM"
        ssh-keygen -q -p -m PEM -P "$KEY_PASS" -N '' -f "$KEY_RSA_PEM" >/dev/null
    fi
    chmod 600 "$KEY_ED25519" "$KEY_ED25519_ENC" "$KEY_RSA_PEM_ENC" "$KEY_RSA_PEM"
    chmod 644 "$KEYDIR"/*.pub
    # Sanity: formats as promised.
    grep -q 'BEGIN OPENSSH PRIVATE KEY' "$KEY_ED25519_ENC" || die "$KEY_ED25519_ENC not OpenSSH format"
    grep -q 'BEGIN RSA PRIVATE KEY' "$KEY_RSA_PEM_ENC" || die "$KEY_RSA_PEM_ENC not PEM"
    grep -q 'ENCRYPTED' "$KEY_RSA_PEM_ENC" || die "$KEY_RSA_PEM_ENC not encrypted"
}

ensure_authorized_keys() {
    local home ssh
    home=$(getent passwd "$KEY_USER" | cut -d: -f6)
    ssh=$home/.ssh
    mkdir -p "$ssh"
    cat "$KEY_ED25519.pub" "$KEY_RSA_PEM_ENC.pub" >"$ssh/authorized_keys"
    chown -R "$KEY_USER:" "$ssh"
    chmod 755 "$home"
    chmod 700 "$ssh"
    chmod 600 "$ssh/authorized_keys"
}

ensure_users_and_keys() {
    ensure_user "$PW_USER"
    echo "$PW_USER:$PW_PASS" | chpasswd
    ensure_user "$KEY_USER"
    # '*' = no password login, but not "locked" (a '!' hash can block pubkey logins).
    if [[ $(getent shadow "$KEY_USER" | cut -d: -f2) != '*' ]]; then
        usermod -p '*' "$KEY_USER"
    fi
    ensure_keys
    ensure_authorized_keys
}

cmd_install() {
    install_packages
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    ensure_users_and_keys
    run_plugins install
    log "install done (state in $STATE)"
}

# ---------------------------------------------------------------- start

write_sshd_config() {
    cat >"$SSHD_CONF" <<EOF
# generated by scripts/test-peers.sh
Port $SSH_PORT
ListenAddress $HOST
HostKey $HOSTKEY
PidFile $SSHD_PID
PasswordAuthentication yes
KbdInteractiveAuthentication yes
PubkeyAuthentication yes
UsePAM yes
AllowUsers $PW_USER $KEY_USER
AcceptEnv LANG LC_* TZ
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
PrintMotd no
PrintLastLog no
UseDNS no
LoginGraceTime 30
MaxAuthTries 10
MaxSessions 50
MaxStartups 100:30:200
X11Forwarding no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

start_sshd() {
    if pid_alive "$SSHD_PID" && port_open "$SSH_PORT"; then
        log "sshd already running (pid $(cat "$SSHD_PID"))"
        return 0
    fi
    if pid_alive "$SSHD_PID"; then
        stop_pidfile "$SSHD_PID" "stale sshd"
    fi
    port_open "$SSH_PORT" && die "port $HOST:$SSH_PORT is taken by another process"
    [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd missing: run '$0 install' first"
    if [[ ! -s $HOSTKEY ]]; then
        rm -f "$HOSTKEY" "$HOSTKEY.pub"
        ssh-keygen -q -t ed25519 -N '' -C guacr-test-host -f "$HOSTKEY"
    fi
    write_sshd_config
    mkdir -p /run/sshd
    chmod 755 /run/sshd
    /usr/sbin/sshd -t -f "$SSHD_CONF" || die "sshd -t rejected $SSHD_CONF"
    rm -f "$SSHD_PID"
    : >"$SSHD_LOG"
    setsid /usr/sbin/sshd -D -e -f "$SSHD_CONF" </dev/null >>"$SSHD_LOG" 2>&1 &
    wait_port "$SSH_PORT" "$SSHD_PID" "$SSHD_LOG" sshd
}

start_inetd() {
    if pid_alive "$INETD_PID" && port_open "$TELNET_PORT"; then
        log "inetd (telnetd) already running (pid $(cat "$INETD_PID"))"
        return 0
    fi
    if pid_alive "$INETD_PID"; then
        stop_pidfile "$INETD_PID" "stale inetd"
    fi
    port_open "$TELNET_PORT" && die "port $HOST:$TELNET_PORT is taken by another process"
    [[ -x /usr/sbin/inetutils-inetd && -x /usr/sbin/telnetd ]] ||
        die "inetutils-inetd/telnetd missing: run '$0 install' first"
    printf '%s:%s stream tcp nowait root /usr/sbin/telnetd telnetd -h\n' \
        "$HOST" "$TELNET_PORT" >"$INETD_CONF"
    rm -f "$INETD_PID"
    : >"$INETD_LOG"
    # Forks into the background by itself; its pid is in the pidfile.
    setsid /usr/sbin/inetutils-inetd --pidfile="$INETD_PID" "$INETD_CONF" \
        </dev/null >>"$INETD_LOG" 2>&1 &
    wait_port "$TELNET_PORT" "$INETD_PID" "$INETD_LOG" "inetd (telnetd)"
}

write_env() {
    local hostkey_pub tmp
    hostkey_pub=$(awk '{print $1" "$2}' "$HOSTKEY.pub")
    tmp=$(mktemp "$STATE/env.XXXXXX")
    {
        echo "# generated by scripts/test-peers.sh start"
        printf 'export GUACR_TEST_HOST=%q\n' "$HOST"
        printf 'export GUACR_TEST_SSH_PORT=%q\n' "$SSH_PORT"
        printf 'export GUACR_TEST_TELNET_PORT=%q\n' "$TELNET_PORT"
        printf 'export GUACR_TEST_SSH_HOSTKEY_PUB=%q\n' "$hostkey_pub"
        printf 'export GUACR_TEST_SSH_KNOWN_HOSTS_LINE=%q\n' "[$HOST]:$SSH_PORT $hostkey_pub"
        printf 'export GUACR_TEST_PW_USER=%q\n' "$PW_USER"
        printf 'export GUACR_TEST_PW_PASSWORD=%q\n' "$PW_PASS"
        printf 'export GUACR_TEST_PROMPT=%q\n' "$PROMPT"
        printf 'export GUACR_TEST_KEY_USER=%q\n' "$KEY_USER"
        printf 'export GUACR_TEST_KEY_PASSPHRASE=%q\n' "$KEY_PASS"
        printf 'export GUACR_TEST_KEY_ED25519=%q\n' "$KEY_ED25519"
        printf 'export GUACR_TEST_KEY_ED25519_ENC=%q\n' "$KEY_ED25519_ENC"
        printf 'export GUACR_TEST_KEY_RSA_PEM_ENC=%q\n' "$KEY_RSA_PEM_ENC"
        printf 'export GUACR_TEST_KEY_RSA_PEM=%q\n' "$KEY_RSA_PEM"
        local f
        for f in "$STATE"/env.d/*; do
            [[ -f $f ]] && cat "$f"
        done
    } >"$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$STATE/env"
    log "wrote $STATE/env"
}

cmd_start() {
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    ensure_users_and_keys
    start_sshd
    start_inetd
    mkdir -p "$STATE/env.d"
    run_plugins start
    write_env
}

cmd_stop() {
    stop_pidfile "$SSHD_PID" sshd
    stop_pidfile "$INETD_PID" "inetd (telnetd)"
    run_plugins stop || true
}

cmd_status() {
    local rc=0
    if pid_alive "$SSHD_PID" && port_open "$SSH_PORT"; then
        echo "sshd: running (pid $(cat "$SSHD_PID")) on $HOST:$SSH_PORT"
    else
        echo "sshd: not running"; rc=1
    fi
    if pid_alive "$INETD_PID" && port_open "$TELNET_PORT"; then
        echo "telnetd: running (inetd pid $(cat "$INETD_PID")) on $HOST:$TELNET_PORT"
    else
        echo "telnetd: not running"; rc=1
    fi
    run_plugins status || rc=1
    return $rc
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
