#!/usr/bin/env bash
# zerodown test sandbox: N fake "hosts" on one machine, each a real OpenSSH sshd on its own
# loopback address (127.0.0.X) with its own real nginx, all with THE SAME PATHS thanks to one
# private mount namespace per host (/srv/app, /run, /var/lib/zerodown and /tmp are bind-mounted
# from DIR/hosts/X). See README.md beside this file. Run as root.
#
#   sandbox.sh up --dir DIR --first 11 --count N [--ssh-port 2222] [--http-port 8080]
#                 [--shared-tmp] [--watch-pid PID] [--nginx /usr/sbin/nginx] [--server nginx]
#                 [--net 127.0.0] [--workers 2] [--rsa-host-key]
#   sandbox.sh down --dir DIR
#   sandbox.sh exec --dir DIR --host 11 -- CMD...
#   sandbox.sh nginx-start --dir DIR --host 11 [--reset]
#   sandbox.sh nginx-stop --dir DIR --host 11
#   sandbox.sh server-start --dir DIR --host 11 [--reset]   (the host's server, whatever its kind)
#   sandbox.sh server-stop --dir DIR --host 11
#   sandbox.sh preflight
#   sandbox.sh tableflip-start|tableflip-stop|tableflip-build ...   (tableflip.sh beside this file)
#
# --server KIND: what the hosts serve with, nginx (default) or a KIND whose functions
# server-KIND.sh beside this file defines (KIND_install_files, KIND_start, KIND_stop, KIND_json).
# Only `up` (the sandbox JSON) and `nginx-start`/`server-start` (the new master pid) print to stdout;
# everything else goes to stderr.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SB_USER=zd
SB_NOSUDO_USER=zdnosudo
# Deploys through the sudo helper: its sudoers file holds exactly the published lines (host/sudoers).
SB_HELPER_USER=zdhelper
HELPER_SUDOERS_FILE=/etc/sudoers.d/zerodown-sandbox-helper
REPO_HOST_DIR=$(dirname "$SELF")/../../host
HELPER_PATH=/usr/local/libexec/zerodown/zerodown-sudo
HELPER_CONF=/etc/zerodown/sudo.conf
SB_PASSWORD=zerodown-sandbox-pw
SB_PASSPHRASE=sandbox-passphrase
SUDOERS_FILE=/etc/sudoers.d/zerodown-sandbox
GLOBAL_LOCK=/var/lock/zerodown-sandbox.lock
# Inside every host namespace the sshd files live here (= DIR/hosts/X/run/zerodown-sandbox),
# so that nothing the host's processes need is under DIR (DIR is hidden by the private /tmp).
NS_SSHD_DIR=/run/zerodown-sandbox

log() { printf 'sandbox: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '2,22p' "$SELF" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- process helpers

# alive PID: true if the process exists and is not a zombie (kill -0 succeeds on zombies,
# and this machine's pid 1 reaps orphans late).
alive() {
  local st
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  read -r st 2>/dev/null </proc/"$1"/stat || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z && ${st:0:1} != X ]]
}

