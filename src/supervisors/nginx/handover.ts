/**
 * The forward half of nginx's binary upgrade on one host: USR2 and the new master's start, WINCH
 * and the old workers' stop, the old master's QUIT. Each reads the host back (`read`) and says
 * what it saw; a run again after a lost connection checks what already happened first.
 */
import { formatDuration } from '../../duration.js'
import { StepError } from '../../engine/step.js'
import { waitUntilSoon } from '../../engine/wait.js'
import type { SupervisorContext } from '../supervisor.js'
import {
  acceptingWorkers,
  describe,
  exePath,
  isAlive,
  newMasterCandidates,
  oldWorkers,
  probe,
  signal,
  SIGNALS,
  type Snapshot
} from './protocol.js'
import type { NginxHost } from './state.js'

/** USR2 to the old master, then the wait for its new master; returns the new master's pid. */
export async function startNewMaster(
  s: NginxHost,
  ctx: SupervisorContext,
  o: { startTimeoutMs: number; intervalMs: number }
): Promise<number> {
  const oldPid = s.facts().pid
  // Sent behind the swap (ahead.ts): taken unless its gate was closed. A lost answer fails the
  // step as a lost connection does: it runs again, reading the host back.
  const ahead = ctx.retrying ? null : await s.startAhead?.started
  // Read along with the signal (one round trip): only the wait below needs it.
  const head =
    ahead?.head ??
    s.host.run(['head', '-c', '2', '--', s.facts().livePath], { sudo: s.host.sudo }).catch((e: Error) => e)
  // Again after a lost connection: the USR2 may have arrived; the host says.
  const seen = ctx.retrying ? await probe(s.host, s.pidFile) : null
  let read = () => s.read()
  if (seen && (seen.oldbinPid === oldPid || newMasterCandidates(seen, oldPid).length > 0))
    ctx.note(`USR2 had reached the old master ${oldPid} before the connection was lost: not sent again`)
  else if (ahead) {
    read = ahead.read
    ctx.note(`sent USR2 to the old master ${oldPid} (right behind the swap)`)
  } else {
    const waitArgv = ['sh', '-c', NEW_WAIT, 'sh', String(oldPid), s.pidFile, String(s.expectedWorkers)]
    read = await signalThenRead(s, SIGNALS.upgrade, oldPid, { waitArgv })
    ctx.note(`sent USR2 to the old master ${oldPid}`)
  }
  const first = await head
  if (first instanceof Error) throw first
  s.newIsScript = first.code === 0 && first.stdout === '#!'
  if (s.newIsScript)
    ctx.note(
      'the new binary is a #! script: its master may run another executable (what the script execs), which is accepted'
    )
  s.newPid = await waitForNewMaster(s, ctx, o, read)
  return s.newPid
}

/** Waits for the new master: .oldbin holds the old pid, the pid file a live child running the new file, with workers. */
async function waitForNewMaster(
  s: NginxHost,
  ctx: SupervisorContext,
  o: { startTimeoutMs: number; intervalMs: number },
  read: () => Promise<Snapshot>
): Promise<number> {
  const oldPid = s.facts().pid
  const live = s.facts().livePath
  let revertedPolls = 0
  let last: Snapshot | null = null
  const found = await waitUntilSoon(o.startTimeoutMs, Math.min(o.intervalMs, 100), async elapsed => {
    const snap = (last = await read())
    if (!isAlive(snap, oldPid)) throw new StepError('usr2', `the old master ${oldPid} died after USR2`)
    const pid = snap.pid
    if (snap.oldbinPid === oldPid && pid !== null && pid !== oldPid && isAlive(snap, pid)) {
      const p = snap.procs.get(pid)!
      const exe = exePath(p)
      const runsNew = s.newIsScript
        ? p.exe !== snap.procs.get(oldPid)?.exe // a script execs something else; never the old file
        : exe.path === live && !exe.replaced
      // All its workers, not the first: WINCH then leaves no capacity missing.
      if (p.ppid === oldPid && runsNew && acceptingWorkers(snap, pid).length >= s.expectedWorkers) return pid
    }
    // The old master takes its pid file back when the new binary exits (or cannot exec).
    const reverted = !snap.oldbinExists && pid === oldPid && newMasterCandidates(snap, oldPid).length === 0
    revertedPolls = reverted && elapsed > 300 ? revertedPolls + 1 : 0
    if (revertedPolls >= 3)
      throw new StepError(
        'usr2',
        'the new binary exited at once: the old master took its pid file back and has no new master child'
      )
    return undefined
  })
  if (found === undefined) {
    const snap = last ?? (await s.read())
    const partial = snap.pid !== null && snap.pid !== oldPid ? acceptingWorkers(snap, snap.pid).length : 0
    if (partial > 0)
      throw new StepError(
        'usr2',
        `the new master ${snap.pid} started only ${partial} of its ${s.expectedWorkers} workers (worker_processes) within start-timeout ${formatDuration(o.startTimeoutMs)}: ${describe(snap, oldPid)}`
      )
    throw new StepError(
      'usr2',
      `no new master within start-timeout ${formatDuration(o.startTimeoutMs)}: ${describe(snap, oldPid)}`
    )
  }
  const exe = last!.procs.get(found)!.exe
  ctx.note(
    `new master ${found} is up with all ${acceptingWorkers(last!, found).length} of its workers (worker_processes ${s.expectedWorkers}), running ${exe}; .oldbin holds the old master ${oldPid}`
  )
  return found
}

