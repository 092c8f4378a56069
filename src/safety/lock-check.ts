/**
 * The deploy lock as a plan sees it: read, never taken. A plan changes nothing, so it neither
 * creates the lock (nor the release store the lock lives in) nor makes a deploy that starts
 * meanwhile wait; it stages under a name of its own instead (planStagingPath). A lock held by a
 * live run, or a watchdog still armed, refuses the host with the message a deploy would give.
 */
import { formatDuration } from '../duration.js'
import type { Step } from '../engine/index.js'
import { firstRead } from './lock-trust.js'
import { describeHolder, LockHeldError, lockPath, readLock } from './lock.js'
import { inspectWatchdog, WatchdogBusyError, watchdogDir } from './watchdog.js'

export interface LockCheckOptions {
  pidFile: string
  binaryPath?: string
  releaseDir?: string
  masterUser?: string
  lockLeaseMs: number
}

/** Reads the lock and the watchdog before pre-flight (the trust checks first, as a deploy's lock step does). */
export function lockCheckStep(o: LockCheckOptions): Step {
  return {
    name: 'lock',
    report: 'preflight',
    stage: 'prepare',
    async run({ host, note }) {
      const { releaseDir } = await firstRead(host, o)
      if (releaseDir === undefined) {
        note('no deploy lock to read: the running binary (and so its release store) is not known yet')
        return
      }
      const path = lockPath(releaseDir)
      const [holder, wd] = await Promise.all([
        readLock(host, path, o.lockLeaseMs),
        inspectWatchdog(host, watchdogDir(releaseDir))
      ])
      if (holder !== null && holder.ageMs <= holder.leaseMs) throw new LockHeldError(host.name, path, holder)
      note(
        holder === null
          ? `the deploy lock ${path} is free (a plan reads it and takes no lock)`
          : `the deploy lock ${path} is stale (${describeHolder(holder)}, not renewed for ${formatDuration(holder.ageMs)}): a deploy takes it over`
      )
      if (wd?.running)
        throw new WatchdogBusyError(host.name, watchdogDir(releaseDir), wd.pid ?? 0, wd.token ?? '')
    }
  }
}