# stat_field PID N -> field N of /proc/PID/stat counted after the command name (1 = state,
# 2 = ppid, 20 = starttime); empty if gone
stat_field() {
  local st n=$2
  read -r st 2>/dev/null </proc/"$1"/stat || return 0
  st=${st##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $st
  printf '%s' "${!n}"
}

# ppid_of PID -> prints the parent pid (empty if gone)
ppid_of() { stat_field "$1" 2; }

# starttime_of PID -> field 22 of /proc/PID/stat (to detect pid reuse)
starttime_of() { stat_field "$1" 20; }

cmdline_of() {
  local c
  c=$(tr '\0' ' ' 2>/dev/null </proc/"$1"/cmdline) || return 0
  printf '%s' "$c"
}

mntns_of() { readlink "/proc/$1/ns/mnt" 2>/dev/null || true; }

ROOT_NS=$(mntns_of 1)
SELF_NS=$(mntns_of $$)

# pids_in_ns NS... -> pids (one a line) of live processes whose mount namespace is one of NS.
# Never returns processes of the root mount namespace or of this script's namespace.
pids_in_ns() {
  local want=" $* " line pid ns
  [[ -n ${*} ]] || return 0
  while read -r line; do
    pid=${line%% *}
    ns=${line#* }
    pid=${pid#/proc/}
    pid=${pid%%/*}
    [[ $ns == "$ROOT_NS" || $ns == "$SELF_NS" ]] && continue
    [[ $want == *" $ns "* ]] || continue
    [[ $pid == "$$" || $pid == 1 ]] && continue
    alive "$pid" && printf '%s\n' "$pid"
  done < <(find /proc/[0-9]*/ns/mnt -maxdepth 0 -printf '%p %l\n' 2>/dev/null || true)
}

# wait_gone TIMEOUT_TENTHS PID... -> 0 when all are dead (or zombies), 1 on timeout
wait_gone() {
  local tenths=$1 i p left
  shift
  for ((i = 0; i < tenths * 5; i++)); do
    left=0
    for p in "$@"; do alive "$p" && { left=1 && break; }; done
    ((left)) || return 0
    sleep 0.02
  done
  return 1
}

# ---------------------------------------------------------------- other servers

# every server-KIND.sh beside this file (their functions run in this shell, after parse_args)
for f in "${SELF%/*}"/server-*.sh; do
  # shellcheck disable=SC1090 # the files are found at run time
  [[ -f $f ]] && source "$f"
done
unset f

# need_server: --server names nginx or a kind whose file was sourced
need_server() {
  [[ $SERVER =~ ^[a-z0-9]+$ ]] || die "--server must be a plain name, got '$SERVER'"
  [[ $SERVER == nginx ]] || declare -F "${SERVER}_start" >/dev/null ||
    die "unknown --server $SERVER (nginx, or a server-$SERVER.sh beside sandbox.sh)"
}

# ---------------------------------------------------------------- arguments

DIR=""
FIRST=""
COUNT=""
SSH_PORT=2222
HTTP_PORT=8080
HOST=""
WATCH_PID=""
WATCH_START=""
SHARED_TMP=0
RSA_HOST_KEY=0
RESET=0
NGINX_SRC=/usr/sbin/nginx
SERVER=nginx
# the first three octets of every host's address (127.0.1 for NET.X), and nginx workers per host
NET=127.0.0
WORKERS=2
CMD_ARGS=()

parse_args() {
  while (($#)); do
    case $1 in
      --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
      --first) FIRST=${2:?--first needs a value}; shift 2 ;;
      --count) COUNT=${2:?--count needs a value}; shift 2 ;;
      --ssh-port) SSH_PORT=${2:?--ssh-port needs a value}; shift 2 ;;
      --http-port) HTTP_PORT=${2:?--http-port needs a value}; shift 2 ;;
      --host) HOST=${2:?--host needs a value}; shift 2 ;;
      --watch-pid) WATCH_PID=${2:?--watch-pid needs a value}; shift 2 ;;
      --watch-start) WATCH_START=${2:?}; shift 2 ;;
      --nginx) NGINX_SRC=${2:?--nginx needs a value}; shift 2 ;;
      --server) SERVER=${2:?--server needs a value}; shift 2 ;;
      --net) NET=${2:?--net needs a value}; shift 2 ;;
      --workers) WORKERS=${2:?--workers needs a value}; shift 2 ;;
      --shared-tmp) SHARED_TMP=1; shift ;;
      --rsa-host-key) RSA_HOST_KEY=1; shift ;;
      --reset) RESET=1; shift ;;
      --) shift; CMD_ARGS=("$@"); break ;;
      -h | --help) usage ;;
      *) die "unknown argument: $1" ;;
    esac
  done
}

