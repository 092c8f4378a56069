# shellcheck shell=bash
# Sourced by sandbox.sh: hosts that run the Go test server of the tableflip supervisor
# (test/servers/tableflip) instead of nginx, on the same address and port.
#
#   sandbox.sh tableflip-start --dir DIR --host 11 [--variant 1.0.0] [--reset] [--keep-binary] [-- APP-ARGS...]
#   sandbox.sh tableflip-stop --dir DIR --host 11
#   sandbox.sh tableflip-build
#
# tableflip-start stops whatever the host runs outside ssh sessions (its nginx, an earlier app),
# puts build variant app-VARIANT at /srv/app/sbin/app (owned by the deploy user, who may replace
# it), and starts it as the deploy user, fully detached (its own session, no terminal, output to
# /srv/app/logs/app.log), from its ABSOLUTE path with /srv/app as working directory: tableflip
# re-executes argv[0] from there on an upgrade. The app writes /run/app.pid once it is ready.
# Without --reset a running app is left alone; --keep-binary starts the file that is at
# /srv/app/sbin/app now (a test or bench put it there) instead of installing the variant. Prints the app's pid. APP-ARGS are passed on
# (e.g. -shutdown-timeout 5s); -listen and -pid-file are always set.
# tableflip-build builds the variants (test/servers/tableflip/build.sh) and prints their folder.

TF_BIN=/srv/app/sbin/app
TF_PID_FILE=/run/app.pid
TF_LOG=/srv/app/logs/app.log

tf_build_dir() {
  local repo
  repo=$(cd "$(dirname "$SELF")/../.." && pwd)
  bash "$repo/test/servers/tableflip/build.sh"
}

# tf_apps: live pids in the host's namespace whose executable is (or was) the live app file
tf_apps() {
  local p exe
  for p in $(pids_in_ns "$HOST_NS"); do
    exe=$(readlink "/proc/$p/exe" 2>/dev/null || true)
    [[ ${exe% (deleted)} == "$TF_BIN" ]] && printf '%s\n' "$p"
  done
  return 0
}

tf_stop() {
  local apps
  apps=$(tf_apps)
  # shellcheck disable=SC2086
  [[ -z $apps ]] || kill -TERM $apps 2>/dev/null || true
  # shellcheck disable=SC2086
  [[ -z $apps ]] || wait_gone 30 $apps || log "apps of host $HID ignored TERM; killing"
  stop_nginx # TERM nginx masters, KILL everything else outside ssh sessions
  rm -f "$H/run/app.pid"
}

tf_install() { # $1 = variant
  local build src
  build=$(tf_build_dir) || die "the Go test server did not build"
  src=$build/app-$1
  [[ -f $src ]] || die "no variant $1 of the Go test server in $build (see test/servers/tableflip/build.sh)"
  mkdir -p "$H/srv-app/sbin" "$H/srv-app/logs"
  cp "$src" "$H/srv-app/sbin/app.tmp"
  chmod 0755 "$H/srv-app/sbin/app.tmp"
  mv -f "$H/srv-app/sbin/app.tmp" "$H/srv-app/sbin/app"
  chown -R "$SB_USER:$SB_USER" "$H/srv-app/sbin" "$H/srv-app/logs"
}

tf_start() { # uses H, HID, SSHD_PID, HTTP_PORT; sets TF_PID
  local addr=$NET.$HID i pid st
  local drop=(setpriv --reuid="$SB_USER" --regid="$SB_USER" --init-groups --)
  command -v setpriv >/dev/null 2>&1 || drop=(runuser -u "$SB_USER" --)
  rm -f "$H/run/app.pid"
  # sh -c ... &: the app is a child of a shell that exits at once (re-parented, as a daemon would be).
  nsenter -t "$SSHD_PID" -m -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/$SB_USER \
    "${drop[@]}" /bin/sh -c 'cd /srv/app || exit 1; bin=$1; shift; setsid "$bin" "$@" </dev/null >>'"$TF_LOG"' 2>&1 &' \
    sh "$TF_BIN" -listen "$addr:$HTTP_PORT" -pid-file "$TF_PID_FILE" "${CMD_ARGS[@]}" ||
    die "the app of host $addr did not start"
  TF_PID=""
  for ((i = 0; i < 500; i++)); do
    pid=$(cat "$H/run/app.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
      st=$(http_get "$addr" "$HTTP_PORT" /health)
      if [[ $st == 200 ]]; then TF_PID=$pid && break; fi
    fi
    sleep 0.02
  done
  if [[ -z $TF_PID ]]; then
    tail -n 20 "$H/srv-app/logs/app.log" >&2 2>/dev/null || true
    die "the app of host $addr did not answer 200 on http://$addr:$HTTP_PORT/health within 10 s"
  fi
}

cmd_tableflip_start() {
  local variant=1.0.0 reset=0 keep=0 rest=()
  while (($#)); do
    case $1 in
      --variant) variant=${2:?--variant needs a value}; shift 2 ;;
      --reset) reset=1; shift ;;
      --keep-binary) keep=1; shift ;;
      --) rest+=("$@"); break ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  [[ $variant =~ ^[A-Za-z0-9._-]+$ ]] || die "--variant must be a plain name, got '$variant'"
  parse_args "${rest[@]}"
  need_host
  need_host_ns
  read_host_ports
  if ((reset == 0)); then
    local pid
    pid=$(cat "$H/run/app.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && [[ -n $(tf_apps) ]]; then
      log "the app of host $HID already runs (pid $pid)"
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  tf_stop
  ((keep)) || tf_install "$variant"
  tf_start
  log "the app of host $HID started (pid $TF_PID, variant $variant)"
  printf '%s\n' "$TF_PID"
}

cmd_tableflip_stop() {
  parse_args "$@"
  need_host
  need_host_ns
  tf_stop
  log "the app of host $HID stopped"
}

cmd_tableflip_build() {
  tf_build_dir
}
