/**
 * The hand-written part of the sudo helper (host/zerodown-sudo): what it accepts. Every sub-command
 * checks its arguments against the root-owned config (/etc/zerodown/sudo.conf: the servers'
 * binaries, pid files and release stores) before it runs one fixed command or one of the action's
 * own scripts (render.ts puts those in). Nothing the caller gives is ever run as code: arguments
 * are compared, never evaluated.
 */

/** Where the admin installs the helper, and where it reads its config (both fixed). */
export const HELPER_PATH = '/usr/local/libexec/zerodown/zerodown-sudo'
export const HELPER_CONF = '/etc/zerodown/sudo.conf'

/** Exit status of a refused argument (the action names the helper's config in its message). */
export const REFUSED = 97

export const PRELUDE = String.raw`
set -f
IFS=' 	
'
PATH=/usr/bin:/bin:/usr/sbin:/sbin; export PATH
umask 022
CONF=${HELPER_CONF}
NL='
'
refuse() { printf 'zerodown-sudo: refused: %s\n' "$*" >&2; exit ${REFUSED}; }
broken() { printf 'zerodown-sudo: %s\n' "$*" >&2; exit 96; }

# Absolute, one line, no . or .. segment, no // and no trailing /.
clean_path() {
  case $1 in /?*) ;; *) return 1;; esac
  case $1 in *//*|*/./*|*/../*|*/.|*/..|*/|*"$NL"*) return 1;; esac
  return 0
}
load_config() {
  [ -f "$CONF" ] || broken "no config at $CONF: write one line per server, 'server BINARY PID-FILE [STORE]' (see docs/sudo.md)"
  BINS= PIDS= STORES=
  while IFS=' 	' read -r kw a b c extra; do
    case $kw in ''|'#'*) continue;; esac
    { [ "$kw" = server ] && [ -n "$b" ] && [ -z "$extra" ]; } ||
      broken "$CONF: cannot read the line '$kw $a $b $c': each line is 'server BINARY PID-FILE [STORE]'"
    [ -n "$c" ] || c=/var/lib/zerodown/@{a##*/}
    for p in "$a" "$b" "$c"; do clean_path "$p" || broken "$CONF: '$p' is not a clean absolute path"; done
    BINS="$BINS$a$NL" PIDS="$PIDS$b$NL" STORES="$STORES$c$NL"
  done < "$CONF"
  [ -n "$BINS" ] || broken "$CONF names no server: add 'server BINARY PID-FILE [STORE]'"
  IFS=$NL
}
# Paths the sub-command works on as root (guard), checked all at once before it runs (verify):
# the config, and every existing folder from / down to each path (the path itself when it is a
# folder), must be owned by root and writable by root alone, so that no other user can have
# planted a link or a file there. One stat for all: a call costs one fork, not one per folder.
G=
guard() { G="$G$1$NL"; }
verify() {
  set -- "$CONF"
  for p in "$CONF" $G; do
    d=$p
    [ -d "$d" ] || d=@{d%/*}
    while [ -n "$d" ]; do
      [ ! -e "$d" ] || set -- "$@" "$d"
      d=@{d%/*}
    done
  done
  out=$(stat -c '%u %a %n' -- "$@" / 2>/dev/null) || refuse "cannot read the owners of $*"
  for l in $out; do
    m=@{l#* }
    [ "@{l%% *}" = 0 ] && [ $(( 0@{m%% *} & 022 )) = 0 ] ||
      refuse "@{m#* } must be owned by root and writable by root alone (chown root: and chmod go-w it): the helper works as root there"
  done
}
# Runs the fixed command once the paths are checked.
go() { verify; exec "$@"; }
in_list() { case "$NL$2" in *"$NL$1$NL"*) return 0;; esac; return 1; }
# $1 is the staging (new) or kept (prev) file of the binary $2: .NAME.zerodown-new|prev beside it.
side_is() { [ "$1" = "@{2%/*}/.@{2##*/}.zerodown-$3" ]; }
is_bin() { in_list "$1" "$BINS"; }
# $1 is the staging (new) or kept (prev) file of a configured binary; sets bin to that binary.
is_side() { for bin in $BINS; do side_is "$1" "$bin" "$2" && return 0; done; return 1; }
is_store() { in_list "$1" "$STORES"; }
under_store() { clean_path "$1" || return 1; for s in $STORES; do case $1 in "$s"/?*) return 0;; esac; done; return 1; }
store_sub() { for s in $STORES; do [ "$1" = "$s/$2" ] && return 0; done; return 1; }
num() { case $1 in ''|*[!0-9]*) return 1;; esac; [ @{#1} -le 12 ]; }
token() { case $1 in ''|*[!A-Za-z0-9.-]*) return 1;; esac; [ @{#1} -le 200 ]; }
sha() { [ @{#1} = 64 ] && case $1 in *[!0-9a-f]*) return 1;; esac; }
# A pid that runs a configured binary (a file put back or replaced reads "(deleted)").
server_pid() {
  num "$1" && [ "$1" -gt 1 ] || return 1
  e=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  e=@{e% (deleted)}
  is_bin "$e" || is_side "$e" prev
}

want_path() { clean_path "$1" || refuse "'$1' is not a clean absolute path"; }
want_bin() { want_path "$1"; is_bin "$1" || refuse "$1 is not a binary named in $CONF"; guard "$1"; }
want_pidfile() { want_path "$1"; in_list "$1" "$PIDS" || refuse "$1 is not a pid file named in $CONF"; guard "$1"; }
want_store() { want_path "$1"; is_store "$1" || refuse "$1 is not a release store named in $CONF"; guard "$1"; }
want_in_store() { under_store "$1" || refuse "$1 is not inside a release store named in $CONF"; guard "$1"; }
want_store_sub() { want_path "$1"; store_sub "$1" "$2" || refuse "$1 is not the $2 of a release store named in $CONF"; guard "$1"; }
want_pid() { server_pid "$1" || refuse "pid $1 does not run a binary named in $CONF"; }
want_num() { num "$1" || refuse "'$1' is not a number"; }
want_token() { token "$1" || refuse "'$1' is not a run token"; }
want_sha() { sha "$1" || refuse "'$1' is not a sha256"; }
want_count() { [ "$1" = "$2" ] || refuse "$sub takes $2 arguments, not $1"; }
want_staging() { want_path "$1"; is_side "$1" new || refuse "$1 is not the staging file of a binary named in $CONF"; guard "$1"; }
# Words of a running master's own command line (the config test runs with exactly those). nginx
# rewrites its command line into its title ("nginx: master process ARGS", padded with spaces), so
# a word is found between spaces there: an argument holding spaces (-g '...') is found whole.
master_arg() {
  for pf in $PIDS; do
    p=; { read -r p < "$pf"; } 2>/dev/null || continue
    server_pid "$p" || continue
    t=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)
    case " $t " in *" $1 "*) return 0;; esac
  done
  return 1
}
# The upload in /tmp, opened once: it must be a regular file of the user who ran sudo.
copy_upload() {
  [ -f "$1" ] && [ -r "$1" ] || refuse "$1 is not a readable file"
  exec 3< "$1"
  s=$(stat -L -c '%u %F' "/proc/$$/fd/3") || refuse "cannot stat $1"
  [ "$s" = "@{SUDO_UID:-x} regular file" ] || [ "$s" = "@{SUDO_UID:-x} regular empty file" ] ||
    refuse "$1 is not a regular file of the user who ran sudo"
  verify
  rm -f -- "$2" || exit 1
  set -C
  cat <&3 > "$2"
}
`.replaceAll('@{', '${')

