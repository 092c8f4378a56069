/** The deploy lock around a host's run: taken by the first step, released when the run settles. */
import { formatDuration } from '../duration.js'
import type { Settle, Step } from '../engine/index.js'
import type { TrustedServer } from '../host/trust.js'
import type { HostSafety, SafetyOptions } from './guard.js'
import type { Journal, SafetyPhase } from './journal.js'
import { HostLock, lockPath } from './lock.js'
import { firstRead } from './lock-trust.js'
import { inspectWatchdog, WatchdogBusyError, watchdogDir } from './watchdog.js'

/**
 * Takes the lock before anything is read; refuses a host whose earlier watchdog still runs.
 * `afterLock`: the next step's first reads, sent behind the lock's command on the host's shell
 * (they run once the lock is taken, and come back with its answer; discarded if it is refused).
 */
export function lockStep(
  s: HostSafety,
  o: SafetyOptions,
  journal: Journal,
  afterLock?: (server?: TrustedServer) => void
): Step {
  return {
    name: 'lock',
    stage: 'prepare',
    async run({ host, note, log }) {
      if (s.lock) return // run again after a lost connection: the lock is ours already
      // The lock is the first file made: who may write its folder is checked first (pre-flight again).
      const { releaseDir, trusted } = await firstRead(host, o)
      if (releaseDir === undefined) {
        // Pre-flight fails on the missing server next, before anything changes.
        note('no deploy lock: the running binary (and so its release store) is not known yet')
        return
      }
      s.releaseDir = releaseDir
      const path = lockPath(releaseDir)
      // The watchdog's state is read along with the lock taken (one round trip, pipelined); it is
      // judged only once the lock is ours, and only a lock holder starts a watchdog.
      const taking = Promise.all([
        HostLock.acquire(host, {
          path,
          token: o.token,
          leaseMs: o.lockLeaseMs,
          owner: o.owner,
          warn: m => log.warn(m, { host: host.name, step: 'preflight' })
        }),
        inspectWatchdog(host, watchdogDir(releaseDir))
      ])
      afterLock?.(trusted)
      const [lock, wd] = await taking
      s.lock = lock
      journal.update(host.name, { lock: path, phase: 'locked' })
      note(
        `took the deploy lock ${path} (lease ${formatDuration(o.lockLeaseMs)}, renewed while this run works on the host)`
      )
      // Stale state of an earlier run: its watchdog.
      if (wd?.running && wd.token !== o.token)
        throw new WatchdogBusyError(host.name, watchdogDir(releaseDir), wd.pid ?? 0, wd.token ?? '')
      if (wd && !wd.running && wd.verdict === 'rollback' && wd.result !== null) {
        const what = `the watchdog of an earlier run (${wd.token ?? 'unknown'}) rolled this host back: ${wd.result} (log: ${watchdogDir(releaseDir)}/log)`
        if (wd.result === 'rolled-back' || wd.result === 'nothing') note(what)
        else
          log.warn(`${host.name}: ${what}; pre-flight checks what it left`, {
            host: host.name,
            step: 'preflight'
          })
      }
    }
  }
}

/** Releases the lock and records the host settled (or still locked, for the post step, when the release failed). */
export function releaseLockSettle(s: HostSafety, journal: Journal): Settle {
  return {
    name: 'unlock',
    // Right behind the last after step's commands: nothing after them needs the lock. Not while
    // a watchdog is armed, which the disarm settle decides first.
    ahead(_ctx, gate) {
      if (!s.armed) s.lock?.releaseAhead(gate)
    },
    async run({ host, report, log }) {
      let phase: SafetyPhase = 'settled'
      if (s.lock) {
        const how = await s.lock.release()
        if (how === 'released') log.info(`${host.name} [settle] released the deploy lock ${s.lock.path}`)
        else if (how === 'not-ours')
          log.warn(
            `${host.name}: the deploy lock ${s.lock.path} was in other hands at the end (taken over, or rewritten by hand): left to its holder`
          )
        else if (how === 'error') phase = 'locked' // the post step releases it
      }
      journal.update(host.name, { phase, result: report.result })
    }
  }
}
