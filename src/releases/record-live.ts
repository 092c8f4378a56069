/**
 * Pre-flight's record of the running binary: it is in the release store (stored as found when
 * zerodown never saw it) and marked live, before a deploy replaces it; rollback needs it.
 */
import { StepError } from '../engine/index.js'
import type { StoreAhead } from './read-ahead.js'
import { markLive, StoreError, versionText, withRelease, type Release, type StoreState } from './state.js'
import { ReleaseStore, STORED_GATE } from './store.js'

const shortSha = (s: string) => s.slice(0, 12)

const refuse = (e: unknown): never => {
  throw e instanceof StoreError ? new StepError('preflight', e.message) : e
}

/** The running binary is in the store and marked live; returns the store's state. */
export async function recordLive(
  store: ReleaseStore,
  r: { pid: number; livePath: string; runningSha256: string; exeReplaced: boolean; version: string | null },
  now: string,
  note: (s: string) => void,
  link?: boolean,
  /** The store's reads sent ahead (read-ahead.ts), for this store. */
  early?: StoreAhead | null
): Promise<StoreState> {
  // The build that runs must be in the store before a deploy replaces it: rollback needs it.
  // When a package manager replaced the file under the process, it is read from /proc/<pid>/exe.
  const running = r.runningSha256
  const from = r.exeReplaced ? `/proc/${r.pid}/exe` : r.livePath
  // The state and the stored file's sha256 in one round trip (pipelined), or sent ahead.
  const copy = early ? await early.runningCopy : undefined
  const [read, stored] = await Promise.all([
    early ? early.state : store.read(),
    copy?.running === running ? copy.stored : store.storedSha256(running)
  ]).catch(e => refuse(e))
  const had = read.releases.find(x => x.sha256 === running)
  const found: Release | undefined = had
    ? undefined
    : { sha256: running, version: versionText(r.version), deployedAt: now, origin: 'found' }
  const listed = found ? withRelease(read, found) : read
  const wrong = listed.live !== running || listed.lineage[listed.lineage.length - 1] !== running
  const state = wrong ? markLive(listed, running, now) : listed
  // Written only when it changed: the lock, taken in the same folder, already showed it writable.
  // With a file to store, the write goes with it, run by the host only once what landed checks out.
  const changed = state !== read
  const gated = changed && store.gates && stored !== running
  // From /proc/<pid>/exe no link can be made: a copy at once.
  const putting = store.put(from, running, stored, {
    link: r.exeReplaced ? false : link,
    gate: gated ? STORED_GATE : undefined
  })
  const writing = gated ? store.write(state, found, STORED_GATE) : null
  writing?.catch(() => undefined) // awaited below, once the put is known
  const how = await putting.catch(e => refuse(e))
  if (found)
    note(
      `release store ${store.dir}: recorded the running binary (version ${found.version ?? 'unknown'}, sha256 ${shortSha(found.sha256)}, ${how}${r.exeReplaced ? ` from ${from}` : ''})`
    )
  else if (how !== 'present')
    note(`release store: the live release's file was missing or damaged; stored it again (${how})`)
  if (wrong && had && listed.live !== null && listed.live !== running)
    note(
      `release store: it named ${shortSha(listed.live)} live, but the host runs ${shortSha(running)}; corrected`
    )
  const written = writing ? await writing.catch(e => refuse(e)) : false
  if (changed && !written) await store.write(state, found).catch(e => refuse(e))
  return state
}