/** WINCH: the old master's workers stop accepting; the health gate then judges the new binary alone. */
export async function stopOldWorkers(s: NginxHost, ctx: SupervisorContext): Promise<void> {
  const oldPid = s.facts().pid
  // Sent behind the host's own check of the new master (ahead.ts), which the runner has since
  // made too; null when the host found it not ready yet, and after a lost connection.
  const ahead = s.startAhead
  s.startAhead = null
  const early = ahead && !ctx.retrying ? await ahead.isolated : null
  s.winchSent = true
  const read = early ?? (await signalThenRead(s, SIGNALS.stopWorkers, oldPid))
  ctx.note(
    `sent WINCH to the old master ${oldPid}${early ? ' (once the host, too, found the new master ready)' : ''}: its workers stop accepting`
  )
  let snap: Snapshot | null = null
  const stopped = await waitUntilSoon(10_000, s.pollIntervalMs, async () => {
    snap = await read()
    return acceptingWorkers(snap, oldPid).length === 0 ? true : undefined
  })
  if (!stopped) {
    const still = acceptingWorkers(snap!, oldPid).map(p => p.pid)
    throw new StepError(
      'winch',
      `the old master's workers ${still.join(', ')} still accept connections 10s after WINCH: ` +
        'nginx ignores WINCH when it runs with daemon off (under systemd Type=simple, in a container)'
    )
  }
  s.isolatedSnapshot = snap
  ctx.note(`no old worker accepts any more; only the new binary serves now`)
}

/** QUIT to the old master; with `unfinished` (a drain that timed out, proceed), busy workers may outlive the wait. */
export async function quitOldMaster(
  s: NginxHost,
  ctx: SupervisorContext,
  o: { unfinished: boolean; intervalMs: number }
): Promise<void> {
  const oldPid = s.facts().pid
  const newPid = s.newPid!
  // Sent behind the watchdog's confirmation: taken unless its gate was closed (then QUIT did not
  // run). A lost answer fails the step as a lost connection does: it runs again, reading back.
  const ahead = s.quitAhead
  s.quitAhead = null
  const early = ahead && !ctx.retrying ? await ahead : null
  const read =
    early ?? (await signalThenRead(s, SIGNALS.gracefulStop, oldPid, { waitArgv: goneWait(oldPid) }))
  ctx.note(`sent QUIT to the old master ${oldPid}`)
  const done = await waitUntilSoon(o.unfinished ? 2000 : 30_000, o.intervalMs, async () => {
    const snap = await read()
    return !isAlive(snap, oldPid) && !snap.oldbinExists && snap.pid === newPid && isAlive(snap, newPid)
      ? snap
      : undefined
  })
  if (!done && o.unfinished) {
    const snap = await s.read()
    const busy = oldWorkers(snap, oldPid, newPid).map(p => p.pid)
    if (snap.pid === newPid && isAlive(snap, newPid) && acceptingWorkers(snap, oldPid).length === 0) {
      ctx.note(
        `the old master ${oldPid} is exiting (it accepts nothing) once its ${busy.length} busy workers (${busy.join(', ')}) ` +
          `finish their requests; ${newPid} serves every new connection`
      )
      return
    }
  }
  if (!done) {
    const snap = await s.read()
    throw new StepError(
      'quit',
      `the old master ${oldPid} did not exit within 30s (${describe(snap, oldPid)})`
    )
  }
  ctx.note(`the old master is gone; ${newPid} serves alone`)
}

