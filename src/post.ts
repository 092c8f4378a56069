/**
 * The post step (action.yml runs.post, post-if: always()). GitHub runs it after the job's steps,
 * also when the job was cancelled or the main step was killed before it could clean up. It reads
 * what the main step saved (each host's phase, see safety/journal.ts) and finishes what was left
 * (recover.ts):
 *
 * - a host in the middle of an upgrade is rolled back, or completed when only the old master's
 *   QUIT remained (phase committing); its watchdog is disarmed first, so that the two never act
 *   at the same time (when the watchdog already acted, post waits for it and checks its work);
 * - the host's deploy lock is released (only when this run still holds it).
 *
 * A main step that ended normally left every host settled: post says so and connects nowhere.
 */
import * as core from '@actions/core'
import { connector } from './app.js'
import { lockOwnerFromEnv, releaseLock } from './safety/lock.js'
import { recoverUpstream } from './strategies/upstream/recover.js'
import type { Host } from './host/host.js'
import { finishHost, type PostOutcome } from './recover.js'
import { coreLogger, maskSecrets } from './report/github.js'
import { postAction, type SafetyRecord } from './safety/journal.js'
import { readSettings, type Settings } from './settings.js'
import { isPostStep, savedRecords } from './state.js'

/** True in the post step: the main step saved isPost (GitHub passes saved state to post only). */
export function isPost(): boolean {
  return isPostStep({ save: core.saveState, get: core.getState })
}

export async function post(): Promise<void> {
  let records: SafetyRecord[]
  try {
    records = savedRecords(name => core.getState(name))
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
  if (settings.strategy === 'upstream') return postUpstream(settings, open, connect)
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

/**
 * Strategy upstream: every server the run took out and that answers its health check goes back
 * in through the load balancer (recoverUpstream); the hosts' locks are released. Binaries are left
 * as they are: whichever version answers its health check serves.
 */
async function postUpstream(
  settings: Settings,
  open: SafetyRecord[],
  connect: ReturnType<typeof connector>
): Promise<void> {
  const token = open[0]!.token
  try {
    const r = await recoverUpstream(settings, { connect, log: coreLogger, owner: lockOwnerFromEnv(), token })
    for (const a of r.restored)
      core.info(`zerodown post: ${a} is back in upstream ${settings.upstream!.name}`)
    for (const l of r.left)
      core.error(
        `zerodown post: left out of upstream ${settings.upstream!.name} (its health check fails): ${l}`
      )
    if (r.left.length > 0)
      core.setFailed(`zerodown post: ${r.left.length} server(s) stay down in the load balancer`)
  } catch (e) {
    core.setFailed(
      `zerodown post: could not put the servers back in the load balancer: ${(e as Error).message}`
    )
  }
  await Promise.all(
    open
      .filter(rec => rec.lock !== undefined)
      .map(async rec => {
        const target = settings.hosts.find(t => t.label === rec.host)
        if (!target) return
        const host = await connect(target).catch(() => undefined)
        if (host) await releaseLock(host, rec.lock!, rec.token).catch(() => undefined)
        await host?.close()
      })
  )
}
