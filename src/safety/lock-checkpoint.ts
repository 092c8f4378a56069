/**
 * The deploy lock's checkpoint before each step of a host's run (RunSpec.checkpoint): a run whose
 * lock went to another run stops at its next step and rolls back. The renewals' word is enough
 * between steps; the cut-over and the commit start only once the host said again that the lock is
 * ours (one round trip each, on the side shell of the renewals). One per host's run: the load
 * balancer's lock, shared by every backend's run, is asked again at each backend's cut-over.
 */
import type { Step } from '../engine/index.js'
import type { HostLock } from './lock.js'

export function lockCheckpoint(lock: () => HostLock | undefined): (step: Step) => Promise<void> {
  const asked = new Set<string>()
  return async step => {
    const l = lock()
    if (!l) return
    const moment = step.stage === 'ready' || step.stage === 'change' ? 'cut-over' : step.stage
    if ((moment === 'cut-over' || moment === 'commit') && !asked.has(moment)) {
      asked.add(moment)
      await l.verify()
    } else l.check()
  }
}
