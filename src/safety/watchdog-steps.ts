/**
 * The watchdog as steps: armed before the cut-over (its undo disarms it, its beforeRollback
 * gives it time), confirmed before the commit, extended while the host is held, disarmed when
 * the run settles if nobody decided yet.
 */
import { formatDuration } from '../duration.js'
import { StepError, type RunPhase, type Settle, type Step } from '../engine/index.js'
import type { HostReport } from '../engine/types.js'
import { renewalDue, type Host } from '../host/host.js'
import { sidePaths } from '../strategies/hot-upgrade/install.js'
import type { HostState } from '../strategies/strategy.js'
import { stopHeartbeat, type HostSafety, type SafetyOptions } from './guard.js'
import type { Journal } from './journal.js'
import { decideWatchdog, extendWatchdog, startWatchdog, waitForWatchdog, watchdogDir } from './watchdog.js'

/** How long a rollback may take before the watchdog would step in. */
const ROLLBACK_GRACE_MS = 120_000
/** How long to wait for a watchdog that decided first to finish its rollback. */
const WATCHDOG_FINISH_MS = 90_000

const dirOf = (s: HostSafety) => watchdogDir(s.releaseDir!)

/** The watchdog decided first: wait until it has finished, and say what it did. */
async function afterWatchdog(host: Host, s: HostSafety, note: (m: string) => void): Promise<string> {
  note(`the watchdog reached its deadline first and rolls the host back; waiting for it to finish`)
  const end = await waitForWatchdog(host, dirOf(s), WATCHDOG_FINISH_MS)
  s.armed = false
  const result = end?.result ?? (end?.running ? 'still running' : 'unknown')
  note(`the watchdog's result: ${result}`)
  return result
}

/** Decides for the run (cancel after a rollback, confirm after an upgrade); waits for the watchdog when it came first. */
async function disarm(
  host: Host,
  s: HostSafety,
  o: SafetyOptions,
  verdict: 'confirm' | 'cancel',
  note: (m: string) => void
) {
  if (!s.armed) return
  const d = await decideWatchdog(host, dirOf(s), o.token, verdict)
  if (d.decided || d.verdict === verdict) {
    s.armed = false
    note(`disarmed the watchdog (${verdict})`)
  } else if (d.verdict !== 'not-ours') {
    await afterWatchdog(host, s, note)
  }
}

/** The gate the watchdog's start opens on the host's shell: the swap sent behind it needs it. */
export const ARMED_GATE = 'armed'

/**
 * The journal learns what the post step needs; then the watchdog is armed (when asked for).
 * `afterArm`: the cut-over's first command, sent right behind the watchdog's start and run by the
 * host only if it started (ARMED_GATE): nothing changes on a host no watchdog guards.
 */
export function armStep(
  s: HostSafety,
  state: HostState,
  o: SafetyOptions,
  journal: Journal,
  afterArm?: (gate: string) => void
): Step {
  return {
    name: 'watchdog',
    // Armed right before the swap, never at pre-staging: its lease starts when it is armed.
    stage: 'ready',
    async run({ host, note, retrying }) {
      const r = state.running!
      journal.update(host.name, {
        phase: 'changing',
        oldPid: r.pid,
        livePath: r.livePath,
        oldSha256: r.liveSha256,
        newSha256: state.source.sha256,
        ...(o.watchdog && s.releaseDir !== undefined ? { watchdog: dirOf(s) } : {})
      })
      if (!o.watchdog || s.armed) return
      if (s.releaseDir === undefined) {
        note('no watchdog: the release store of this host is not known')
        return
      }
      const starting = startWatchdog(
        host,
        {
          dir: dirOf(s),
          token: o.token,
          pidFile: o.pidFile,
          oldPid: r.pid,
          livePath: r.livePath,
          previousPath: sidePaths(r.livePath).previous,
          oldSha256: r.liveSha256,
          leaseMs: o.watchdogLeaseMs,
          part: o.part,
          binaryFirst: o.binaryFirst
        },
        ARMED_GATE
      )
      // Not after a lost connection: the swap then reads the host back before it acts.
      if (!retrying) afterArm?.(ARMED_GATE)
      const wd = await starting
      s.armed = true
      s.oldStartTime = wd.oldStartTime ?? undefined
      note(
        `watchdog ${wd.pid} armed on the host: unless this run confirms, it rolls the host back by itself in ${formatDuration(o.watchdogLeaseMs)} (log: ${dirOf(s)}/log)`
      )
    },
    async beforeRollback({ host, note }) {
      stopHeartbeat(s)
      journal.update(host.name, { phase: 'rolling-back' })
      if (!s.armed) return
      if (await extendWatchdog(host, dirOf(s), o.token, ROLLBACK_GRACE_MS)) {
        note(`the watchdog waits ${formatDuration(ROLLBACK_GRACE_MS)} more while this run rolls back`)
        return
      }
      await afterWatchdog(host, s, note)
    },
    undo: ({ host, log }) => disarm(host, s, o, 'cancel', m => log.info(`${host.name} [rollback] ${m}`))
  }
}

