/**
 * Every value the main step hands to its post step (GitHub's saveState/getState), in one place:
 * the key names and their shapes. The entries pass core.saveState / core.getState in.
 */
import type { SafetyRecord } from './safety/journal.js'

/** Set by the main step: the post step runs the same bundle and tells itself apart by it. */
export const IS_POST = 'isPost'
/** Each host's journal record: which hosts a killed run left mid-upgrade. */
export const POST_STATE = 'zerodownHosts'

export interface StateStore {
  save(name: string, value: string): void
  get(name: string): string
}

/** The hosts' records saved by the main step; [] when there are none. */
export function savedRecords(text: string): SafetyRecord[] {
  if (text.trim() === '') return []
  const value: unknown = JSON.parse(text)
  if (!Array.isArray(value)) throw new Error('the saved state is not a list')
  return value.filter(
    (r): r is SafetyRecord =>
      typeof r === 'object' &&
      r !== null &&
      typeof (r as SafetyRecord).host === 'string' &&
      typeof (r as SafetyRecord).token === 'string' &&
      typeof (r as SafetyRecord).phase === 'string'
  )
}

/** The main step's side: saving must never fail a run (only the post step's clean-up would be lost). */
export function stateSaver(
  store: StateStore,
  warn: (m: string) => void
): {
  markMain(): void
  persist(records: SafetyRecord[]): void
} {
  let warned = false
  const save = (name: string, value: string) => {
    try {
      store.save(name, value)
    } catch (e) {
      if (!warned)
        warn(
          `cannot save state for the post step (${(e as Error).message}): a killed run would not be cleaned up by it`
        )
      warned = true
    }
  }
  return {
    markMain: () => save(IS_POST, 'true'),
    persist: records => save(POST_STATE, JSON.stringify(records))
  }
}

/** The post step's side. */
export const isPostStep = (store: StateStore): boolean => store.get(IS_POST) === 'true'
