/**
 * The dead man's switch: a small POSIX sh process started on the host before the swap, detached
 * from the SSH session (setsid, else nohup). Unless the action decides first (confirm before QUIT,
 * cancel after its own rollback), at its deadline it rolls the host back by itself: HUP to the
 * old master when it has no accepting workers, QUIT/TERM/KILL to the new master, wait for the old
 * master to take its pid file back, and put the kept binary back at the live path. A runner that
 * vanishes right after USR2 thus leaves the old version serving, with its binary in place.
 *
 * Files in the state dir (one watchdog per host at a time, under the deploy lock):
 *   pid       the running watchdog's pid (removed when it exits)
 *   token     the run that started it
 *   deadline  epoch seconds (host clock) after which it rolls back; the action may move it
 *   decided/  created by whoever decides first (mkdir is atomic): the action or the watchdog
 *   verdict   confirm | cancel (the action) or rollback (the watchdog)
 *   result    what the watchdog did: confirm, cancel, nothing, rolled-back, incomplete: ...
 *   log       what it did, with timestamps (kept short)
 */
import { posix } from 'node:path'
import type { Host } from '../host/host.js'

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
is_watchdog() { alive "$1" && case $(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) in *zerodown-watchdog*) return 0;; esac; return 1; }
`.replaceAll('@{', '${')

/**
 * The watchdog itself. Positional parameters (never interpolated):
 *   $1 state dir  $2 token  $3 pid file  $4 old master pid  $5 live binary path
 *   $6 kept binary path (the old binary)  $7 sha256 of the old binary
 */
export const WATCHDOG_SCRIPT =
  HELPERS +
  String.raw`
d=$1 tok=$2 pf=$3 old=$4 live=$5 prev=$6 sha=$7
trap '' HUP INT
# USR1: the action decided; wake up from the sleep at once (the sleep is waited for, so it is interruptible).
trap ':' USR1
log() { printf '%s watchdog[%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$$" "$*" >> "$d/log"; }
finish() { printf '%s\n' "$1" > "$d/result"; [ "$(readpid "$d/pid")" = "$$" ] && rm -f -- "$d/pid"; exit 0; }
# Children of $1, one "<pid> <kind>" per line; kind: worker (accepting), draining, master (anything else).
kids() {
  want=$1
  for f in /proc/[0-9]*/stat; do
    s=; { read -r s < "$f"; } 2>/dev/null || continue
    c=@{f#/proc/}; c=@{c%/stat}
    s=@{s##*) }
    set -- $s
    [ "$2" = "$want" ] || continue
    case $1 in Z*|X*) continue;; esac
    t=$(tr '\0' ' ' < "/proc/$c/cmdline" 2>/dev/null)
    case $t in
      'nginx: worker process is shutting down'*) echo "$c draining";;
      'nginx: worker process'*|'nginx: cache manager'*|'nginx: cache loader'*) echo "$c worker";;
      *) echo "$c master";;
    esac
  done
}
of_kind() { kids "$1" | { o=; while read -r c k; do [ "$k" = "$2" ] && o="$o@{o:+ }$c"; done; echo "$o"; }; }
sha_of() { sha256sum -- "$1" 2>/dev/null | { read -r h _; echo "$h"; }; }

