/**
 * The end of a rollout with held hosts: every host passed, so each commits (its old process is
 * retired); or the rollout stopped, so each goes back to its old process (fleet rollback). Both
 * barely touch what a host serves, and a fleet rollback must be quick: wide pools.
 */
import type { Printer } from './host-log.js'
import type { Pool } from './pool.js'
import { passed, type Slot } from './slot.js'

/** Hosts committed or rolled back at the same time, at least. */
const FINISH_WIDTH = 16

export async function finishHeld(o: {
  out: Printer
  pool: Pool
  slots: Slot[]
  width: number
  stopped: boolean
  cancelled: boolean
}): Promise<void> {
  const parked = o.slots.filter(s => s.report?.result === 'parked')
  if (parked.length === 0) return
  const width = Math.max(o.width, FINISH_WIDTH)
  if (!o.stopped) {
    o.out.line(
      'info',
      `every host passed: committing ${parked.length} host(s) (QUIT to each parked old master)`
    )
    await o.pool.each(parked, 'commit', width, async s => {
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
  await o.pool.each(parked, 'abort', width, async s => {
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
