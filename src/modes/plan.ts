/**
 * mode plan, one host: what a deploy would do, with nothing changed. The hot upgrade's own steps
 * up to the new binary's verification run (pre-flight, the upload to a staging file of the plan's
 * own, the config test, the versions), with the release store read (releases/preview.ts) and the
 * deploy lock read (safety/lock-check.ts); then their undos run: the staged file is removed. What a
 * deploy takes or writes (the lock, the store, the watchdog, the journal) is never touched.
 */
import { randomBytes } from 'node:crypto'
import { first, HostRun } from '../engine/index.js'
import type { HostReport, Logger, PlanVerdict } from '../engine/types.js'
import type { Host } from '../host/host.js'
import { withPreviewSteps } from '../releases/preview.js'
import { releaseOptions } from '../releases/steps.js'
import { lockCheckStep } from '../safety/lock-check.js'
import type { Settings } from '../settings.js'
import { hotUpgrade, planFrom, type UpgradePlan } from '../strategies/hot-upgrade/index.js'
import { planStagingPath } from '../strategies/hot-upgrade/install.js'
import type { UpgradeSource } from '../strategies/strategy.js'
import type { Supervisor } from '../supervisors/supervisor.js'

export interface PlanOptions {
  settings: Settings
  supervisor: Supervisor
  /** The binary a deploy would send. */
  source: UpgradeSource
  log: Logger
  signal?: AbortSignal
  /** Names this run's staging files (random: two plans at once never share one). */
  token?: string
}

export const planToken = (): string => randomBytes(6).toString('hex')

/** Plans one host; the report carries its verdict in `plan`. */
export async function planHost(host: Host, o: PlanOptions): Promise<HostReport> {
  const { settings, supervisor } = o
  const token = o.token ?? planToken()
  const plan: UpgradePlan = {
    ...planFrom(settings, o.source, supervisor),
    signal: o.signal,
    readOnly: true,
    stagingPath: live => planStagingPath(live, token)
  }
  const hp = hotUpgrade(plan, supervisor).plan(host, o.source)
  // The steps up to the verification (every one of stage prepare): nothing that serves changes.
  const all = withPreviewSteps(hp, releaseOptions(settings, process.env))
  const end = all.findIndex(s => s.stage !== 'prepare')
  const lock = lockCheckStep({
    pidFile: settings.pidFile,
    binaryPath: settings.binaryPath,
    releaseDir: settings.releaseDir,
    masterUser: settings.masterUser,
    lockLeaseMs: settings.lockLeaseMs
  })
  const steps = first(end < 0 ? all : all.slice(0, end), lock)
  const run = new HostRun(host, { steps, repair: () => hp.repair() }, { log: o.log, signal: o.signal })
  const ended = await run.prepare()
  const report = ended ?? (await run.release('the plan is complete', 'clean-up'))
  report.plan = verdictOf(report)
  return report
}

/** The verdict from how the run ended: it passed (a deploy would go on), ended unchanged, or failed. */
export function verdictOf(r: HostReport): PlanVerdict {
  const plan: PlanVerdict = { ...(r.plan ?? {}), verdict: 'upgrade' }
  if (r.result === 'unchanged') return { ...plan, verdict: 'unchanged' }
  if (r.result === 'untouched') return plan
  return {
    ...plan,
    verdict: 'refused',
    step: r.failedStep,
    message: r.rollbackError
      ? `the plan could not remove what it staged: ${r.rollbackError}`
      : (r.error ?? 'no error recorded')
  }
}
