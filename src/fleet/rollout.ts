/**
 * Many hosts: a canary first, then batches of max-parallel hosts in parallel, one SSH connection
 * per host, and an honest overall result.
 *
 * With rollback-fleet (the default, when the supervisor can hold) every host stops after its
 * drain with its old process held (nginx: the old master, holding only its listening sockets).
 * When every host has passed, each commits; when any host fails, no further host starts and every
 * held host goes back to its original process. With rollback-fleet: false each host commits as
 * soon as it passes, and a failure only stops the run.
 */
import type { Logger } from '../engine/types.js'
import type { Settings } from '../settings.js'
import type { UpgradePlan } from '../strategies/hot-upgrade/index.js'
import { connectFailed, connectSlot, type Connect } from './connect.js'
import { finishHeld } from './finish.js'
import { HostLog, Printer } from './host-log.js'
import { HostUpgrade, type HostWrap } from './host-upgrade.js'
import { IdleHosts } from './idle.js'
import { batchNamer, describePlan, planBatches } from './plan.js'
import { heartbeat, Pool } from './pool.js'
import { prestageAll, releaseReady } from './prestage.js'
import { passed, type Slot } from './slot.js'
import { tally, type RolloutResult } from './tally.js'

export interface RolloutDeps {
  /** Opens the one connection of a host; its own messages (reconnects) go to that host's log. */
  connect: Connect
  log: Logger
  /** What each host's run is wrapped in (the release store, the lock, the watchdog, the journal). */
  wrap?: HostWrap
  /** While hosts in parallel hold their lines back, a line this often says which are busy. Default 30 s. */
  heartbeatMs?: number
}

export async function runRollout(
  settings: Settings,
  plan: UpgradePlan,
  deps: RolloutDeps
): Promise<RolloutResult> {
  const started = Date.now()
  const out = new Printer(deps.log)
  const batches = planBatches(settings.hosts.length, settings.canary, settings.maxParallel)
  const slots: Slot[] = settings.hosts.map(target => ({ target, batch: 0, log: new HostLog(target.label) }))
  batches.forEach((b, k) => b.forEach(i => (slots[i]!.batch = k)))
  // hold: true parks every host, even one alone: it is left held for mode commit or abort.
  const park = settings.hold || (settings.rollbackFleet && slots.length > 1)
  const hasCanary = settings.canary > 0 && slots.length > 1
  const width = settings.maxParallel
  const via = settings.jumpHost ? ` through the jump host ${settings.jumpHost.label}` : ''
  const batchName = batchNamer(batches, hasCanary)
  const pool = new Pool(out, batchName)
  const idle = new IdleHosts(settings.idleConnections)
  const connect = (slot: Slot) => connectSlot(slot, deps.connect, via)

  /** Connects the slot and makes its run; null when the connection failed (reported). */
  const start = async (slot: Slot): Promise<HostUpgrade | null> => {
    const host = await connect(slot).catch((e: Error) => {
      connectFailed(slot, e, { via, jumpHost: settings.jumpHost !== undefined })
      return null
    })
    if (host === null) return null
    const upgrade = new HostUpgrade(host, plan, slot.log, deps.wrap)
    slot.upgrade = upgrade
    upgrade.report.batch = slot.batch
    if (slot.connectStep) upgrade.report.steps.push(slot.connectStep)
    return upgrade
  }

  const runOne = async (slot: Slot): Promise<void> => {
    // Pre-staged: the run goes on from the verified staging file (or was over at pre-staging).
    if (slot.report !== undefined) return
    const upgrade = slot.upgrade ?? (await start(slot))
    if (upgrade === null) return
    idle.wake(upgrade.host)
    // slot.report is set once the phase is over: until then the host counts as running.
    slot.report = await upgrade.run({ park })
  }

  const beat = heartbeat(out, slots, deps.heartbeatMs ?? 30_000)
  let stopped = false
  /** The job was cancelled: no host starts any more, and the held ones go back (the engine rolls back the running ones). */
  const cancelled = () => plan.signal?.aborted === true
  try {
    if (slots.length > 1) out.line('info', describePlan(settings, batches, hasCanary, park))
    if (settings.prestage && !(await prestageAll({ out, pool, slots, width, cancelled, start, idle })))
      stopped = true
    else
      stopped = await runBatches({
        settings,
        out,
        pool,
        slots,
        batches,
        batchName,
        hasCanary,
        park,
        cancelled,
        connect,
        runOne,
        idle
      })
  } catch (e) {
    stopped = true
    out.line('error', `the rollout stopped on an internal error: ${(e as Error).message}`, {
      step: 'rollout'
    })
  } finally {
    try {
      await finishHeld({
        out,
        pool,
        slots,
        width,
        stopped,
        cancelled: cancelled(),
        hold: settings.hold,
        idle
      })
      // Pre-staged hosts whose batch never came: nothing of this run stays on them.
      if (stopped)
        await releaseReady({ pool, slots, width, idle }, "the rollout stopped before this host's batch")
    } finally {
      clearInterval(beat)
      await closeAll(slots, out)
    }
  }
  return { ...tally(slots, started), supervisor: plan.supervisor?.names.id ?? 'nginx' }
}

