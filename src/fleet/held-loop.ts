/**
 * The loop of mode commit and abort: the hosts finished `width` at a time, each host's lines
 * printed together as it ends. A cancel (SIGINT, SIGTERM) starts no further host, but never
 * interrupts one: a commit or an abort stopped halfway (the watchdog told, the old process not
 * yet retired or returned to) would leave the host worse than either end. The hosts not reached
 * are reported untouched (still held, if they were), and the run fails.
 */
import type { HostReport, Logger } from '../engine/types.js'
import { HostLog, Printer } from './host-log.js'
import { tally, type RolloutResult } from './tally.js'
import { untouched, type Slot } from './slot.js'
import type { HostTarget } from '../settings.js'

export interface FinishLoop {
  targets: HostTarget[]
  width: number
  verb: 'commit' | 'abort'
  log: Logger
  /** Aborted when the run is cancelled. */
  signal?: AbortSignal
  /** One host's commit or abort; its lines go to log. Never throws (a failure is a report). */
  finish: (target: HostTarget, log: Logger) => Promise<HostReport>
}

export async function finishEach(o: FinishLoop): Promise<RolloutResult> {
  const started = Date.now()
  const slots: Slot[] = o.targets.map(target => ({ target, batch: 0, log: new HostLog(target.label) }))
  const out = new Printer(o.log)
  const cancelled = () => o.signal?.aborted === true
  let next = 0
  const onCancel = () =>
    out.line(
      'warn',
      `the run was cancelled: the host(s) being finished complete their ${o.verb}; no further host starts`,
      { step: o.verb }
    )
  o.signal?.addEventListener('abort', onCancel, { once: true })
  const worker = async () => {
    while (next < slots.length && !cancelled()) {
      const slot = slots[next++]!
      slot.report = await o.finish(slot.target, slot.log)
      // Sent back on purpose: not a failure of this run (the tally counts it, the summary names no cause).
      if (o.verb === 'abort' && slot.report.result === 'rolled-back') slot.aborted = true
      void out.enqueue(() =>
        out.log.group(`${slot.target.label}: ${slot.report!.result}`, async () => {
          slot.log.attach(out.log)
          slot.log.detach()
        })
      )
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(slots.length, o.width) }, worker))
  } finally {
    o.signal?.removeEventListener('abort', onCancel)
  }
  const missed = slots.filter(s => s.report === undefined)
  const message = `not reached: the run was cancelled before its ${o.verb} started; it keeps what it had (still held, if it was, until its watchdog's hold-timeout): run ${o.verb} again`
  for (const s of missed) s.report = { ...untouched(s), failedStep: o.verb, error: message }
  if (missed.length > 0)
    out.line(
      'warn',
      `the run was cancelled: ${missed.length} host(s) not reached (${missed.map(s => s.target.label).join(', ')}) are still held, if they were: run ${o.verb} again`,
      { step: o.verb }
    )
  await out.idle()
  return heldTally(slots, started)
}

/**
 * The tally of a commit or abort. A host left untouched (not reached, or not connected) may still
 * be held, so the run failed, even when every other host went back (which alone is an abort's success).
 */
export function heldTally(slots: Slot[], started: number): RolloutResult {
  const run = tally(slots, started)
  return run.counts.untouched > 0 ? { ...run, result: 'failed' } : run
}
