/**
 * USR2 and WINCH sent ahead, behind the swap, each run by the host only when the one before it
 * did what it should: the swap, then USR2, then the new master found ready by the host itself (the
 * same checks the runner makes: READY), then WINCH and the wait for the old workers to stop. The
 * whole start of the hand-over then costs the round trip of the watchdog's start instead of three;
 * the runner still judges each answer before its step ends. When a gate stays closed (a slow
 * start, a #! script, an error), the step sends its own commands once it knows, as before.
 */
import type { ExecResult } from '../../host/host.js'
import { signal, SIGNALS, type Snapshot } from './protocol.js'
import type { NginxHost } from './state.js'

/** The gates of the chain, on the host's shell. */
const USR2_GATE = 'usr2'
const READY_GATE = 'ready'
const WINCH_GATE = 'winch'

export interface StartAhead {
  /** USR2 and the first read of its wait; null: the swap's gate was closed (USR2 not sent). */
  started: Promise<{ head: ExecResult; read: () => Promise<Snapshot> } | null>
  /** WINCH and the read once the old workers stopped; null: the host did not find the new master ready. */
  isolated: Promise<(() => Promise<Snapshot>) | null>
}

/** What a host-side wait shares: k = the accepting workers of a master (the runner's acceptingWorkers). */
const WORKERS = String.raw`
accepting() {
  k=0
  kids=
  for f in /proc/$1/task/*/children; do
    x=; read -r x 2>/dev/null < "$f"; kids="$kids $x"
  done
  for c in $kids; do
    l=; read -r l 2>/dev/null < "/proc/$c/stat" || continue
    case @{l##*) } in Z*|X*) continue;; esac
    # The title up to its first NUL (nginx pads it with NULs), without a process of its own.
    t=; read -r t 2>/dev/null < "/proc/$c/cmdline"
    [ "$t" = "nginx: worker process" ] && k=$((k + 1))
  done
  return 0
}
`

/**
 * After USR2 ($1 the old master, $2 the pid file, $3 worker_processes or auto, $4 the live path):
 * waits at most a second for the new master as the runner judges it ready (the pid file names a
 * live child of the old master running the live file, .oldbin names the old master, and all its
 * workers accept); exits 0 then, 1 otherwise. auto: as many workers as the old master has.
 */
export const READY = `${WORKERS}${String.raw`
rd() { p=; [ -r "$1" ] && read -r p 2>/dev/null < "$1"; case $p in ''|*[!0-9]*) p=-;; esac; }
want=$3
[ "$want" = auto ] && accepting "$1" && want=$k
[ "$want" -ge 1 ] 2>/dev/null || want=1
n=0
while [ $n -lt 40 ]; do
  rd "$2"; m=$p; rd "$2.oldbin"; o=$p
  if [ "$o" = "$1" ] && [ "$m" != - ] && [ "$m" != "$1" ]; then
    l=; read -r l 2>/dev/null < "/proc/$m/stat" || l=
    set -- "$1" "$2" "$3" "$4" @{l##*) }
    if [ "$6" = "$1" ] && [ "$(readlink "/proc/$m/exe" 2>/dev/null)" = "$4" ]; then
      case $5 in Z*|X*) ;; *) accepting "$m"; [ "$k" -ge "$want" ] && exit 0;; esac
    fi
    set -- "$1" "$2" "$3" "$4"
  fi
  sleep 0.025 2>/dev/null || exit 1
  n=$((n + 1))
done
exit 1
`}`.replaceAll('@{', '${')

/** After WINCH ($1 the old master): waits at most a second until none of its workers accepts. */
export const STOPPED = `${WORKERS}${String.raw`
n=0
while [ $n -lt 40 ] && accepting "$1" && [ "$k" -gt 0 ]; do
  sleep 0.025 2>/dev/null || break
  n=$((n + 1))
done
`}`.replaceAll('@{', '${')

/**
 * Sends the chain behind `gate` (the swap's). `workers`: worker_processes of the new
 * configuration (its dump), or auto. Never rejects unhandled: the steps take the answers.
 */
export function sendStart(s: NginxHost, gate: string, workers: number | 'auto'): StartAhead {
  const { host } = s
  const oldPid = s.facts().pid
  const live = s.facts().livePath
  const sudo = host.sudo
  const head = host.run(['head', '-c', '2', '--', live], { sudo, gate: { need: gate } })
  const usr2 = signal(host, SIGNALS.upgrade, oldPid, { need: gate, set: USR2_GATE })
  const ready = host.run(['sh', '-c', READY, 'sh', String(oldPid), s.pidFile, String(workers), live], {
    sudo,
    gate: { need: USR2_GATE, set: READY_GATE }
  })
  const first = s.read()
  const winch = signal(host, SIGNALS.stopWorkers, oldPid, { need: READY_GATE, set: WINCH_GATE })
  const stopped = host.run(['sh', '-c', STOPPED, 'sh', String(oldPid)], { sudo, gate: { need: WINCH_GATE } })
  const second = s.read()
  for (const p of [head, ready, first, stopped, second]) p.catch(() => undefined)
  const started = (async () => {
    if ((await usr2) === 'gate-closed') return null
    return { head: await head, read: s.readsFrom(first) }
  })()
  const isolated = (async () => {
    if ((await winch) === 'gate-closed') return null
    await stopped
    return s.readsFrom(second)
  })()
  started.catch(() => undefined)
  isolated.catch(() => undefined)
  return { started, isolated }
}