interface BatchRun {
  settings: Settings
  out: Printer
  pool: Pool
  slots: Slot[]
  batches: number[][]
  batchName: (k: number) => string
  hasCanary: boolean
  park: boolean
  cancelled: () => boolean
  connect: (slot: Slot) => Promise<unknown>
  runOne: (slot: Slot) => Promise<void>
  idle: IdleHosts
}

/** The batches in order, the next one connecting ahead; true when the rollout stopped (a failure, a cancel). */
async function runBatches(o: BatchRun): Promise<boolean> {
  const {
    settings,
    out,
    pool,
    slots,
    batches,
    batchName,
    hasCanary,
    park,
    cancelled,
    connect,
    runOne,
    idle
  } = o
  const width = settings.maxParallel
  for (const [k, batch] of batches.entries()) {
    if (cancelled()) {
      out.line('warn', `the run was cancelled before the ${batchName(k)}: no further host starts`, {
        step: 'rollout'
      })
      return true
    }
    const members = batch.map(i => slots[i]!)
    // Hosts that wait through this batch (parked, or pre-staged for a later one) may be detached.
    for (const s of slots) if (!members.includes(s) && waiting(s)) idle.rest(s.upgrade!.host)
    const failedIn = () => members.filter(s => s.report !== undefined && !passed(s.report))
    // The next batch connects while this one runs: connecting changes nothing on a host.
    for (const i of batches[k + 1] ?? []) void connect(slots[i]!)
    if (slots.length > 1)
      out.line(
        'info',
        `${batchName(k)}: ${members.map(s => s.target.label).join(', ')}` +
          (members.length > 1 ? ` (${Math.min(width, members.length)} at a time)` : '')
      )
    // Within a batch larger than max-parallel (a big canary), a failure stops further starts.
    await pool.each(members, 'run', width, runOne, () => failedIn().length > 0 || cancelled())
    const failed = failedIn()
    if (failed.length > 0) {
      const upgradedSoFar = slots.filter(s => s.report?.result === 'parked').length
      const where = hasCanary && k === 0 ? 'the canary' : batchName(k)
      out.line(
        cancelled() ? 'warn' : 'error',
        (cancelled()
          ? `the run was cancelled during ${where}: no further host starts`
          : `${failed.map(s => s.target.label).join(', ')} failed in ${where}: no further host starts`) +
          (park
            ? `; the ${upgradedSoFar} host(s) upgraded in this run go back to their old masters (rollback-fleet)`
            : settings.rollbackFleet
              ? ''
              : '; rollback-fleet is false: hosts already upgraded keep the new version'),
        { step: 'rollout' }
      )
      return true
    }
  }
  return false
}

/** Parked until the fleet passed, or pre-staged and ready for its batch. */
const waiting = (s: Slot) =>
  s.upgrade !== undefined && (s.report === undefined || s.report.result === 'parked')

/** Closes every connection, then prints lines no phase printed yet (a host connected ahead of a batch that never started). */
async function closeAll(slots: Slot[], out: Printer): Promise<void> {
  await Promise.allSettled(
    slots.map(async s => {
      const host = await s.connecting?.catch(() => undefined)
      await host?.close()
    })
  )
  for (const s of slots.filter(x => x.log.pending))
    void out.enqueue(() =>
      out.log.group(`${s.target.label}: ${s.report?.result ?? 'untouched'}`, async () => {
        s.log.attach(out.log)
        s.log.detach()
      })
    )
  await out.idle()
}
