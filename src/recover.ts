/**
 * What the post step does for one host a killed run left unfinished (its journal record says
 * where it stood): the watchdog is disarmed first, so that the two never act at the same time
 * (when the watchdog already acted, post waits for it and checks its work); the host is rolled
 * back, or completed when only the retire remained; its deploy lock is released (only when this
 * run still holds it).
 */
import type { HostResult, Logger } from './engine/types.js'
import { HostUpgrade } from './fleet/host-upgrade.js'
import type { Host } from './host/host.js'
import { postAction, type SafetyRecord } from './safety/journal.js'
import { releaseLock } from './safety/lock.js'
import { decideWatchdog, inspectWatchdog, waitForWatchdog } from './safety/watchdog.js'
import type { Settings } from './settings.js'
import { planFrom } from './strategies/hot-upgrade/index.js'
import { supervisorFor } from './supervisors/index.js'

export interface PostOutcome {
  host: string
  action: ReturnType<typeof postAction>
  result?: HostResult
  error?: string
  repair?: string[]
}

/** The watchdog of the interrupted run: disarmed, or waited for when it already acts. */
async function settleWatchdog(host: Host, r: SafetyRecord, log: Logger): Promise<void> {
  if (!r.watchdog) return
  const wd = await inspectWatchdog(host, r.watchdog)
  if (wd?.running && wd.token === r.token) {
    const d = await decideWatchdog(host, r.watchdog, r.token, 'cancel')
    if (d.decided) log.info(`${r.host}: disarmed the watchdog of the interrupted run; post finishes the host`)
    else {
      log.info(`${r.host}: the watchdog is rolling the host back; waiting for it`)
      const end = await waitForWatchdog(host, r.watchdog, 90_000)
      log.info(`${r.host}: the watchdog's result: ${end?.result ?? 'unknown'}`)
    }
  } else if (wd && wd.token === r.token && wd.result) {
    log.info(`${r.host}: the watchdog already ended: ${wd.result}`)
  }
}

/** Finishes one host left by an interrupted run. */
export async function finishHost(
  host: Host,
  r: SafetyRecord,
  settings: Settings,
  log: Logger
): Promise<PostOutcome> {
  const action = postAction(r)
  const outcome: PostOutcome = { host: r.host, action }
  if (action === 'rollback' || action === 'complete') {
    await settleWatchdog(host, r, log)
    const plan = planFrom(
      settings,
      { sha256: r.newSha256 ?? '' },
      supervisorFor(settings.supervisor, settings)
    )
    const report = await new HostUpgrade(host, plan, log).recover(
      { masterPid: r.oldPid!, livePath: r.livePath!, liveSha256: r.oldSha256! },
      {
        complete: action === 'complete',
        reason: `the run was interrupted during the upgrade (phase ${r.phase}): the post step rolls the host back`
      }
    )
    outcome.result = report.result
    outcome.error = report.rollbackError ?? (report.result === 'failed' ? report.error : undefined)
    outcome.repair = report.repair
  }
  if (r.lock) {
    const how = await releaseLock(host, r.lock, r.token)
    if (how === 'released') log.info(`${r.host}: released the deploy lock ${r.lock}`)
    else if (how === 'not-ours')
      log.info(`${r.host}: the deploy lock ${r.lock} is held by another run now; left alone`)
  }
  return outcome
}