/**
 * The sub-commands: each checks its arguments, then runs one fixed command, or `run NAME` (one of
 * the action's scripts, see render.ts). `sub` is the sub-command, "$@" its arguments.
 */
export const DISPATCH = String.raw`
case $sub in
  rm)
    want_count $# 1; want_path "$1"
    is_side "$1" new || is_side "$1" prev || under_store "$1" || { pf=@{1%.oldbin}; [ "$pf.oldbin" = "$1" ] && in_list "$pf" "$PIDS"; } ||
      refuse "$1 is not a staging, kept, .oldbin or store file of a server named in $CONF"
    guard "$1"
    go rm -f -- "$1";;
  rm-release)
    want_count $# 1; want_path "$1"
    ok=; for s in $STORES; do case $1 in "$s"/releases/*) sha "@{1#"$s"/releases/}" && ok=1;; esac; done
    [ -n "$ok" ] || refuse "$1 is not a release of a store named in $CONF"
    guard "$1"
    go rm -rf -- "$1";;
  rmdir) want_count $# 1; want_in_store "$1"; go rmdir -- "$1";;
  mkdir) want_count $# 1; is_store "$1" || want_in_store "$1"; guard "$1"; go mkdir -p -- "$1";;
  cp)
    want_count $# 2; want_path "$1"; want_path "$2"
    if is_side "$2" new; then
      guard "$2"
      case $1 in
        /tmp/zerodown-upload-????????????????) copy_upload "$1" "$2"; exit $?;;
      esac
      under_store "$1" || refuse "$1 is not an upload or a stored release"
      guard "$1"
    else
      want_in_store "$2"
      is_bin "$1" || is_side "$1" new || is_side "$1" prev || refuse "$1 is not a binary named in $CONF"
      guard "$1"
    fi
    go cp -- "$1" "$2";;
  ln)
    want_count $# 2; want_path "$1"; want_in_store "$2"
    is_bin "$1" || is_side "$1" new || is_side "$1" prev || refuse "$1 is not a binary named in $CONF"
    guard "$1"
    go ln -- "$1" "$2";;
  ln-keep)
    want_count $# 2; want_bin "$1"
    side_is "$2" "$1" prev || refuse "$2 is not the kept file of $1"
    go ln -f -- "$1" "$2";;
  mv)
    want_count $# 2; want_path "$1"; want_path "$2"
    if is_bin "$2"; then
      side_is "$1" "$2" new || side_is "$1" "$2" prev || refuse "only the staging or kept file of $2 may take its place"
    else
      under_store "$1" && under_store "$2" || refuse "$1 -> $2: not a binary or store file named in $CONF"
    fi
    guard "$1"; guard "$2"
    go mv -f -- "$1" "$2";;
  chmod) want_count $# 1; want_path "$1"; is_side "$1" new || want_in_store "$1"; guard "$1"; go chmod 0755 -- "$1";;
  sha256)
    want_count $# 1; want_path "$1"
    case $1 in /proc/*/exe) p=@{1#/proc/}; want_num "@{p%/exe}";;
      *) is_bin "$1" || is_side "$1" new || is_side "$1" prev || under_store "$1" || refuse "$1 is not a file of a server named in $CONF"
        guard "$1";;
    esac
    go sha256sum -- "$1";;
  head2) want_count $# 1; want_bin "$1"; go head -c 2 -- "$1";;
  kill)
    want_count $# 2
    case $1 in USR2|WINCH|QUIT|HUP|TERM|KILL) ;; *) refuse "signal '$1' is not one of USR2 WINCH QUIT HUP TERM KILL";; esac
    want_pid "$2"
    go kill -s "$1" -- "$2";;
  version)
    want_count $# 1; want_path "$1"
    case $1 in /proc/*/exe) p=@{1#/proc/}; want_pid "@{p%/exe}";;
      *) is_bin "$1" || is_side "$1" new || refuse "$1 is not a binary named in $CONF"
        guard "$1";;
    esac
    go "$1" -v;;
  config-test)
    [ $# -ge 1 ] || refuse "config-test needs the staging file"
    want_staging "$1"; f=$1; shift
    for a; do master_arg "$a" || refuse "'$a' is not an argument of a running master named in $CONF"; done
    go "$f" -T "$@";;
  lock-acquire)
    [ $# -ge 3 ] || refuse "lock-acquire needs 3 arguments"; want_store_sub "$1" lock; want_token "$2"; want_num "$3"
    for a; do case $a in *"$NL"*) refuse "an owner line holds a line break";; esac; done
    run lock_acquire "$@";;
  lock-renew) want_count $# 2; want_store_sub "$1" lock; want_token "$2"; run lock_renew "$@";;
  lock-release) want_count $# 2; want_store_sub "$1" lock; want_token "$2"; run lock_release "$@";;
  lock-inspect) want_count $# 1; want_store_sub "$1" lock; run lock_inspect "$@";;
  watchdog-launch)
    want_count $# 8; want_store_sub "$1" watchdog; want_token "$2"; want_num "$3"; want_pidfile "$4"; want_pid "$5"
    want_bin "$6"; side_is "$7" "$6" prev || refuse "$7 is not the kept file of $6"; want_sha "$8"
    run watchdog_launch "$@";;
  watchdog-decide)
    want_count $# 3; want_store_sub "$1" watchdog; want_token "$2"
    case $3 in confirm|cancel) ;; *) refuse "'$3' is not confirm or cancel";; esac
    run watchdog_decide "$@";;
  watchdog-extend) want_count $# 3; want_store_sub "$1" watchdog; want_token "$2"; want_num "$3"; run watchdog_extend "$@";;
  watchdog-inspect) want_count $# 1; want_store_sub "$1" watchdog; run watchdog_inspect "$@";;
  nginx-probe) [ $# -ge 1 ] || refuse "nginx-probe needs the pid file"; want_pidfile "$1"; for a; do [ "$a" = "$1" ] || want_num "$a"; done; run nginx_probe "$@";;
  running-exe) want_count $# 1; want_pidfile "$1"; run running_exe "$@";;
  trust-probe)
    want_count $# 6; want_pidfile "$1"; want_num "$2"; want_bin "$3"; side_is "$4" "$3" new || refuse "$4 is not the staging file of $3"
    want_store "$5"
    case $6 in '') ;; [.-]*|*[!A-Za-z0-9_.-]*) refuse "'$6' is not a user name";; esac
    run trust_probe "$@";;
  config-times) [ $# -ge 1 ] || refuse "config-times needs a pid"; want_num "$1"; for a; do [ "$a" = "$1" ] || want_path "$a"; done; run config_times "$@";;
  store-rebuild) want_count $# 1; want_store "$1"; run store_rebuild "$@";;
  store-write) want_count $# 3; want_in_store "$2"; want_in_store "$3"; run store_write "$@";;
  read-file) want_count $# 1; want_in_store "$1"; run read_file "$@";;
  *) refuse "'$sub' is not a sub-command of zerodown-sudo";;
esac
`.replaceAll('@{', '${')
