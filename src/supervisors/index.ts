/** The supervisors this build knows, by the id the `supervisor` setting names. */
import { nginx } from './nginx/index.js'
import type { Supervisor } from './supervisor.js'

const SUPERVISORS: Readonly<Record<string, Supervisor>> = { nginx }

export function supervisorFor(id: string): Supervisor {
  const s = SUPERVISORS[id]
  if (!s) throw new Error(`no supervisor named ${id} (known: ${Object.keys(SUPERVISORS).join(', ')})`)
  return s
}

export const supervisorIds = (): string[] => Object.keys(SUPERVISORS)
