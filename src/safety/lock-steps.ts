/** The deploy lock around a host's run: taken by the first step, released when the run settles. */
import { checkTrust, TrustError } from '../host/trust.js'
import { sidePaths } from '../strategies/hot-upgrade/install.js'
import { StepError } from '../engine/step.js'
import { formatDuration } from '../duration.js'
import type { Settle, Step } from '../engine/index.js'
import type { Host } from '../host/host.js'
import { ReleaseStore } from '../releases/store.js'
import type { HostSafety, SafetyOptions } from './guard.js'
import type { Journal, SafetyPhase } from './journal.js'
import { HostLock, lockPath } from './lock.js'
import { inspectWatchdog, WatchdogBusyError, watchdogDir } from './watchdog.js'

/** $1 pid file: its pid and that process's executable. */
export const RUNNING_EXE =
  'p=$(cat -- "$1" 2>/dev/null); case $p in ""|*[!0-9]*) exit 0;; esac; echo "$p"; readlink "/proc/$p/exe" 2>/dev/null'

/** The server named by the pid file and the binary it runs, read before pre-flight; null when unknown. */
export async function runningExecutable(
  host: Host,
  pidFile: string
): Promise<{ pid: number; path: string } | null> {
  const r = await host.run(['sh', '-c', RUNNING_EXE, 'sh', pidFile], { sudo: host.sudo })
  const [pid, exe] = r.stdout.split('\n')
  const path = (exe ?? '').trim().replace(/ \(deleted\)$/, '')
  // pid 1 is never a master (pre-flight refuses it): no lock is taken for it.
  return path.startsWith('/') && Number(pid) > 1 ? { pid: Number(pid), path } : null
}

/** The trust checks (src/host/trust.ts) before the lock creates its folder; a refusal fails pre-flight. */
export async function trustOrRefuse(
  host: Host,
  o: Pick<SafetyOptions, 'pidFile' | 'masterUser'>,
  master: { pid: number; path: string },
  storeDir: string
): Promise<void> {
  const plan = { pidFile: o.pidFile, masterUser: o.masterUser, storeDir, pid: master.pid }
  await checkTrust(host, {
    ...plan,
    livePath: master.path,
    stagingPath: sidePaths(master.path).staging
  }).catch((e: Error) => {
    throw e instanceof TrustError ? new StepError('preflight', e.message) : e
  })
}

/**
 * Takes the lock before anything is read; refuses a host whose earlier watchdog still runs.
 * `afterLock`: the next step's first reads, sent behind the lock's command on the host's shell
 * (they run once the lock is taken, and come back with its answer; discarded if it is refused).
 */
export function lockStep(s: HostSafety, o: SafetyOptions, journal: Journal, afterLock?: () => void): Step {
  return {
    name: 'lock',
    stage: 'prepare',
    async run({ host, note, log }) {
      if (s.lock) return // run again after a lost connection: the lock is ours already
      const master = await runningExecutable(host, o.pidFile)
      const live = o.binaryPath ?? master?.path
      if (o.releaseDir === undefined && live === undefined) {
        // Pre-flight fails on the missing server next, before anything changes.
        note('no deploy lock: the running binary (and so its release store) is not known yet')
        return
      }
      const releaseDir = o.releaseDir ?? ReleaseStore.forLive(host, undefined, live!).dir
      // The lock is the first file made: who may write its folder is checked first (pre-flight again).
      if (master !== null) await trustOrRefuse(host, o, master, releaseDir)
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
      afterLock?.()
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
