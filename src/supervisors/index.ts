/** The supervisors this build knows, by the id the `supervisor` setting names. */
import type { UpgradeSignal } from '../settings.js'
import { haproxy } from './haproxy/index.js'
import { nginx } from './nginx/index.js'
import type { Supervisor } from './supervisor.js'
import { tableflip } from './tableflip/index.js'

/** What some supervisors take from the settings: tableflip's signal, and how long an old process may drain. */
export interface SupervisorSettings {
  upgradeSignal?: UpgradeSignal
  drainTimeoutMs?: number
}

const SUPERVISORS: Readonly<Record<string, (o: SupervisorSettings) => Supervisor>> = {
  nginx: () => nginx,
  haproxy: () => haproxy,
  tableflip: o => tableflip({ signal: o.upgradeSignal ?? 'HUP', parentWaitMs: o.drainTimeoutMs ?? 300_000 })
}

export function supervisorFor(id: string, o: SupervisorSettings = {}): Supervisor {
  const make = SUPERVISORS[id]
  if (!make) throw new Error(`no supervisor named ${id} (known: ${Object.keys(SUPERVISORS).join(', ')})`)
  return make(o)
}

export const supervisorIds = (): string[] => Object.keys(SUPERVISORS)