need_dir() {
  [[ -n $DIR ]] || die "--dir DIR is required"
  [[ $DIR == /* ]] || DIR="$PWD/$DIR"
  DIR=${DIR%/}
  [[ $DIR =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "--dir must be a plain path ([A-Za-z0-9._/+-]): $DIR"
  case "$DIR/" in
    /run/* | /var/run/* | /srv/app/* | /var/lib/zerodown/* | /) die "--dir must not be under /run, /srv/app or /var/lib/zerodown (they are replaced inside the hosts): $DIR" ;;
  esac
}

need_int() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, got '$2'"; }

# host_id: accepts 11 or 127.0.0.11 -> sets HID (last octet) and H (host dir)
need_host() {
  need_dir
  [[ -n $HOST ]] || die "--host is required (last octet, e.g. 11, or 127.0.0.11)"
  HID=${HOST##*.}
  need_int --host "$HID"
  H=$DIR/hosts/$HID
  [[ -d $H ]] || die "no host $HOST in $DIR"
  NET=$(cat "$DIR/net" 2>/dev/null || echo 127.0.0)
  WORKERS=$(cat "$DIR/workers" 2>/dev/null || echo 2)
}

host_sshd_pid() {
  local pid
  pid=$(cat "$1/sshd.pid" 2>/dev/null || true)
  alive "$pid" || return 1
  printf '%s' "$pid"
}

need_host_ns() {
  SSHD_PID=$(host_sshd_pid "$H") || die "sshd of host $HID is not running (no live pid in $H/sshd.pid)"
  HOST_NS=$(cat "$H/mntns" 2>/dev/null || true)
  [[ -n $HOST_NS && $HOST_NS != "$ROOT_NS" && $(mntns_of "$SSHD_PID") == "$HOST_NS" ]] ||
    die "sshd $SSHD_PID of host $HID is not in the host's mount namespace"
}

# ---------------------------------------------------------------- preflight

cmd_preflight() {
  local missing=() pkgs=() c
  declare -A pkg_of=(
    [sshd]=openssh-server [ssh-keygen]=openssh-client [nginx]=nginx-light [unshare]=util-linux
    [nsenter]=util-linux [sudo]=sudo [flock]=util-linux [useradd]=passwd [chpasswd]=passwd
  )
  for c in sshd ssh-keygen nginx unshare nsenter sudo flock useradd chpasswd; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  if ! command -v setpriv >/dev/null 2>&1 && ! command -v runuser >/dev/null 2>&1; then
    missing+=(setpriv)
    pkg_of[setpriv]=util-linux
  fi
  if ((${#missing[@]})); then
    for c in "${missing[@]}"; do
      [[ " ${pkgs[*]} " == *" ${pkg_of[$c]} "* ]] || pkgs+=("${pkg_of[$c]}")
    done
    if ((EUID == 0)); then
      log "preflight: missing ${missing[*]}; installing ${pkgs[*]} with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update >&2
      apt-get install -y --no-install-recommends openssh-server openssh-client nginx-light sudo util-linux passwd >&2
    else
      log "preflight: missing ${missing[*]}"
      log "install them as root with:"
      log "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openssh-server nginx-light sudo util-linux"
      exit 1
    fi
  fi
  ((EUID == 0)) || die "the sandbox must run as root (it creates users, mount namespaces and sshd listeners)"
  [[ -x $NGINX_SRC ]] || die "nginx binary $NGINX_SRC not found"
  unshare -m --propagation private true 2>/dev/null ||
    die "cannot create mount namespaces here (unshare -m failed): this machine/container does not allow it"
  log "preflight ok"
}

# ---------------------------------------------------------------- users, keys

ensure_users() {
  local u created=0 hash
  exec 9>"$GLOBAL_LOCK"
  flock -w 60 9 || die "could not take $GLOBAL_LOCK"
  for u in "$SB_USER" "$SB_NOSUDO_USER" "$SB_HELPER_USER"; do
    if ! id -u "$u" >/dev/null 2>&1; then
      useradd --create-home --home-dir "/home/$u" --shell /bin/sh --user-group "$u" >&2
      log "created user $u"
      created=1
    fi
    hash=$(getent shadow "$u" | cut -d: -f2)
    if ((created)) || [[ $hash != \$* ]]; then
      printf '%s:%s\n' "$u" "$SB_PASSWORD" | chpasswd
    fi
  done
  local want="# zerodown test sandbox (test/sandbox/sandbox.sh): the deploy user has passwordless sudo
$SB_USER ALL=(ALL) NOPASSWD: ALL"
  if [[ ! -f $SUDOERS_FILE || "$(cat "$SUDOERS_FILE")" != "$want" ]]; then
    local tmp
    tmp=$(mktemp /etc/sudoers.d/.zerodown-sandbox.XXXXXX)
    printf '%s\n' "$want" >"$tmp"
    chmod 0440 "$tmp"
    if command -v visudo >/dev/null 2>&1 && ! visudo -cqf "$tmp" >&2; then
      rm -f "$tmp"
      die "visudo rejected the sandbox sudoers file"
    fi
    mv -f "$tmp" "$SUDOERS_FILE"
  fi
  install_helper
  exec 9>&-
}

# The helper of this checkout, its config for the sandbox's nginx, and the published sudoers lines
# (host/sudoers, "deploy" read as the helper user): what an admin installs, nothing more.
install_helper() {
  [[ -f $REPO_HOST_DIR/zerodown-sudo && -f $REPO_HOST_DIR/sudoers ]] || return 0
  cmp -s "$REPO_HOST_DIR/zerodown-sudo" "$HELPER_PATH" ||
    install -o root -g root -m 0755 -D "$REPO_HOST_DIR/zerodown-sudo" "$HELPER_PATH"
  install -d -o root -g root -m 0755 "$(dirname "$HELPER_CONF")"
  local conf="server /srv/app/sbin/nginx /run/nginx.pid"
  [[ "$(cat "$HELPER_CONF" 2>/dev/null)" == "$conf" ]] || {
    printf '%s\n' "$conf" >"$HELPER_CONF.tmp" && chmod 0644 "$HELPER_CONF.tmp" && mv -f "$HELPER_CONF.tmp" "$HELPER_CONF"
  }
  local want
  want=$(sed "s/^deploy /$SB_HELPER_USER /" "$REPO_HOST_DIR/sudoers")
  if [[ ! -f $HELPER_SUDOERS_FILE || "$(cat "$HELPER_SUDOERS_FILE")" != "$want" ]]; then
    local tmp
    tmp=$(mktemp /etc/sudoers.d/.zerodown-sandbox-helper.XXXXXX)
    printf '%s\n' "$want" >"$tmp"
    chmod 0440 "$tmp"
    if command -v visudo >/dev/null 2>&1 && ! visudo -cqf "$tmp" >&2; then
      rm -f "$tmp"
      die "visudo rejected host/sudoers"
    fi
    mv -f "$tmp" "$HELPER_SUDOERS_FILE"
  fi
}

make_keys() {
  mkdir -p "$DIR/keys"
  chmod 0700 "$DIR/keys"
  ssh-keygen -q -t ed25519 -N '' -C zerodown-sandbox-client -f "$DIR/keys/id_ed25519"
  ssh-keygen -q -t ed25519 -N "$SB_PASSPHRASE" -C zerodown-sandbox-client-pass -f "$DIR/keys/id_ed25519_pass"
  ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -C zerodown-sandbox-client-rsa -f "$DIR/keys/id_rsa"
  cat "$DIR/keys/id_ed25519.pub" "$DIR/keys/id_ed25519_pass.pub" "$DIR/keys/id_rsa.pub" >"$DIR/authorized_keys"
  chmod 0644 "$DIR/authorized_keys"
}

# ---------------------------------------------------------------- nginx files

write_nginx_conf() { # $1 = host dir, $2 = address
  cat >"$1/srv-app/conf/nginx.conf" <<EOF
# written by test/sandbox/sandbox.sh for host $2
daemon on;
master_process on;
worker_processes $WORKERS;
pid /run/nginx.pid;
error_log /srv/app/logs/error.log notice;

events {
    worker_connections 1024;
}

http {
    types { text/html html; text/plain txt; }
    default_type application/octet-stream;
    access_log /srv/app/logs/access.log;
    sendfile on;
    keepalive_timeout 65;

    client_body_temp_path /srv/app/tmp/client_body;
    proxy_temp_path /srv/app/tmp/proxy;
    fastcgi_temp_path /srv/app/tmp/fastcgi;
    uwsgi_temp_path /srv/app/tmp/uwsgi;
    scgi_temp_path /srv/app/tmp/scgi;

    server {
        listen $2:$HTTP_PORT;
        server_name _;
        root /srv/app/html;

        location = /health { default_type text/plain; return 200 "ok\n"; }
        location = /ver    { default_type text/plain; return 200 "\$nginx_version\n"; }
        # pid of the worker that answered: tells old workers from new ones
        location = /pid    { default_type text/plain; return 200 "\$pid\n"; }
        # ~20 MB at 200 KB/s (~100 s): holds an old worker busy, for drain tests
        location = /big   { limit_rate 200k; alias /srv/app/html/big.bin; }
        location / { index index.html; }
    }
}
EOF
}

install_nginx_files() { # $1 = host dir, $2 = address
  local h=$1
  mkdir -p "$h/srv-app/sbin" "$h/srv-app/conf" "$h/srv-app/logs" "$h/srv-app/html" "$h/srv-app/tmp"
  cp "$NGINX_SRC" "$h/srv-app/sbin/nginx.tmp"
  chmod 0755 "$h/srv-app/sbin/nginx.tmp"
  mv -f "$h/srv-app/sbin/nginx.tmp" "$h/srv-app/sbin/nginx"
  write_nginx_conf "$h" "$2"
  printf '<!doctype html>\n<html><body><h1>zerodown sandbox host %s</h1></body></html>\n' "$2" >"$h/srv-app/html/index.html"
  [[ -f $h/srv-app/html/big.bin ]] || truncate -s 20M "$h/srv-app/html/big.bin"
  chown -R "$SB_USER:$SB_USER" "$h/srv-app"
}

# ---------------------------------------------------------------- tiny HTTP client

# http_get ADDR PORT PATH -> prints the status code (empty on failure)
http_get() {
  (
    exec 3<>"/dev/tcp/$1/$2" || exit 0
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3
    local line=""
    IFS= read -r -t 3 line <&3 || true
    line=${line#HTTP/1.? }
    printf '%s' "${line%% *}"
  ) 2>/dev/null || true
}

port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# ---------------------------------------------------------------- nginx start / stop

# nginx_masters: live pids in $HOST_NS whose title says "nginx: master process"
nginx_masters() {
  local p
  for p in $(pids_in_ns "$HOST_NS"); do
    [[ $(cmdline_of "$p") == "nginx: master process"* ]] && printf '%s\n' "$p"
  done
  return 0
}

# everything of the host's namespace that is not the sshd listener or one of its descendants
# (= nginx masters and workers, processes they exec'd, daemons left by earlier test cases)
non_ssh_pids() {
  local p q keep all
  all=$(pids_in_ns "$HOST_NS")
  for p in $all; do
    keep=0
    q=$p
    while [[ -n $q && $q != 0 && $q != 1 ]]; do
      if [[ $q == "$SSHD_PID" ]]; then keep=1 && break; fi
      q=$(ppid_of "$q")
    done
    ((keep)) || printf '%s\n' "$p"
  done
  return 0
}

start_nginx() { # uses H, HID, SSHD_PID; prints nothing; sets NGINX_PID
  local addr=$NET.$HID i pid st
  local drop=(setpriv --reuid="$SB_USER" --regid="$SB_USER" --init-groups --)
  command -v setpriv >/dev/null 2>&1 || drop=(runuser -u "$SB_USER" --)
  rm -f "$H/run/nginx.pid" "$H/run/nginx.pid.oldbin"
  nsenter -t "$SSHD_PID" -m -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/$SB_USER \
    "${drop[@]}" /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/nginx.conf -e /srv/app/logs/error.log \
    </dev/null >>"$H/nginx-start.log" 2>&1 ||
    {
      tail -n 20 "$H/nginx-start.log" "$H/srv-app/logs/error.log" >&2 2>/dev/null || true
      die "nginx of host $addr did not start"
    }
  NGINX_PID=""
  for ((i = 0; i < 250; i++)); do
    pid=$(cat "$H/run/nginx.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
      st=$(http_get "$addr" "$HTTP_PORT" /health)
      if [[ $st == 200 ]]; then NGINX_PID=$pid && break; fi
    fi
    sleep 0.02
  done
  if [[ -z $NGINX_PID ]]; then
    tail -n 20 "$H/nginx-start.log" "$H/srv-app/logs/error.log" >&2 2>/dev/null || true
    die "nginx of host $addr did not answer 200 on http://$addr:$HTTP_PORT/health within 5 s"
  fi
}

stop_nginx() { # uses H, HID, HOST_NS, SSHD_PID
  local masters rest p
  masters=$(nginx_masters)
  # TERM = fast shutdown: open connections (e.g. /big downloads) do not hold it up
  for p in $masters; do kill -TERM "$p" 2>/dev/null || true; done
  # shellcheck disable=SC2086
  [[ -z $masters ]] || wait_gone 30 $masters || log "nginx masters of host $HID ignored TERM; killing"
  rest=$(non_ssh_pids)
  for p in $rest; do kill -KILL "$p" 2>/dev/null || true; done
  # shellcheck disable=SC2086
  [[ -z $rest ]] || wait_gone 30 $rest || log "warning: processes still alive on host $HID: $(echo $rest)"
  rm -f "$H/run/nginx.pid" "$H/run/nginx.pid.oldbin"
}

read_host_ports() { # from the host's files written by up
  SSH_PORT=$(cat "$H/ssh-port")
  HTTP_PORT=$(cat "$H/http-port")
}

cmd_nginx_start() {
  need_host
  need_host_ns
  read_host_ports
  if ((RESET)); then
    stop_nginx
    install_nginx_files "$H" "$NET.$HID"
  else
    local m pid
    m=$(nginx_masters)
    pid=$(cat "$H/run/nginx.pid" 2>/dev/null || true)
    if [[ -n $m && $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
      log "nginx of host $HID already running (master $pid)"
      printf '%s\n' "$pid"
      return 0
    fi
    [[ -z $m ]] || die "host $HID has nginx masters ($(echo $m)) but no live /run/nginx.pid: run nginx-stop first (or nginx-start --reset)"
  fi
  start_nginx
  log "nginx of host $HID started (master $NGINX_PID)"
  printf '%s\n' "$NGINX_PID"
}

cmd_nginx_stop() {
  need_host
  need_host_ns
  stop_nginx
  log "nginx of host $HID stopped"
}

# the kind of server of host H (written by up)
host_server() {
  SERVER=$(cat "$H/server" 2>/dev/null || echo nginx)
  need_server
}

cmd_server_start() {
  need_host
  host_server
  [[ $SERVER != nginx ]] || {
    cmd_nginx_start
    return
  }
  need_host_ns
  read_host_ports
  local m pid
  m=$("${SERVER}_masters")
  pid=$(cat "$H/run/$SERVER.pid" 2>/dev/null || true)
  if ((RESET)); then
    "${SERVER}_stop"
    "${SERVER}_install_files" "$H" "$NET.$HID"
  elif [[ -n $m && $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
    log "$SERVER of host $HID already running (master $pid)"
    printf '%s\n' "$pid"
    return 0
  elif [[ -n $m ]]; then
    die "host $HID has $SERVER masters ($(echo $m)) but no live /run/$SERVER.pid: run server-stop first (or server-start --reset)"
  fi
  "${SERVER}_start"
  log "$SERVER of host $HID started (master $SERVER_PID)"
  printf '%s\n' "$SERVER_PID"
}

cmd_server_stop() {
  need_host
  host_server
  need_host_ns
  if [[ $SERVER == nginx ]]; then stop_nginx; else "${SERVER}_stop"; fi
  log "$SERVER of host $HID stopped"
}

# ---------------------------------------------------------------- exec

cmd_exec() {
  need_host
  need_host_ns
  ((${#CMD_ARGS[@]})) || die "exec needs a command after --"
  exec nsenter -t "$SSHD_PID" -m -- "${CMD_ARGS[@]}"
}

# ---------------------------------------------------------------- down

do_down() { # quiet about what is already gone
  local d=$DIR h ns nss=() pid pids wpid
  [[ -e $d ]] || return 0
  if [[ ! -e $d/.zerodown-sandbox ]]; then
    # never rm -rf a folder that is not a sandbox; an empty one is just removed
    rmdir "$d" 2>/dev/null && return 0
    log "warning: $d is not a sandbox folder (no .zerodown-sandbox marker): left alone"
    return 0
  fi
  wpid=$(cat "$d/watcher.pid" 2>/dev/null || true)
  if [[ $wpid =~ ^[0-9]+$ && $wpid != "$$" ]] && alive "$wpid" &&
    [[ $(cmdline_of "$wpid") == *"$SELF _watch --dir $d "* ]]; then
    kill -KILL "$wpid" 2>/dev/null || true
  fi
  for h in "$d"/hosts/*/; do
    [[ -d $h ]] || continue
    ns=$(cat "$h/mntns" 2>/dev/null || true)
    if [[ -z $ns ]]; then
      pid=$(cat "$h/sshd.pid" 2>/dev/null || true)
      [[ $pid =~ ^[0-9]+$ ]] && ns=$(mntns_of "$pid")
    fi
    [[ -n $ns && $ns != "$ROOT_NS" && $ns != "$SELF_NS" ]] && nss+=("$ns")
  done
  if ((${#nss[@]})); then
    # Again until none is left: a process may fork between the scan and the kill (a master
    # starting workers after a HUP), and its child would outlive the sandbox, holding its ports.
    local round
    for round in 1 2 3 4 5; do
      pids=$(pids_in_ns "${nss[@]}")
      [[ -n $pids ]] || break
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      # shellcheck disable=SC2086
      wait_gone 30 $pids || log "warning: some sandbox processes survived SIGKILL: $(echo $pids)"
    done
  fi
  rm -rf --one-file-system "$d" 2>/dev/null || rm -rf "$d" || log "warning: could not remove $d"
}

cmd_down() {
  need_dir
  if [[ ! -e $DIR ]]; then
    log "nothing to do: $DIR does not exist"
    return 0
  fi
  if [[ ! -e $DIR/.zerodown-sandbox ]] && [[ -n $(ls -A "$DIR" 2>/dev/null) ]]; then
    log "warning: $DIR is not a sandbox folder (no .zerodown-sandbox marker): left alone"
    return 0
  fi
  do_down
  log "down: $DIR removed"
}

# ---------------------------------------------------------------- up

start_host() { # $1 = last octet
  local x=$1 addr=$NET.$1 h=$DIR/hosts/$1 sd i pid ns
  H=$h
  HID=$x
  sd=$h/run/zerodown-sandbox
  port_in_use "$addr" "$SSH_PORT" && die "$addr:$SSH_PORT is already in use (another sandbox or sshd?)"
  port_in_use "$addr" "$HTTP_PORT" && die "$addr:$HTTP_PORT is already in use (another sandbox or nginx?)"

  mkdir -p "$h/run/sshd" "$sd" "$h/var-lib-zerodown" "$h/tmp"
  # /run belongs to the user nginx runs as (the deploy user), as on a host set up sanely: no other
  # user may write the pid file's folder (the action refuses that). /tmp is the usual 1777.
  chmod 0755 "$h/run"
  chown "$SB_USER:$SB_USER" "$h/run"
  chmod 1777 "$h/tmp"
  chmod 0755 "$h/run/sshd" "$sd"
  chown "$SB_USER:$SB_USER" "$h/var-lib-zerodown"
  chmod 0755 "$h/var-lib-zerodown"
  printf '%s\n' "$SSH_PORT" >"$h/ssh-port"
  printf '%s\n' "$HTTP_PORT" >"$h/http-port"

  ssh-keygen -q -t ed25519 -N '' -C "zerodown-sandbox-host-$addr" -f "$sd/ssh_host_ed25519_key"
  local rsa_host_key=""
  if ((RSA_HOST_KEY)); then
    # A second host key, as distributions install (sshd offers each; the client picks by its list).
    ssh-keygen -q -t rsa -b 2048 -N '' -C "zerodown-sandbox-host-$addr" -f "$sd/ssh_host_rsa_key"
    rsa_host_key="HostKey $NS_SSHD_DIR/ssh_host_rsa_key"
  fi
  cp "$DIR/authorized_keys" "$sd/authorized_keys"
  chmod 0644 "$sd/authorized_keys"
  cat >"$sd/sshd_config" <<EOF
# written by test/sandbox/sandbox.sh for host $addr; paths are as seen inside the host
# ($NS_SSHD_DIR = $sd)
ListenAddress $addr:$SSH_PORT
HostKey $NS_SSHD_DIR/ssh_host_ed25519_key
$rsa_host_key
PidFile $NS_SSHD_DIR/sshd.pid
AuthorizedKeysFile $NS_SSHD_DIR/authorized_keys
AllowUsers $SB_USER $SB_NOSUDO_USER $SB_HELPER_USER
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitEmptyPasswords no
UsePAM no
PermitRootLogin no
Subsystem sftp internal-sftp
AllowTcpForwarding yes
X11Forwarding no
UseDNS no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
MaxStartups 100
MaxSessions 50
EOF
  printf '%s\n' "$SERVER" >"$h/server"
  if [[ $SERVER == nginx ]]; then install_nginx_files "$h" "$addr"; else "${SERVER}_install_files" "$h" "$addr"; fi
  ln -sfn run/zerodown-sandbox/sshd.log "$h/sshd.log"
  ln -sfn run/zerodown-sandbox/sshd_config "$h/sshd_config"
  # sshd in its own mount namespace; /tmp is mounted last (DIR is usually under /tmp)
  setsid unshare -m --propagation private -- /bin/sh -c '
    set -e
    mkdir -p /srv/app /var/lib/zerodown
    mount --bind "$1/srv-app" /srv/app
    mount --bind "$1/var-lib-zerodown" /var/lib/zerodown
    mount --bind "$1/run" /run
    if [ "$2" = 0 ]; then mount --bind "$1/tmp" /tmp; fi
    exec /usr/sbin/sshd -D -f '"$NS_SSHD_DIR"'/sshd_config -E '"$NS_SSHD_DIR"'/sshd.log
  ' sandbox-host "$h" "$SHARED_TMP" </dev/null >/dev/null 2>>"$h/start.log" &

  pid=""
  for ((i = 0; i < 250; i++)); do
    pid=$(cat "$sd/sshd.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && break
    pid=""
    if ! alive $!; then break; fi
    sleep 0.02
  done
  if [[ -z $pid ]]; then
    tail -n 20 "$h/start.log" "$sd/sshd.log" >&2 2>/dev/null || true
    die "sshd of $addr did not start"
  fi
  ns=$(mntns_of "$pid")
  [[ -n $ns && $ns != "$ROOT_NS" ]] || die "sshd $pid of $addr is not in a private mount namespace"
  printf '%s\n' "$pid" >"$h/sshd.pid"
  printf '%s\n' "$ns" >"$h/mntns"
  SSHD_PID=$pid
  HOST_NS=$ns

  local server_json
  if [[ $SERVER == nginx ]]; then
    start_nginx
    SERVER_PID=$NGINX_PID
    server_json='"binaryPath": "/srv/app/sbin/nginx", "pidFile": "/run/nginx.pid", "prefix": "/srv/app", "confPath": "/srv/app/conf/nginx.conf"'
  else
    "${SERVER}_start"
    NGINX_PID=0 # no nginx on this host
    server_json=$("${SERVER}_json")
  fi

  # known_hosts / fingerprints
  local hk fp name
  if [[ $SSH_PORT == 22 ]]; then name=$addr; else name="[$addr]:$SSH_PORT"; fi
  hk=$(cut -d' ' -f1,2 "$sd/ssh_host_ed25519_key.pub")
  fp=$(ssh-keygen -lf "$sd/ssh_host_ed25519_key.pub" | cut -d' ' -f2)
  printf '%s %s\n' "$name" "$hk" >>"$DIR/known_hosts"
  printf '%s %s\n' "$name" "$fp" >>"$DIR/fingerprints"
  if ((RSA_HOST_KEY)); then
    printf '%s %s\n' "$name" "$(cut -d' ' -f1,2 "$sd/ssh_host_rsa_key.pub")" >>"$DIR/known_hosts.rsa"
    printf '%s %s\n' "$name" "$(ssh-keygen -lf "$sd/ssh_host_rsa_key.pub" | cut -d' ' -f2)" >>"$DIR/fingerprints.rsa"
  fi
  HOST_JSON+=("$(
    cat <<EOF
    { "name": "$addr", "address": "$addr", "sshPort": $SSH_PORT, "httpPort": $HTTP_PORT,
      "root": "$h", "sshdPid": $pid, "nginxPid": $NGINX_PID, "fingerprint": "$fp",
      "hostKeyLine": "$name $hk", "mntNs": "$ns", "server": "$SERVER", "serverPid": $SERVER_PID,
      $server_json }
EOF
  )")
  log "host $addr up: ssh $addr:$SSH_PORT (sshd $pid), http $addr:$HTTP_PORT ($SERVER master $SERVER_PID)"
}

cmd_up() {
  need_dir
  need_int --first "$FIRST"
  need_int --count "$COUNT"
  need_int --ssh-port "$SSH_PORT"
  need_int --http-port "$HTTP_PORT"
  ((COUNT >= 1)) || die "--count must be >= 1"
  ((FIRST >= 2 && FIRST + COUNT - 1 <= 254)) || die "hosts must stay within $NET.2..$NET.254"
  [[ $NET =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "--net must be the first three octets of a loopback address (127.A.B), got '$NET'"
  need_int --workers "$WORKERS"
  ((WORKERS >= 1)) || die "--workers must be >= 1"
  [[ -z $WATCH_PID ]] || need_int --watch-pid "$WATCH_PID"
  need_server

  cmd_preflight
  if [[ -e $DIR/.zerodown-sandbox ]]; then
    log "$DIR already holds a sandbox: taking it down first"
    do_down
  fi
  if [[ -d $DIR && ! -e $DIR/.zerodown-sandbox ]] && [[ -n $(ls -A "$DIR") ]]; then
    die "$DIR exists, is not empty and is not a sandbox folder: choose another --dir"
  fi
  mkdir -p "$DIR"
  chmod 0755 "$DIR"
  : >"$DIR/.zerodown-sandbox"
  UP_OK=0
  # on failure: stop whatever was started, remove DIR
  trap 'if ((UP_OK == 0)); then log "up failed: cleaning up $DIR"; do_down; fi' EXIT

  ensure_users
  printf '%s\n' "$NET" >"$DIR/net"
  printf '%s\n' "$WORKERS" >"$DIR/workers"
  make_keys
  : >"$DIR/known_hosts"
  : >"$DIR/fingerprints"
  HOST_JSON=()
  local x
  for ((x = FIRST; x < FIRST + COUNT; x++)); do
    start_host "$x"
  done
  chmod 0644 "$DIR/known_hosts" "$DIR/fingerprints"

  local hosts_json
  hosts_json=$(
    IFS=$'\n'
    local first=1 j
    for j in "${HOST_JSON[@]}"; do
      ((first)) || printf ',\n'
      first=0
      printf '%s' "$j"
    done
  )
  cat >"$DIR/sandbox.json" <<EOF
{ "dir": "$DIR", "user": "$SB_USER", "password": "$SB_PASSWORD", "noSudoUser": "$SB_NOSUDO_USER", "helperUser": "$SB_HELPER_USER",
  "privateKeyPath": "$DIR/keys/id_ed25519", "passphraseKeyPath": "$DIR/keys/id_ed25519_pass", "passphrase": "$SB_PASSPHRASE",
  "rsaKeyPath": "$DIR/keys/id_rsa", "knownHostsPath": "$DIR/known_hosts", "privateTmp": $([[ $SHARED_TMP == 1 ]] && echo false || echo true),
  "hosts": [
$hosts_json
  ] }
EOF
  if [[ -n $WATCH_PID ]]; then
    local start
    start=$(starttime_of "$WATCH_PID")
    setsid bash "$SELF" _watch --dir "$DIR" --watch-pid "$WATCH_PID" --watch-start "${start:-0}" \
      </dev/null >/dev/null 2>>"$DIR/watcher.log" &
    printf '%s\n' "$!" >"$DIR/watcher.pid" # the watcher rewrites it with its own pid
  fi
  # shellcheck disable=SC2034 # read by the EXIT trap
  UP_OK=1
  trap - EXIT
  cat "$DIR/sandbox.json"
}

# internal: take the sandbox down when process WATCH_PID ends (crashed test runs)
cmd_watch() {
  need_dir
  printf '%s\n' "$$" >"$DIR/watcher.pid"
  while [[ -d $DIR ]] && alive "$WATCH_PID" && [[ $(starttime_of "$WATCH_PID") == "$WATCH_START" ]]; do
    sleep 1
  done
  [[ -d $DIR ]] || exit 0
  log "owner process $WATCH_PID is gone: taking $DIR down"
  exec bash "$SELF" down --dir "$DIR"
}

# ---------------------------------------------------------------- other host kinds

# shellcheck source=test/sandbox/tableflip.sh
source "$(dirname "$SELF")/tableflip.sh"

# ---------------------------------------------------------------- main

main() {
  (($#)) || usage
  local cmd=$1
  shift
  [[ $cmd == tableflip-* ]] || parse_args "$@"
  case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    exec) cmd_exec ;;
    preflight) cmd_preflight ;;
    nginx-start) cmd_nginx_start ;;
    nginx-stop) cmd_nginx_stop ;;
    server-start) cmd_server_start ;;
    server-stop) cmd_server_stop ;;
    _watch) cmd_watch ;;
    tableflip-start) cmd_tableflip_start "$@" ;;
    tableflip-stop) cmd_tableflip_stop "$@" ;;
    tableflip-build) cmd_tableflip_build ;;
    -h | --help | help) usage ;;
    *) die "unknown command: $cmd (up, down, exec, nginx-start, nginx-stop, server-start, server-stop, preflight, tableflip-start, tableflip-stop, tableflip-build)" ;;
  esac
}

main "$@"
