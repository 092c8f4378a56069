/**
 * The watchdog's sh scripts (see watchdog.ts for the files they keep). No user data in them:
 * every value comes in as a positional parameter.
 */
import type { WatchdogPart } from '../supervisors/supervisor.js'

/** Shared sh helpers (no user data: every value comes in as a positional parameter). */
const HELPERS = String.raw`
nap() { sleep 0.2 2>/dev/null || sleep 1; }
readpid() { p=; [ -r "$1" ] && { read -r p < "$1"; } 2>/dev/null; case $p in ''|*[!0-9]*) p=;; esac; echo "$p"; }
alive() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=@{s##*) }
  case $s in Z*|X*) return 1;; esac
  return 0
}
# Field 22 of /proc/PID/stat: when the process started (clock ticks after boot). With the pid it
# names one process for good: a pid used again by another process has another start time.
starttime() {
  s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=@{s##*) }
  set -- $s
  echo "@{20}"
}
is_watchdog() { alive "$1" && case $(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) in *zerodown-watchdog*) return 0;; esac; return 1; }
`.replaceAll('@{', '${')

/**
 * The watchdog itself, around a supervisor's part (which defines revert_processes and
 * processes_ok, see WatchdogPart). Positional parameters (never interpolated):
 *   $1 state dir  $2 token  $3 pid file  $4 old pid  $5 live binary path
 *   $6 kept binary path (the old binary)  $7 sha256 of the old binary
 *   $8 the old server's start time (field 22 of /proc/PID/stat, read by LAUNCH_SCRIPT when arming)
 */
export function watchdogScript(part: WatchdogPart, binaryFirst = false): string {
  return (
    HELPERS +
    String.raw`
d=$1 tok=$2 pf=$3 old=$4 live=$5 prev=$6 sha=$7 oldst=$8
# The old server is its pid AND the start time read when the watchdog was armed: once it is gone
# and its pid names another process, alive says no, so nothing signals that process (or its children).
proc_alive() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=@{s##*) }
  case $s in Z*|X*) return 1;; esac
  return 0
}
alive() { proc_alive "$1" || return 1; [ "$1" != "$old" ] || [ "$(starttime "$1")" = "$oldst" ]; }
trap '' HUP INT
# USR1: the action decided; wake up from the sleep at once (the sleep is waited for, so it is interruptible).
trap ':' USR1
log() { printf '%s watchdog[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >> "$d/log"; }
finish() { printf '%s\n' "$1" > "$d/result"; [ "$(readpid "$d/pid")" = "$$" ] && rm -f -- "$d/pid"; exit 0; }
sha_of() { sha256sum -- "$1" 2>/dev/null | { read -r h _; echo "$h"; }; }
# The old binary back at the live path (the kept file is a hard link of it).
restore_binary() {
  cur=$(sha_of "$live")
  if [ "$cur" != "$sha" ]; then
    kept=$(sha_of "$prev")
    if [ "$kept" = "$sha" ] && mv -f -- "$prev" "$live"; then
      log "put the old binary back at $live (sha256 $sha)"
    else
      log "cannot put the old binary back: $prev has sha256 '$kept', expected $sha"
    fi
  fi
}
` +
    part.script +
    String.raw`
rollback() {
  if proc_alive "$old" && ! alive "$old"; then
    log "pid $old is another process now (started at tick $(starttime "$old"), the old server at $oldst): the old server is gone; pid $old is not signalled"
  fi
  ${binaryFirst ? 'restore_binary; revert_processes' : 'revert_processes; restore_binary'}
  cur=$(sha_of "$live")
  if processes_ok && [ "$cur" = "$sha" ]; then
    log "rolled back: $serving and $live is the old binary"
    finish rolled-back
  fi
  log "rollback incomplete: $seen, live sha256 '$cur'"
  finish "incomplete: $seen_short, live sha256 $cur"
}

# Logged before the pid file is written: the launcher answers "started" once it sees the pid
# file, so whoever reads the log after that finds what the watchdog is armed for.
log "armed for old pid $old (started at tick $oldst; pid file $pf, binary $live): rolls back at $(cat "$d/deadline" 2>/dev/null) unless the action decides first"
echo "$$" > "$d/pid"
bad=0
while :; do
  if [ -d "$d/decided" ]; then
    v=$(cat "$d/verdict" 2>/dev/null)
    log "the action decided: $v; exiting"
    finish "$v"
  fi
  # The deadline is replaced by a rename, never seen half-written; one that stays unreadable for
  # 5 reads in a row (removed, damaged) counts as passed.
  dl=$(cat "$d/deadline" 2>/dev/null)
  case $dl in ''|*[!0-9]*) bad=$((bad + 1)); if [ "$bad" -ge 5 ]; then dl=0; else dl=; fi;; *) bad=0;; esac
  if [ -n "$dl" ] && [ "$(date +%s)" -ge "$dl" ]; then
    if mkdir -- "$d/decided" 2>/dev/null; then
      echo rollback > "$d/verdict"
      log "no word from the action by the deadline: rolling back"
      rollback
    fi
  fi
  sleep 1 &
  wait $! 2>/dev/null
done
`
  ).replaceAll('@{', '${')
}

