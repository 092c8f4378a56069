/**
 * The deploy lock's checkpoint before each step of a host's run (RunSpec.checkpoint): a run whose
 * lock went to another run stops at its next step and rolls back. The renewals' word is enough
 * between steps; the cut-over and the commit start only once the host said again that the lock is
 * ours, on the side shell of the renewals. One per host's run: the load balancer's lock, shared by
 * every backend's run, is asked again at each backend's cut-over.
 *
 * Given the run's steps, the question is asked ahead, at the checkpoint of the first of the three
 * steps before the moment, and answered beside their work (the upload, which the config test
 * follows on the host without a round trip of its own; WINCH and the health gate): the moment
 * then starts without a round trip of its own, on the host's word given after those steps began
 * (at most 10 s before, else it is asked again). A lease is lost only when its renewals stop
 * for a whole lease, or by hand: what such a word misses is a lock removed in those seconds, which
 * the next renewal reports.
 */
import type { Step } from '../engine/index.js'
import type { HostLock } from './lock.js'

/** How many steps before a moment its question is asked. */
const AHEAD = 3
/** An answer older than this is asked again (a pre-staged host waits for its batch, a held one for its commit). */
const FRESH_MS = 10_000

type Moment = 'cut-over' | 'commit'

function momentOf(step: Step): Moment | null {
  if (step.stage === 'ready' || step.stage === 'change') return 'cut-over'
  return step.stage === 'commit' ? 'commit' : null
}

export function lockCheckpoint(
  lock: () => HostLock | undefined,
  steps?: readonly Step[]
): (step: Step) => Promise<void> {
  const asked = new Set<Moment>()
  const early = new Map<Moment, { answer: Promise<void>; at: number }>()
  return async step => {
    const l = lock()
    if (!l) return
    const moment = momentOf(step)
    if (moment !== null && !asked.has(moment)) {
      asked.add(moment)
      const ahead = early.get(moment)
      early.delete(moment)
      await (ahead && Date.now() - ahead.at < FRESH_MS ? ahead.answer : l.verify())
    }
    // A renewal since may have found the lock in other hands.
    l.check()
    const coming = nextMoment(steps, step, asked)
    if (coming !== null && !early.has(coming)) {
      const answer = l.verify()
      answer.catch(() => undefined) // awaited at the moment; a run that ends before never asks
      early.set(coming, { answer, at: Date.now() })
    }
  }
}

/** The moment not asked yet that begins within AHEAD steps after `step`, if any. */
function nextMoment(steps: readonly Step[] | undefined, step: Step, asked: Set<Moment>): Moment | null {
  const i = steps?.indexOf(step) ?? -1
  if (i < 0) return null
  for (const next of steps!.slice(i + 1, i + 1 + AHEAD)) {
    const m = momentOf(next)
    if (m !== null && !asked.has(m)) return m
  }
  return null
}
