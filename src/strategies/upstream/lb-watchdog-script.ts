/**
 * The load balancer's watchdog, as POSIX sh (see lb-watchdog.ts for what it is for). No user data
 * in the text: every value comes in as a positional parameter. Files in its dir `$d`, which the
 * launch creates afresh (never through a link):
 *   pid, token, deadline   the running watchdog, its run, when it acts (epoch seconds, LB clock)
 *   probes                 "LINE ADDRESS": the lines of the managed file that each server the run
 *                          changed occupies (a line goes back only when its servers answer)
 *   next                   sha256 of the text the run is about to write (a write the run did not
 *                          live to record in `written` is still its own)
 *   decided/, verdict      who decided first (mkdir is atomic): disarm | superseded | restore
 *   result, log            what it did (kept as the note; every other file goes when it ends)
 */

const HELPERS = String.raw`
readpid() { p=; [ -f "$1" ] && [ ! -L "$1" ] && { read -r p < "$1"; } 2>/dev/null; case $p in ''|*[!0-9]*) p=;; esac; echo "$p"; }
starttime() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=@{s##*) }
  set -- $s
  case $1 in Z*|X*) return 1;; esac
  echo "@{20}"
}
is_lbwd() { starttime "$1" >/dev/null && case $(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) in *zerodown-lb-watchdog*) return 0;; esac; return 1; }
waitgone() { end=$(( $(date +%s) + $2 )); while is_lbwd "$1" && [ "$(date +%s)" -le "$end" ]; do sleep 0.05 2>/dev/null || sleep 1; done; ! is_lbwd "$1"; }
`.replaceAll('@{', '${')

/**
 * The watchdog. $1 its dir  $2 token  $3 managed file  $4 the action's state dir (original,
 * written)  $5 master pid  $6 its start time  $7 the master's executable  $8... its arguments.
 */