/**
 * Starts the watchdog detached; idempotent for the same token (a retried start finds it). Exit
 * status 0 only when this run's watchdog runs (a gate for what was sent behind it), 3 when not.
 */
export const LAUNCH_SCRIPT =
  HELPERS +
  String.raw`
wd=$1 d=$2 tok=$3 lease=$4; shift 4
# $1 pid file, $2 old pid, ...: the old server's start time goes last (the watchdog's $8).
st=$(starttime "$2")
case $st in ''|*[!0-9]*) echo "failed: the old server (pid $2) is not running"; exit 3;; esac
mkdir -p -- "$d" || exit 1
p=$(readpid "$d/pid")
if is_watchdog "$p"; then
  if [ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ]; then echo "running $p $(cat -- "$d/deadline" 2>/dev/null) $st"; exit 0; fi
  echo "busy $p $(cat -- "$d/token" 2>/dev/null)"; exit 3
fi
rm -f -- "$d/verdict" "$d/result" "$d/pid"
rmdir -- "$d/decided" 2>/dev/null
if [ -f "$d/log" ] && [ "$(wc -c < "$d/log")" -gt 200000 ]; then tail -n 300 -- "$d/log" > "$d/log.tmp" && mv -f -- "$d/log.tmp" "$d/log"; fi
printf '%s\n' "$tok" > "$d/token"
echo $(( $(date +%s) + lease )) > "$d/deadline"
printf '%s\n' "$wd" > "$d/zerodown-watchdog.sh" || exit 1
if command -v setsid >/dev/null 2>&1; then
  setsid sh "$d/zerodown-watchdog.sh" "$d" "$tok" "$@" "$st" </dev/null >>"$d/log" 2>&1 &
else
  nohup sh "$d/zerodown-watchdog.sh" "$d" "$tok" "$@" "$st" </dev/null >>"$d/log" 2>&1 &
fi
end=$(( $(date +%s) + 10 ))
while [ "$(date +%s)" -le "$end" ]; do
  p=$(readpid "$d/pid")
  if [ -n "$p" ]; then echo "started $p $(cat -- "$d/deadline") $st"; exit 0; fi
  sleep 0.02 2>/dev/null || sleep 1
done
echo "failed: no pid file after 10s"; tail -n 5 -- "$d/log"
exit 3
`.replaceAll('@{', '${')

/**
 * The action decides (confirm | cancel): first come, first served against the watchdog's own
 * deadline. Exit status 0 only when this run decided (a gate for what was sent behind it), 3 when
 * the watchdog's or another run's decision stands.
 */
export const DECIDE_SCRIPT =
  HELPERS +
  String.raw`
d=$1 tok=$2 v=$3
[ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo "not-ours $(cat -- "$d/token" 2>/dev/null)"; exit 3; }
if mkdir -- "$d/decided" 2>/dev/null; then
  printf '%s\n' "$v" > "$d/verdict"
  p=$(readpid "$d/pid")
  is_watchdog "$p" && kill -s USR1 "$p" 2>/dev/null
  end=$(( $(date +%s) + 3 ))
  # Until the process itself is gone (it removes its pid file just before it exits).
  while [ "$(date +%s)" -le "$end" ]; do is_watchdog "$p" || { echo "decided $v"; exit 0; }; sleep 0.02 2>/dev/null || sleep 1; done
  echo "decided $v (still exiting)"; exit 0
fi
r=$(cat -- "$d/result" 2>/dev/null)
echo "too-late $(cat -- "$d/verdict" 2>/dev/null) $([ -n "$r" ] && echo "result=$r" || echo running)"
exit 3
`

export const EXTEND_SCRIPT = String.raw`
d=$1 tok=$2 lease=$3
[ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo not-ours; exit 0; }
[ -d "$d/decided" ] && { echo "decided $(cat -- "$d/verdict" 2>/dev/null)"; exit 0; }
# Written aside and renamed over: the watchdog, which reads it every second, never sees it empty.
echo $(( $(date +%s) + lease )) > "$d/deadline.$$" && mv -f -- "$d/deadline.$$" "$d/deadline" && echo extended
`

export const INSPECT_SCRIPT =
  HELPERS +
  String.raw`
d=$1
[ -d "$d" ] || { echo "absent"; exit 0; }
p=$(readpid "$d/pid")
if is_watchdog "$p"; then echo "running $p"; else echo "stopped $p"; fi
echo "token $(cat -- "$d/token" 2>/dev/null)"
dl=$(cat -- "$d/deadline" 2>/dev/null); case $dl in ''|*[!0-9]*) dl=0;; esac
echo "deadline-in $((dl - $(date +%s)))"
[ -d "$d/decided" ] && echo "decided $(cat -- "$d/verdict" 2>/dev/null)"
[ -e "$d/result" ] && echo "result $(cat -- "$d/result" 2>/dev/null)"
tail -n 12 -- "$d/log" 2>/dev/null | sed 's/^/log /'
`
