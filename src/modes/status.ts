/**
 * mode status, one host: what runs (the pid, the file it runs and the sha256 of /proc/<pid>/exe,
 * its version) and the release store (its releases, the live one, the one a rollback would go
 * to), and who holds the deploy lock. Read only: the supervisor's inspection in read-only mode,
 * the store's state.json, the lock's owner file.
 */
import { HostRun, StepError, type Step } from '../engine/index.js'
import type { HostReport, HostStatus, Logger } from '../engine/types.js'
import type { Host } from '../host/host.js'
import {
  markLive,
  previousRelease,
  releaseRows,
  StoreError,
  versionText,
  withRelease,
  type StoreState
} from '../releases/state.js'
import { ReleaseStore } from '../releases/store.js'
import { describeHolder, lockPath, readLock } from '../safety/lock.js'
import type { Settings } from '../settings.js'
import type { Running, Supervisor } from '../supervisors/supervisor.js'

const short = (s: string) => s.slice(0, 12)

/**
 * The release a rollback without rollback-to would go to. A rollback first records the running
 * build as live (found, when the store never saw it), so the target is computed on that state.
 */
export function rollbackTargetOf(state: StoreState, r: Pick<Running, 'runningSha256' | 'version'>) {
  const at = new Date().toISOString()
  let s = state
  if (!s.releases.some(x => x.sha256 === r.runningSha256))
    s = withRelease(s, {
      sha256: r.runningSha256,
      version: versionText(r.version),
      deployedAt: at,
      origin: 'found'
    })
  return previousRelease(markLive(s, r.runningSha256, at)) ?? null
}

function statusStep(settings: Settings, supervisor: Supervisor): Step {
  return {
    name: 'status',
    stage: 'prepare',
    async run({ host, report, note, retrying }) {
      const session = supervisor.open(host, {
        pidFile: settings.pidFile,
        binaryPath: settings.binaryPath,
        pollIntervalMs: settings.pollIntervalMs,
        releaseDir: settings.releaseDir,
        masterUser: settings.masterUser
      })
      const r = await session.inspect({
        note,
        retrying,
        readOnly: true,
        learn: k => {
          if (k.pid !== undefined) report.oldPid = k.pid
          if (k.livePath !== undefined) report.binaryPath = k.livePath
          if (k.version) report.version = k.version
        }
      })
      const store = ReleaseStore.forLive(host, settings.releaseDir, r.livePath)
      const [state, holder] = await Promise.all([
        store.read().catch((e: unknown) => {
          throw e instanceof StoreError ? new StepError('status', e.message) : e
        }),
        readLock(host, lockPath(store.dir), settings.lockLeaseMs)
      ])
      const stored = state.releases.find(x => x.sha256 === r.runningSha256)
      const target = rollbackTargetOf(state, r)
      report.releases = releaseRows(state).map(row => ({
        ...row,
        rollbackTarget: row.sha256 === target?.sha256
      }))
      const status: HostStatus = {
        pid: r.pid,
        livePath: r.livePath,
        runningSha256: r.runningSha256,
        liveSha256: r.liveSha256,
        version: stored?.version ?? versionText(r.version),
        store: store.dir,
        rollbackTarget: target ? { version: target.version, sha256: target.sha256 } : null,
        lock: holder === null ? null : describeHolder(holder)
      }
      report.status = status
      report.oldPid = r.pid
      report.binaryPath = r.livePath
      report.version = status.version ?? undefined
      report.sha256 = r.runningSha256
      if (!stored)
        note(`the running build (sha256 ${short(r.runningSha256)}) is not in the release store ${store.dir}`)
      else if (state.live !== r.runningSha256)
        note(
          `the release store names ${state.live ? short(state.live) : 'no release'} live, but the host runs ${short(r.runningSha256)}`
        )
      note(
        target
          ? `mode: rollback would go to ${target.version ?? 'unknown version'} (sha256 ${short(target.sha256)})`
          : 'mode: rollback has no release before the live one to go to'
      )
      if (holder !== null) note(`the deploy lock is held: ${status.lock}`)
    }
  }
}

/** Reads one host; the report carries what it found in `status`. */
export async function statusHost(
  host: Host,
  o: { settings: Settings; supervisor: Supervisor; log: Logger; signal?: AbortSignal }
): Promise<HostReport> {
  const run = new HostRun(
    host,
    { steps: [statusStep(o.settings, o.supervisor)] },
    { log: o.log, signal: o.signal }
  )
  return (await run.prepare()) ?? (await run.conclude('unchanged'))
}