/**
 * QUIT to the old master, the host's short wait for it to go, and the first read after. With
 * `gate`, the signal and the wait run only if the gate is open on the host's shell: null when not.
 */
export function sendQuit(s: NginxHost, gate: string): Promise<(() => Promise<Snapshot>) | null> {
  const oldPid = s.facts().pid
  const sent = signalThenRead(s, SIGNALS.gracefulStop, oldPid, { waitArgv: goneWait(oldPid), gate })
  sent.catch(() => undefined) // taken by quitOldMaster, or never when the confirmation failed
  return sent
}

const goneWait = (oldPid: number) => ['sh', '-c', GONE_WAIT, 'sh', String(oldPid)]

/** How long the host itself waits, after QUIT, for the old master to go before the first read. */
const GONE_WAIT = String.raw`
n=0
while [ -e "/proc/$1" ] && [ $n -lt 20 ]; do
  l=; read -r l 2>/dev/null < "/proc/$1/stat" || break
  case @{l##*) } in Z*|X*) break;; esac
  sleep 0.025 2>/dev/null || break
  n=$((n + 1))
done
`.replaceAll('@{', '${')

/**
 * How long the host itself waits, after USR2, for the new master: until the pid file names
 * another process with the expected number of children ($3), at most a second (the old master
 * renames its pid file first: a missing one is not the end of the wait, an unreadable one is). Only a shortcut
 * to the first read: the wait's own checks judge what it then sees.
 */
const NEW_WAIT = String.raw`
count() { echo $#; }
n=0
while [ $n -lt 40 ]; do
  p=
  if [ -e "$2" ]; then read -r p 2>/dev/null < "$2" || break; fi
  case $p in
    ''|*[!0-9]*|"$1") ;;
    *) c=/proc/$p/task/$p/children
       [ -r "$c" ] || break
       [ "$(count $(cat -- "$c" 2>/dev/null))" -ge "$3" ] && break;;
  esac
  sleep 0.025 2>/dev/null || break
  n=$((n + 1))
done
`

/**
 * Sends `sig` and, behind it in the host's shell, the first read of the wait that follows: both
 * answers come back in one round trip. With `waitArgv` the host waits a little (at most a second,
 * as the SSH user) for the change the signal asks for before that read, so that a quick change
 * is seen at once. Returns the reads to poll with: the first is the one already sent.
 */
function signalThenRead(
  s: NginxHost,
  sig: string,
  pid: number,
  o?: { waitArgv?: string[] }
): Promise<() => Promise<Snapshot>>
/** With `gate`: null when the gate was closed (the signal and the wait did not run). */
function signalThenRead(
  s: NginxHost,
  sig: string,
  pid: number,
  o: { waitArgv?: string[]; gate?: string }
): Promise<(() => Promise<Snapshot>) | null>
async function signalThenRead(
  s: NginxHost,
  sig: string,
  pid: number,
  o: { waitArgv?: string[]; gate?: string } = {}
): Promise<(() => Promise<Snapshot>) | null> {
  const need = o.gate ? { need: o.gate } : undefined
  const sent = signal(s.host, sig, pid, need)
  const gone = o.waitArgv ? s.host.run(o.waitArgv, { gate: need }).catch(() => null) : null
  const first = s.read()
  // The signal may fail (then nothing is read): the early read must not end as an unhandled rejection.
  first.catch(() => undefined)
  if ((await sent) === 'gate-closed') return null
  await gone
  return s.readsFrom(first)
}
