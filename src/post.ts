/**
 * The post step (action.yml runs.post, post-if: always()). GitHub runs it after the job's steps,
 * also when the job was cancelled or the main step was killed before it could clean up. It reads
 * what the main step saved (each host's phase, see safety.ts) and finishes what was left:
 *
 * - a host in the middle of an upgrade is rolled back, or completed when only the old master's
 *   QUIT remained (phase committing); its watchdog is disarmed first, so that the two never act
 *   at the same time (when the watchdog already acted, post waits for it and checks its work);
 * - the host's deploy lock is released (only when this run still holds it).
 *
 * A main step that ended normally left every host settled: post says so and connects nowhere.
 */
import * as core from '@actions/core'
import type { Host } from './host/host.js'
import { releaseLock } from './lock.js'
import { connector, coreLogger, maskSecrets, POST_STATE } from './main.js'
import { planFrom } from './rollout.js'
import type { SafetyRecord } from './safety.js'
import { readSettings, type Settings } from './settings.js'
import { HostUpgrade } from './upgrade/machine.js'
import type { HostResult, Logger } from './upgrade/types.js'
import { decideWatchdog, inspectWatchdog, waitForWatchdog } from './upgrade/watchdog.js'

/** True in the post step: the main step saved isPost (GitHub passes saved state to post only). */
export function isPost(): boolean {
  return core.getState('isPost') === 'true'
}

/** The hosts' records saved by the main step; [] when there are none. */
export function savedRecords(text: string): SafetyRecord[] {
  if (text.trim() === '') return []
  const value: unknown = JSON.parse(text)
  if (!Array.isArray(value)) throw new Error('the saved state is not a list')
  return value.filter(
    (r): r is SafetyRecord =>
      typeof r === 'object' &&
      r !== null &&
      typeof (r as SafetyRecord).host === 'string' &&
      typeof (r as SafetyRecord).token === 'string' &&
      typeof (r as SafetyRecord).phase === 'string'
  )
}

/** What post must do for a host: nothing, release its lock, or finish its upgrade first. */
export function postAction(r: SafetyRecord): 'nothing' | 'unlock' | 'rollback' | 'complete' {
  switch (r.phase) {
    case 'settled':
      return 'nothing'
    case 'locked':
      return r.lock ? 'unlock' : 'nothing'
    case 'committing':
      return 'complete'
    default:
      // changing, rolling-back, parked: the fleet did not commit, or the host had not passed
      return r.oldPid !== undefined && r.livePath && r.oldSha256 ? 'rollback' : r.lock ? 'unlock' : 'nothing'
  }
}

export interface PostOutcome {
  host: string
  action: ReturnType<typeof postAction>
  result?: HostResult
  error?: string
  repair?: string[]
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
    if (r.watchdog) {
      const wd = await inspectWatchdog(host, r.watchdog)
      if (wd?.running && wd.token === r.token) {
        const d = await decideWatchdog(host, r.watchdog, r.token, 'cancel')
        if (d.decided)
          log.info(`${r.host}: disarmed the watchdog of the interrupted run; post finishes the host`)
        else {
          log.info(`${r.host}: the watchdog is rolling the host back; waiting for it`)
          const end = await waitForWatchdog(host, r.watchdog, 90_000)
          log.info(`${r.host}: the watchdog's result: ${end?.result ?? 'unknown'}`)
        }
      } else if (wd && wd.token === r.token && wd.result) {
        log.info(`${r.host}: the watchdog already ended: ${wd.result}`)
      }
    }
    const plan = planFrom(settings, { sha256: r.newSha256 ?? '' })
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

export async function post(): Promise<void> {
  let records: SafetyRecord[]
  try {
    records = savedRecords(core.getState(POST_STATE))
  } catch (e) {
    core.warning(
      `zerodown post: cannot read the state saved by the main step (${(e as Error).message}); nothing done`
    )
    return
  }
  const open = records.filter(r => postAction(r) !== 'nothing')
  if (open.length === 0) {
    core.info(
      records.length === 0
        ? 'zerodown post: the main step touched no host; nothing to clean up'
        : `zerodown post: the main step settled every host (${records.map(r => `${r.host} ${r.result ?? r.phase}`).join(', ')}); nothing to clean up`
    )
    return
  }
  let settings: Settings
  try {
    settings = readSettings(name => core.getInput(name), process.env)
  } catch (e) {
    core.setFailed(`zerodown post: ${(e as Error).message}`)
    return
  }
  maskSecrets(settings)
  core.info(
    `zerodown post: the main step was interrupted with ${open.length} host(s) unfinished: ${open.map(r => `${r.host} (${r.phase})`).join(', ')}`
  )
  const connect = connector(settings, coreLogger)
  const outcomes = await Promise.all(
    open.map(async (r): Promise<PostOutcome> => {
      const target = settings.hosts.find(t => t.label === r.host)
      if (!target) return { host: r.host, action: postAction(r), error: 'not in the hosts input any more' }
      let host: Host | undefined
      try {
        host = await connect(target)
        return await finishHost(host, r, settings, coreLogger)
      } catch (e) {
        return { host: r.host, action: postAction(r), error: (e as Error).message }
      } finally {
        await host?.close()
      }
    })
  )
  const bad: string[] = []
  for (const o of outcomes) {
    if (o.action === 'unlock' && !o.error) continue
    if (o.error || o.result === 'failed') {
      bad.push(`${o.host}: ${o.error ?? 'failed'}`)
      core.error(
        `${o.host}: the post step could not finish this host: ${o.error ?? 'failed'}` +
          (o.repair ? `. Repair it on the host:\n${o.repair.join('\n')}` : ''),
        { title: `${o.host}: post` }
      )
    } else {
      core.info(
        `${o.host}: ${o.result === 'upgraded' ? 'the upgrade was completed' : `ends ${o.result}: the old version serves`}`
      )
    }
  }
  if (bad.length > 0) core.setFailed(`zerodown post: ${bad.join('; ')}`)
}