rollback() {
  if ! alive "$old"; then
    log "the old master $old is gone: the upgrade went through (or the server was restarted); nothing to roll back"
    finish nothing
  fi
  # 1. The old master serves again: HUP brings its workers back when WINCH took them away.
  if [ -z "$(of_kind "$old" worker)" ]; then
    if kill -s HUP "$old" 2>/dev/null; then log "sent HUP to the old master $old: its workers return"; fi
    i=0; while [ $i -lt 50 ] && [ -z "$(of_kind "$old" worker)" ]; do nap; i=$((i+1)); done
    nap; nap
  fi
  # 2. Stop the new master (a child of the old one that is not a worker): QUIT, then TERM, then KILL.
  for sig in QUIT TERM KILL; do
    news=$(of_kind "$old" master)
    [ -n "$news" ] || break
    # shellcheck disable=SC2086
    kill -s $sig $news 2>/dev/null && log "sent $sig to the new master $news"
    case $sig in QUIT) n=50;; *) n=25;; esac
    i=0; while [ $i -lt $n ] && [ -n "$(of_kind "$old" master)" ]; do nap; i=$((i+1)); done
  done
  # 3. When the new master exits the old one takes its pid file back (.oldbin goes away).
  i=0; while [ $i -lt 50 ]; do
    [ "$(readpid "$pf")" = "$old" ] && [ ! -e "$pf.oldbin" ] && break
    nap; i=$((i+1))
  done
  # 4. The old binary back at the live path (the kept file is a hard link of it).
  cur=$(sha_of "$live")
  if [ "$cur" != "$sha" ]; then
    kept=$(sha_of "$prev")
    if [ "$kept" = "$sha" ] && mv -f -- "$prev" "$live"; then
      log "put the old binary back at $live (sha256 $sha)"
    else
      log "cannot put the old binary back: $prev has sha256 '$kept', expected $sha"
    fi
  fi
  w=$(of_kind "$old" worker); n=$(of_kind "$old" master); p=$(readpid "$pf"); cur=$(sha_of "$live")
  if [ -n "$w" ] && [ -z "$n" ] && [ "$p" = "$old" ] && [ ! -e "$pf.oldbin" ] && [ "$cur" = "$sha" ]; then
    log "rolled back: the old master $old serves with workers $w and $live is the old binary"
    finish rolled-back
  fi
  log "rollback incomplete: pid file '$p', .oldbin $([ -e "$pf.oldbin" ] && echo present || echo none), old workers '$w', new master '$n', live sha256 '$cur'"
  finish "incomplete: pid file $p, old workers $w, new master $n, live sha256 $cur"
}

echo "$$" > "$d/pid"
log "armed for old master $old (pid file $pf, binary $live): rolls back at $(cat "$d/deadline" 2>/dev/null) unless the action decides first"
while :; do
  if [ -d "$d/decided" ]; then
    v=$(cat "$d/verdict" 2>/dev/null)
    log "the action decided: $v; exiting"
    finish "$v"
  fi
  dl=$(cat "$d/deadline" 2>/dev/null); case $dl in ''|*[!0-9]*) dl=0;; esac
  if [ "$(date +%s)" -ge "$dl" ]; then
    if mkdir -- "$d/decided" 2>/dev/null; then
      echo rollback > "$d/verdict"
      log "no word from the action by the deadline: rolling back"
      rollback
    fi
  fi
  sleep 1 &
  wait $! 2>/dev/null
done
`.replaceAll('@{', '${')

/** Starts the watchdog detached; idempotent for the same token (a retried start finds it). */
const LAUNCH_SCRIPT =
  HELPERS +
  String.raw`
wd=$1 d=$2 tok=$3 lease=$4; shift 4
mkdir -p -- "$d" || exit 1
p=$(readpid "$d/pid")
if is_watchdog "$p"; then
  if [ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ]; then echo "running $p $(cat -- "$d/deadline" 2>/dev/null)"; exit 0; fi
  echo "busy $p $(cat -- "$d/token" 2>/dev/null)"; exit 0
fi
rm -f -- "$d/verdict" "$d/result" "$d/pid"
rmdir -- "$d/decided" 2>/dev/null
if [ -f "$d/log" ] && [ "$(wc -c < "$d/log")" -gt 200000 ]; then tail -n 300 -- "$d/log" > "$d/log.tmp" && mv -f -- "$d/log.tmp" "$d/log"; fi
printf '%s\n' "$tok" > "$d/token"
echo $(( $(date +%s) + lease )) > "$d/deadline"
printf '%s\n' "$wd" > "$d/zerodown-watchdog.sh" || exit 1
if command -v setsid >/dev/null 2>&1; then
  setsid sh "$d/zerodown-watchdog.sh" "$d" "$tok" "$@" </dev/null >>"$d/log" 2>&1 &
else
  nohup sh "$d/zerodown-watchdog.sh" "$d" "$tok" "$@" </dev/null >>"$d/log" 2>&1 &