export const LB_WATCHDOG_SCRIPT =
  HELPERS +
  String.raw`
d=$1 tok=$2 f=$3 sd=$4 mpid=$5 mstart=$6 exe=$7; shift 7
trap '' HUP INT
trap ':' USR1
log() { printf '%s lb-watchdog[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >> "$d/log"; }
finish() {
  printf '%s\n' "$1" > "$d/result"
  rm -f -- "$d/pid" "$d/deadline" "$d/probes" "$d/next" "$d/replaced" "$d/zerodown-lb-watchdog.sh"
  exit 0
}
sha() { [ -f "$1" ] && [ ! -L "$1" ] && sha256sum < "$1" | cut -d' ' -f1; }
# Does the server answer HTTP at the address nginx sends to, from here? (1xx-4xx: yes; 5xx, no answer: no)
probe() {
  case $1 in unix:*) return 0;; esac
  if command -v curl >/dev/null 2>&1; then
    c=$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 3 --max-time 5 -- "http://$1/" 2>/dev/null)
  elif command -v wget >/dev/null 2>&1; then
    c=$(wget -S -q -O /dev/null -T 5 -- "http://$1/" 2>&1 | awk '$1 ~ /^HTTP\// {c=$2} END {print c}')
  else
    log "no curl or wget here: $1 goes back unprobed (nginx's max_fails/fail_timeout take it out if it fails)"
    return 0
  fi
  case $c in [1-4][0-9][0-9]) return 0;; esac
  log "$1 does not answer HTTP from the load balancer (status '$c'): it stays as the run left it"
  return 1
}
# Puts what it replaced back (the test failed, or the master is gone).
unreplace() {
  t=$(mktemp "$(dirname -- "$f")/.$(basename -- "$f").zerodown-XXXXXX") && cat -- "$d/replaced" > "$t" &&
    chmod --reference="$f" -- "$t" && { chown --reference="$f" -- "$t" 2>/dev/null || :; } && mv -fT -- "$t" "$f"
}
# Called with the master's arguments (a function's "$@" is its own).
restore() {
  [ "$(starttime "$mpid")" = "$mstart" ] || { log "nginx master $mpid is not the one the run worked with (gone or restarted): the file is left as it is"; finish "not-done: master changed"; }
  for x in "$f" "$sd/original" "$sd/written"; do
    [ -L "$x" ] && { log "$x is a symbolic link: not followed, nothing done"; finish "not-done: symlink $x"; }
  done
  [ -f "$sd/original" ] || { log "no copy of the file as the run found it: nothing to restore"; finish "nothing: no original"; }
  cur=$(sha "$f") orig=$(sha "$sd/original")
  [ -f "$f" ] || { log "$f is gone: nothing done"; finish "not-done: no file"; }
  if [ "$cur" = "$orig" ]; then rm -f -- "$sd/original"; log "the file is already as the run found it"; finish restored; fi
  if [ "$cur" != "$(sha "$sd/written")" ] && [ "$cur" != "$(cat -- "$d/next" 2>/dev/null)" ]; then
    log "$f was changed by someone else since the run last wrote it (sha256 $cur): left as it is"
    finish "not-done: changed by someone else"
  fi
  keep=' ' down=
  while read -r ln addr; do
    case $ln in ''|*[!0-9]*) continue;; esac
    case " $down " in *" $addr "*) keep="$keep$ln "; continue;; esac
    probe "$addr" || { down="$down $addr"; keep="$keep$ln "; }
  done < "$d/probes"
  t=$(mktemp "$(dirname -- "$f")/.$(basename -- "$f").zerodown-XXXXXX") || finish "not-done: cannot write beside $f"
  if [ "$keep" = ' ' ]; then
    cat -- "$sd/original" > "$t"
  elif [ "$(wc -l < "$sd/original")" = "$(wc -l < "$f")" ]; then
    awk -v keep="$keep" 'NR == FNR { o[FNR] = $0; next } { if (index(keep, " " FNR " ")) print; else print o[FNR] }' "$sd/original" "$f" > "$t"
  else
    rm -f -- "$t"
    log "the file has another number of lines than as the run found it: cannot put back only the servers that answer; left as it is"
    finish "not-done: kept$down down"
  fi
  cat -- "$f" > "$d/replaced"
  chmod --reference="$f" -- "$t"; chown --reference="$f" -- "$t" 2>/dev/null
  mv -fT -- "$t" "$f" || { rm -f -- "$t"; finish "not-done: cannot replace $f"; }
  if ! out=$("$exe" -t "$@" 2>&1); then
    unreplace
    log "nginx -t failed with the restored file, so what it replaced is back and nothing was reloaded: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
    finish "not-done: nginx -t failed"
  fi
  [ "$(starttime "$mpid")" = "$mstart" ] || { unreplace; finish "not-done: master changed"; }
  kill -s HUP "$mpid" || { unreplace; finish "not-done: HUP failed"; }
  w=$(mktemp "$sd/.written.XXXXXX") && cat -- "$f" > "$w" && mv -fT -- "$w" "$sd/written"
  if [ -z "$down" ]; then
    rm -f -- "$sd/original"
    log "no word from the run by the deadline: $f is as the run found it; nginx -t passed; reloaded (HUP $mpid)"
    finish restored
  fi
  log "no word from the run by the deadline: $f is as the run found it except$down, left as the run left them; nginx -t passed; reloaded"
  finish "restored-partly:$down"
}

# Logged before the pid file, which the launcher waits for: the log names what it is armed for.
log "armed for nginx master $mpid and $f: restores the file as the run found it at $(cat -- "$d/deadline" 2>/dev/null) unless the run renews or disarms it"
echo "$$" > "$d/pid"
bad=0
while :; do
  if [ -d "$d/decided" ]; then
    v=$(cat -- "$d/verdict" 2>/dev/null)
    [ "$v" = disarm ] && { rm -rf -- "$d"; exit 0; }
    log "decided by another: $v"
    finish "$v"
  fi
  # Replaced by a rename, never seen half-written; unreadable for 5 reads in a row counts as passed.
  dl=$(cat -- "$d/deadline" 2>/dev/null)
  case $dl in ''|*[!0-9]*) bad=$((bad + 1)); if [ "$bad" -ge 5 ]; then dl=0; else dl=; fi;; *) bad=0;; esac
  if [ -n "$dl" ] && [ "$(date +%s)" -ge "$dl" ] && mkdir -- "$d/decided" 2>/dev/null; then
    echo restore > "$d/verdict"
    restore "$@"
  fi
  sleep 1 &
  wait $! 2>/dev/null
done
`.replaceAll('@{', '${')

/**
 * Starts the watchdog detached, in a dir made afresh. $1 script  $2 dir  $3 token  $4 lease (s)
 * $5 managed file  $6 state dir  $7 master pid  $8 executable  $9... arguments. A watchdog of
 * another run (this run holds the lock now, so that run is gone) is superseded, or waited for when
 * it already acts. Prints `started PID DEADLINE` or `running PID DEADLINE` (same token), or `failed ...`.
 */
export const LB_LAUNCH_SCRIPT =
  HELPERS +
  String.raw`
wd=$1 d=$2 tok=$3 lease=$4 f=$5 sd=$6 mpid=$7; shift 7
[ -L "$sd" ] || [ -L "$d" ] && { echo "failed: $sd or $d is a symbolic link"; exit 0; }
p=$(readpid "$d/pid")
if is_lbwd "$p"; then
  if [ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ]; then echo "running $p $(cat -- "$d/deadline")"; exit 0; fi
  if mkdir -- "$d/decided" 2>/dev/null; then echo superseded > "$d/verdict"; kill -s USR1 "$p" 2>/dev/null; fi
  waitgone "$p" 60 || { echo "failed: the watchdog $p of another run is still acting"; exit 0; }
fi
mstart=$(starttime "$mpid") || { echo "failed: no process $mpid"; exit 0; }
mkdir -p -- "$sd" && rm -rf -- "$d" && mkdir -m 700 -- "$d" || { echo "failed: cannot create $d"; exit 0; }
printf '%s\n' "$tok" > "$d/token"
: > "$d/probes"
echo $(( $(date +%s) + lease )) > "$d/deadline"
printf '%s\n' "$wd" > "$d/zerodown-lb-watchdog.sh"
if command -v setsid >/dev/null 2>&1; then
  setsid sh "$d/zerodown-lb-watchdog.sh" "$d" "$tok" "$f" "$sd" "$mpid" "$mstart" "$@" </dev/null >>"$d/log" 2>&1 &
else
  nohup sh "$d/zerodown-lb-watchdog.sh" "$d" "$tok" "$f" "$sd" "$mpid" "$mstart" "$@" </dev/null >>"$d/log" 2>&1 &
fi
end=$(( $(date +%s) + 10 ))
while [ "$(date +%s)" -le "$end" ]; do
  p=$(readpid "$d/pid")
  [ -n "$p" ] && { echo "started $p $(cat -- "$d/deadline")"; exit 0; }
  sleep 0.02 2>/dev/null || sleep 1
done
echo "failed: no pid file after 10s: $(tail -n 3 -- "$d/log" | tr '\n' ' ')"
`

