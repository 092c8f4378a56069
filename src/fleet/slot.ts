/** One host's place in a rollout: its target, batch, log, connection, run and report. */
import type { HostReport, StepReport } from '../engine/types.js'
import type { Host } from '../host/host.js'
import type { HostTarget } from '../settings.js'
import type { HostLog } from './host-log.js'
import type { HostUpgrade } from './host-upgrade.js'

export interface Slot {
  target: HostTarget
  batch: number
  log: HostLog
  connecting?: Promise<Host>
  connectStep?: StepReport
  upgrade?: HostUpgrade
  report?: HostReport
  /** Rolled back because another host failed. */
  aborted?: boolean
  /** In a phase whose lines are held back (for the heartbeat). */
  busySince?: number
}

/** The report of a host that no step touched (its connect step, if it tried). */
export function untouched(slot: Slot): HostReport {
  const now = new Date().toISOString()
  return {
    host: slot.target.label,
    result: 'untouched',
    startedAt: now,
    endedAt: now,
    durationMs: 0,
    steps: slot.connectStep ? [slot.connectStep] : [],
    drain: [],
    health: [],
    batch: slot.batch
  }
}

/** The host passed its part: held until the fleet commits, upgraded, or nothing to do. */
export const passed = (r: HostReport | undefined): boolean =>
  r !== undefined && (r.result === 'parked' || r.result === 'upgraded' || r.result === 'unchanged')
