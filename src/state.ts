/**
 * Every value the main step hands to its post step (GitHub's saveState/getState), in one place:
 * the key names and their shapes. The entries pass core.saveState / core.getState in.
 */
import type { SafetyRecord } from './safety/journal.js'

/** Set by the main step: the post step runs the same bundle and tells itself apart by it. */
export const IS_POST = 'isPost'
/**
 * Each host's journal record (which hosts a killed run left mid-upgrade), one key per host, and
 * their number. GitHub keeps every saved value in one file, appended at each save: a record saved
 * alone at each change keeps that file linear in the changes (one list of every host saved at
 * each change would make it hosts × changes: gigabytes at 1,000 hosts).
 */
export const POST_HOST_COUNT = 'zerodownHostCount'
export const postHostKey = (index: number): string => `zerodownHost${index}`

export interface StateStore {
  save(name: string, value: string): void
  get(name: string): string
}

const isRecord = (r: unknown): r is SafetyRecord =>
  typeof r === 'object' &&
  r !== null &&
  typeof (r as SafetyRecord).host === 'string' &&
  typeof (r as SafetyRecord).token === 'string' &&
  typeof (r as SafetyRecord).phase === 'string'

/** The hosts' records saved by the main step; [] when there are none. Malformed ones are left out. */
export function savedRecords(get: StateStore['get']): SafetyRecord[] {
  const countText = get(POST_HOST_COUNT).trim()
  if (countText === '') return []
  const count = Number(countText)
  if (!Number.isSafeInteger(count) || count < 0)
    throw new Error(`the saved number of hosts is not a number: ${JSON.stringify(countText.slice(0, 40))}`)
  const records: SafetyRecord[] = []
  for (let i = 0; i < count; i++) {
    const text = get(postHostKey(i))
    const value: unknown = text.trim() === '' ? null : JSON.parse(text)
    if (isRecord(value)) records.push(value)
  }
  return records
}

/** The main step's side: saving must never fail a run (only the post step's clean-up would be lost). */
export function stateSaver(
  store: StateStore,
  warn: (m: string) => void
): {
  markMain(): void
  persist(record: SafetyRecord, index: number): void
} {
  let warned = false
  /** How many hosts' records the count saved so far covers. */
  let saved = 0
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
    persist: (record, index) => {
      // The count first: a record the post step cannot count would be lost to it.
      if (index >= saved) save(POST_HOST_COUNT, String((saved = index + 1)))
      save(postHostKey(index), JSON.stringify(record))
    }
  }
}

/** The post step's side. */
export const isPostStep = (store: StateStore): boolean => store.get(IS_POST) === 'true'