/** The run's word before each write: where the changed servers sit, and the sha of the next text. $1 dir $2 token $3 next sha $4 probes. */
export const LB_PLAN_SCRIPT = String.raw`
d=$1 tok=$2
[ -d "$d" ] && [ ! -L "$d" ] && [ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo not-ours; exit 0; }
[ -d "$d/decided" ] && { echo "decided $(cat -- "$d/verdict" 2>/dev/null)"; exit 0; }
# Each renamed into place, as the deadline: a restore that starts meanwhile reads whole files.
printf '%s\n' "$3" > "$d/next.$$" && mv -f -- "$d/next.$$" "$d/next" &&
  printf '%s' "$4" > "$d/probes.$$" && mv -f -- "$d/probes.$$" "$d/probes" && echo planned
`

/** Renewal: the deadline moves to now + $3 seconds. */
export const LB_EXTEND_SCRIPT = String.raw`
d=$1 tok=$2 lease=$3
[ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo not-ours; exit 0; }
[ -d "$d/decided" ] && { echo "decided $(cat -- "$d/verdict" 2>/dev/null)"; exit 0; }
echo $(( $(date +%s) + lease )) > "$d/deadline.$$" && mv -f -- "$d/deadline.$$" "$d/deadline" && echo extended
`

/**
 * The run (or its post step) decides: the watchdog stands down and its dir goes. When the watchdog
 * decided first, waits (bounded) until it has finished, and prints what it did.
 */
export const LB_DISARM_SCRIPT =
  HELPERS +
  String.raw`
d=$1 tok=$2
[ -d "$d" ] && [ ! -L "$d" ] || { echo absent; exit 0; }
[ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo "not-ours"; exit 0; }
p=$(readpid "$d/pid")
if mkdir -- "$d/decided" 2>/dev/null; then
  echo disarm > "$d/verdict"
  is_lbwd "$p" && kill -s USR1 "$p" 2>/dev/null
  waitgone "$p" 5
  rm -rf -- "$d"
  echo disarmed; exit 0
fi
waitgone "$p" 60 || { echo "acting $p"; exit 0; }
echo "acted $(cat -- "$d/result" 2>/dev/null)"
`

/**
 * A run that took the lock over stands the watchdog of the run it replaces down before it reads
 * the file: that watchdog must never put its file over the new run's. $1 dir  $2 the new run's
 * token. Prints `absent`, `ours`, `stopped` (not running), `superseded TOKEN`, `acted RESULT`
 * (it was acting: waited for), or `acting PID` (still acting after 60 s).
 */
export const LB_SUPERSEDE_SCRIPT =
  HELPERS +
  String.raw`
d=$1 tok=$2
[ -d "$d" ] && [ ! -L "$d" ] || { echo absent; exit 0; }
old=$(cat -- "$d/token" 2>/dev/null)
[ "$old" = "$tok" ] && { echo ours; exit 0; }
p=$(readpid "$d/pid")
is_lbwd "$p" || { echo stopped; exit 0; }
if mkdir -- "$d/decided" 2>/dev/null; then
  echo superseded > "$d/verdict"
  kill -s USR1 "$p" 2>/dev/null
  waitgone "$p" 60 || { echo "acting $p"; exit 0; }
  echo "superseded $old"; exit 0
fi
waitgone "$p" 60 || { echo "acting $p"; exit 0; }
echo "acted $(cat -- "$d/result" 2>/dev/null)"
`

export const LB_INSPECT_SCRIPT =
  HELPERS +
  String.raw`
d=$1
[ -d "$d" ] || { echo absent; exit 0; }
p=$(readpid "$d/pid")
if is_lbwd "$p"; then echo "running $p"; else echo "stopped"; fi
echo "token $(cat -- "$d/token" 2>/dev/null)"
[ -e "$d/result" ] && echo "result $(cat -- "$d/result" 2>/dev/null)"
tail -n 8 -- "$d/log" 2>/dev/null | sed 's/^/log /'
`