fi
end=$(( $(date +%s) + 10 ))
while [ "$(date +%s)" -le "$end" ]; do
  p=$(readpid "$d/pid")
  if [ -n "$p" ]; then echo "started $p $(cat -- "$d/deadline")"; exit 0; fi
  sleep 0.02 2>/dev/null || sleep 1
done
echo "failed: no pid file after 10s"; tail -n 5 -- "$d/log"
`.replaceAll('@{', '${')

/** The action decides (confirm | cancel): first come, first served against the watchdog's own deadline. */
const DECIDE_SCRIPT =
  HELPERS +
  String.raw`
d=$1 tok=$2 v=$3
[ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo "not-ours $(cat -- "$d/token" 2>/dev/null)"; exit 0; }
if mkdir -- "$d/decided" 2>/dev/null; then
  printf '%s\n' "$v" > "$d/verdict"
  p=$(readpid "$d/pid")
  is_watchdog "$p" && kill -s USR1 "$p" 2>/dev/null
  end=$(( $(date +%s) + 3 ))
  while [ "$(date +%s)" -le "$end" ]; do is_watchdog "$(readpid "$d/pid")" || { echo "decided $v"; exit 0; }; sleep 0.02 2>/dev/null || sleep 1; done
  echo "decided $v (still exiting)"; exit 0
fi
r=$(cat -- "$d/result" 2>/dev/null)
echo "too-late $(cat -- "$d/verdict" 2>/dev/null) $([ -n "$r" ] && echo "result=$r" || echo running)"
`

const EXTEND_SCRIPT = String.raw`
d=$1 tok=$2 lease=$3
[ "$(cat -- "$d/token" 2>/dev/null)" = "$tok" ] || { echo not-ours; exit 0; }
[ -d "$d/decided" ] && { echo "decided $(cat -- "$d/verdict" 2>/dev/null)"; exit 0; }
echo $(( $(date +%s) + lease )) > "$d/deadline" && echo extended
`

const INSPECT_SCRIPT =
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

export interface WatchdogPlan {
  /** State dir on the host (in the release store). */
  dir: string
  /** The run that owns it (confirm and cancel must name it). */
  token: string
  pidFile: string
  oldPid: number
  livePath: string
  /** The kept old binary (sidePaths(livePath).previous). */
  previousPath: string
  oldSha256: string
  leaseMs: number
}

export interface WatchdogState {
  running: boolean
  pid: number | null
  token: string | null
  deadlineInMs: number | null
  /** The decision, once taken: confirm | cancel (the action) or rollback (the watchdog). */
  verdict: string | null
  result: string | null
  log: string[]
}

/** The watchdog's lease: every wait it guards, plus a margin for round trips and retries. */
export function watchdogLeaseMs(t: {
  startTimeoutMs: number
  healthTimeoutMs: number
  drainTimeoutMs: number
}): number {
  const guarded = t.startTimeoutMs + t.healthTimeoutMs + t.drainTimeoutMs
  return guarded + 10_000 + Math.ceil(guarded / 10)
}

/** Where a host's watchdog keeps its files: `<release-dir>/watchdog`. */
export function watchdogDir(releaseDir: string): string {
  return posix.join(releaseDir, 'watchdog')
}

const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))

async function sh(host: Host, script: string, args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await host.run(['sh', '-c', script, 'sh', ...args], { sudo: host.sudo, timeoutMs })
  if (r.code !== 0)
    throw new Error(
      `${host.name}: watchdog command failed (status ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
  return r.stdout.trim()
}

/** Another run's watchdog is still armed on the host. */
export class WatchdogBusyError extends Error {
  constructor(
    readonly host: string,
    readonly dir: string,
    readonly pid: number,
    readonly token: string
  ) {
    super(
      `${host}: a watchdog of another run (${token || 'unknown'}) is still armed (pid ${pid}, state in ${dir}): it will roll back ` +
        `that run's interrupted upgrade at its deadline. Wait for it (its log: ${dir}/log), or, once you have checked the host by hand, stop it: kill ${pid}`
    )
    this.name = 'WatchdogBusyError'
  }
}