/** The gate the watchdog's confirmation opens on the host's shell: the retire sent behind it needs it. */
export const COMMIT_GATE = 'commit'

/**
 * Before the point of no return: the watchdog must agree (or it already rolled the host back).
 * `afterConfirm`: the retire's first commands, sent right behind the confirmation and run by the
 * host only if this run decided (COMMIT_GATE): the commit is one round trip instead of two. The
 * deploy lock was asked again just before (the commit moment, lock-checkpoint.ts).
 */
export function confirmStep(
  s: HostSafety,
  o: SafetyOptions,
  journal: Journal,
  afterConfirm?: (gate: string) => void
): Step {
  return {
    name: 'confirm',
    stage: 'commit',
    onCancel: 'finish',
    async run({ host, note, retrying }) {
      stopHeartbeat(s)
      journal.update(host.name, { phase: 'committing' })
      if (!s.armed) return
      const deciding = decideWatchdog(host, dirOf(s), o.token, 'confirm', COMMIT_GATE)
      // Not after a lost connection: the retire then reads the host back before it acts.
      if (!retrying) afterConfirm?.(COMMIT_GATE)
      const d = await deciding
      if (d.decided || d.verdict === 'confirm') {
        s.armed = false
        note('confirmed the watchdog: the upgrade goes through')
        return
      }
      if (d.verdict === 'not-ours')
        throw new StepError(
          'quit',
          `the watchdog in ${dirOf(s)} belongs to another run: the deploy lock was lost; not going on`
        )
      const result = await afterWatchdog(host, s, note)
      throw new StepError(
        'quit',
        `the watchdog rolled the host back at its deadline (lease ${formatDuration(o.watchdogLeaseMs)}) before this run could confirm: ${result}. ` +
          `The upgrade took longer than start-timeout + health-timeout + drain-timeout allowed`
      )
    }
  }
}

/**
 * A parked host's lease: at least PARKED_LEASE_MS. A parked host waits for the rest of the fleet,
 * which on a large or loaded fleet lasts far longer than its own upgrade's lease; with only that
 * lease, a few late heartbeats (a loaded runner, a slow link) let the watchdog roll an early
 * host back while the fleet still ran (seen at 64 hosts). If the run vanishes, the host goes
 * back at most this long after its last heartbeat (the post step usually does it sooner).
 */
export const PARKED_LEASE_MS = 10 * 60_000

/** The lease of a parked host and how often it is renewed: many heartbeats per lease. */
export function parkedLease(watchdogLeaseMs: number): { leaseMs: number; everyMs: number } {
  const leaseMs = Math.max(watchdogLeaseMs, PARKED_LEASE_MS)
  return { leaseMs, everyMs: Math.min(30_000, Math.max(1000, Math.floor(leaseMs / 10))) }
}

/** While held, the watchdog's deadline moves with this run's heartbeat: tied to the fleet's run, not to the host's own upgrade. */
export function holdObserver(s: HostSafety, o: SafetyOptions, journal: Journal) {
  return (phase: RunPhase, _report: HostReport): void => {
    if (phase !== 'held') return
    journal.update(s.host.name, { phase: 'parked' })
    if (!s.armed) return
    const { leaseMs, everyMs } = parkedLease(o.watchdogLeaseMs)
    let told = false
    let extendedAt = 0
    const extend = () => {
      // A detached host (fleet/idle.ts) logs in for each extension: see renewalDue.
      if (!renewalDue(s.host, extendedAt, leaseMs)) return
      void extendWatchdog(s.host, dirOf(s), o.token, leaseMs)
        .then(extended => {
          if (extended) extendedAt = Date.now()
          // Said at once, not only at the commit: the fleet learns that this host is going back.
          if (extended || told || s.heartbeat === undefined) return
          told = true
          o.log.warn(
            `${s.host.name}: the watchdog of this parked host decided already (its deadline passed): it rolls the host back, and the fleet cannot commit it`
          )
        })
        .catch((e: Error) => o.log.warn(`${s.host.name}: could not extend the watchdog: ${e.message}`))
    }
    extend()
    stopHeartbeat(s)
    s.heartbeat = setInterval(extend, everyMs)
    s.heartbeat.unref()
  }
}

/** Nobody decided by the end (a run that stopped between arm and confirm without a rollback): decide now. */
export function disarmSettle(s: HostSafety, o: SafetyOptions): Settle {
  return {
    name: 'disarm',
    async run({ host, report, log }) {
      stopHeartbeat(s)
      const note = (m: string) => log.info(`${host.name} [settle] ${m}`)
      try {
        await disarm(host, s, o, report.result === 'upgraded' ? 'confirm' : 'cancel', note)
      } catch (e) {
        log.warn(`${host.name}: could not disarm the watchdog in ${dirOf(s)}: ${(e as Error).message}`, {
          host: host.name,
          step: 'rollback'
        })
      }
    }
  }
}
