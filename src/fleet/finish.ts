/**
 * The end of a rollout with held hosts: every host passed, so each commits (its old process is
 * retired); or the rollout stopped, so each goes back to its old process (fleet rollback). Both
 * barely touch what a host serves, and a fleet rollback must be quick: wide pools.
 */
import type { Printer } from './host-log.js'
import type { IdleHosts } from './idle.js'
import type { Phase, Pool } from './pool.js'
import { passed, type Slot } from './slot.js'

/** Hosts committed or rolled back at the same time, at least. */
const FINISH_WIDTH = 16
/** With detached hosts, each of which logs in first: the logins overlap, so a fleet rollback stays quick. */
const DETACHED_FINISH_WIDTH = 64

export async function finishHeld(o: {
  out: Printer
  pool: Pool
  slots: Slot[]
  width: number
  stopped: boolean
  cancelled: boolean
  /** hold: true: hosts that all passed stay held beyond the run (leave), not committed. */
  hold?: boolean
  /** Parked hosts beyond idle-connections wait detached: each is woken (logs in again) before it finishes. */
  idle: IdleHosts
}): Promise<void> {
  const parked = o.slots.filter(s => s.report?.result === 'parked')
  if (parked.length === 0) return
  const detached = o.idle.detached
  const width = Math.max(o.width, detached > 0 ? DETACHED_FINISH_WIDTH : FINISH_WIDTH)
  if (detached > 0)
    o.out.line(
      'info',
      `${detached} parked host(s) waited with their connection closed (idle-connections): each logs in again to finish`
    )
  const each = (phase: Phase, fn: (s: Slot) => Promise<void>) =>
    o.pool.each(parked, phase, width, async s => {
      o.idle.wake(s.upgrade!.host)
      await fn(s)
    })
  if (!o.stopped && o.hold) return leaveHeld(o, parked, each)
  if (!o.stopped) {
    o.out.line(
      'info',
      `every host passed: committing ${parked.length} host(s) (QUIT to each parked old master)`
    )
    await each('commit', async s => {
      s.report = await s.upgrade!.commit()
      if (s.report.result !== 'upgraded')
        s.log.error(`${s.target.label}: the commit failed: ${s.report.error ?? 'unknown error'}`, {
          step: 'quit'
        })
    })
    return
  }
  const cause = o.slots
    .filter(s => s.report !== undefined && !passed(s.report))
    .map(s => `${s.target.label} failed at ${s.report!.failedStep ?? 'an unknown step'}`)
    .join(', ')
  const reason = `fleet rollback: ${o.cancelled ? 'the run was cancelled' : cause || 'the rollout stopped'}`
  await each('abort', async s => {
    s.aborted = true
    s.report = await s.upgrade!.abort(reason)
    if (s.report.result !== 'rolled-back')
      s.log.error(
        `${s.target.label}: the fleet rollback of this host failed: ${s.report.rollbackError ?? s.report.error}; ` +
          `repair it by hand: ${(s.report.repair ?? []).filter(l => !l.startsWith('#')).join('; ')}`,
        { step: 'rollback' }
      )
  })
}

/** hold: true and every host passed: each stays held, for a later run with mode commit or abort. */
async function leaveHeld(
  o: { out: Printer },
  parked: Slot[],
  each: (phase: Phase, fn: (s: Slot) => Promise<void>) => Promise<unknown>
): Promise<void> {
  o.out.line(
    'info',
    `every host passed: leaving ${parked.length} host(s) held (hold: true); run mode: commit to retire the old processes, or mode: abort to return to them`
  )
  await each('hold', async s => {
    s.report = await s.upgrade!.leave()
    if (s.report.result !== 'parked')
      s.log.error(
        `${s.target.label}: could not be left held, so it went back to its old process (${s.report.result}): ${s.report.error ?? 'unknown error'}`,
        { step: 'hold' }
      )
  })
}