/** Arms the watchdog; resolves with its pid once it runs. */
export async function startWatchdog(
  host: Host,
  plan: WatchdogPlan
): Promise<{ pid: number; deadline: number }> {
  if (!Number.isInteger(plan.oldPid) || plan.oldPid <= 1)
    throw new Error(`watchdog: ${plan.oldPid} is not the pid of a master`)
  if (!/^[0-9a-f]{64}$/.test(plan.oldSha256)) throw new Error(`watchdog: '${plan.oldSha256}' is not a sha256`)
  const out = await sh(host, LAUNCH_SCRIPT, [
    WATCHDOG_SCRIPT,
    plan.dir,
    plan.token,
    seconds(plan.leaseMs),
    plan.pidFile,
    String(plan.oldPid),
    plan.livePath,
    plan.previousPath,
    plan.oldSha256
  ])
  const [word, pid, extra] = out.split(/\s+/)
  if (word === 'started' || word === 'running') return { pid: Number(pid), deadline: Number(extra) }
  if (word === 'busy') throw new WatchdogBusyError(host.name, plan.dir, Number(pid), extra ?? '')
  throw new Error(`${host.name}: the watchdog did not start: ${out.slice(0, 300)}`)
}

export type Decision =
  | { decided: true; verdict: 'confirm' | 'cancel' }
  /** The watchdog decided first (it rolls back, or did); result is set once it finished. */
  | { decided: false; verdict: string; result: string | null }
  | { decided: false; verdict: 'not-ours'; result: null }

/**
 * The action decides: confirm (the upgrade goes through; before QUIT) or cancel (the action rolled
 * back itself). Fails over to the watchdog's decision when its deadline came first.
 */
export async function decideWatchdog(
  host: Host,
  dir: string,
  token: string,
  verdict: 'confirm' | 'cancel'
): Promise<Decision> {
  const out = await sh(host, DECIDE_SCRIPT, [dir, token, verdict])
  if (out.startsWith('decided ')) return { decided: true, verdict }
  if (out.startsWith('not-ours')) return { decided: false, verdict: 'not-ours', result: null }
  const m = /^too-late (\S*) (?:result=(.*)|running)$/.exec(out)
  return { decided: false, verdict: m?.[1] || 'rollback', result: m?.[2] ?? null }
}

/** Moves the deadline to now + leaseMs (parked hosts, a rollback that needs time). */
export async function extendWatchdog(
  host: Host,
  dir: string,
  token: string,
  leaseMs: number
): Promise<boolean> {
  return (await sh(host, EXTEND_SCRIPT, [dir, token, seconds(leaseMs)])) === 'extended'
}

export async function inspectWatchdog(host: Host, dir: string): Promise<WatchdogState | null> {
  const out = await sh(host, INSPECT_SCRIPT, [dir])
  if (out === 'absent') return null
  const state: WatchdogState = {
    running: false,
    pid: null,
    token: null,
    deadlineInMs: null,
    verdict: null,
    result: null,
    log: []
  }
  for (const line of out.split('\n')) {
    const [key, ...rest] = line.split(' ')
    const value = rest.join(' ')
    if (key === 'running' || key === 'stopped') {
      state.running = key === 'running'
      state.pid = /^\d+$/.test(value) ? Number(value) : null
    } else if (key === 'token') state.token = value || null
    else if (key === 'deadline-in') state.deadlineInMs = Number(value) * 1000
    else if (key === 'decided') state.verdict = value || null
    else if (key === 'result') state.result = value || null
    else if (key === 'log') state.log.push(value)
  }
  return state
}

/** Waits until the watchdog has exited (its rollback done); returns its final state. */
export async function waitForWatchdog(
  host: Host,
  dir: string,
  timeoutMs: number,
  intervalMs = 500
): Promise<WatchdogState | null> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const state = await inspectWatchdog(host, dir)
    if (state === null || !state.running || Date.now() >= until) return state
    await new Promise(r => setTimeout(r, intervalMs))
  }
}

/** Every sh script of the watchdog, by name (tests check that each is POSIX sh). */
export const WATCHDOG_SCRIPTS: Readonly<Record<string, string>> = {
  watchdog: WATCHDOG_SCRIPT,
  launch: LAUNCH_SCRIPT,
  decide: DECIDE_SCRIPT,
  extend: EXTEND_SCRIPT,
  inspect: INSPECT_SCRIPT
}
