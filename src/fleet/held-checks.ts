/**
 * The checks mode commit and abort make before anything on a host is signalled: the held-state
 * record against what this run knows (not what the host says), and the processes it names
 * against /proc.
 */
import type { HeldRecord, sameProcess } from '../safety/held.js'
import { heldPath, parseHeld } from '../safety/held.js'
import { watchdogDir } from '../safety/watchdog.js'
import type { Settings } from '../settings.js'
import { sidePaths } from '../strategies/hot-upgrade/install.js'
import type { HeldModeDeps } from './held-mode.js'

type Verb = 'commit' | 'abort'

/** The record, if any, checked against what this run knows (not what the host says). */
export function checkRecord(
  text: string,
  dir: string,
  live: string,
  settings: Settings,
  deps: HeldModeDeps
): HeldRecord {
  const parsed = parseHeld(text)
  const where = heldPath(dir)
  if ('problem' in parsed)
    throw new Error(
      `refusing ${where}: ${parsed.problem}; nothing was done (remove it by hand once you have checked the host)`
    )
  const expected: [string, string, string][] = [
    ['supervisor', parsed.supervisor, deps.supervisor.names.id],
    ['pid file', parsed.pidFile, settings.pidFile],
    ['live binary', parsed.livePath, live],
    ['kept binary', parsed.previousPath, sidePaths(live).previous],
    ['watchdog', parsed.watchdog, watchdogDir(dir)]
  ]
  // A commit keeps the binary a hold run tried: only that workflow run's own commit job may keep it.
  const runId = deps.owner.runId
  if (settings.mode === 'commit' && parsed.runId && runId && parsed.runId !== runId)
    throw new Error(
      `refusing ${where}: it was held by workflow run ${parsed.runId}, not this one (${runId}); a commit keeps only its own run's hosts: run mode: abort here, or commit from that run`
    )
  for (const [what, got, want] of expected)
    if (got !== want)
      throw new Error(
        `refusing ${where}: its ${what} is '${got}', this run expects '${want}'; nothing was done`
      )
  return parsed
}

/** Refuses what cannot be finished, before the watchdog is told: a reused pid, or nothing left to keep or to go back to. */
export function checkProcesses(
  rec: HeldRecord,
  old: ReturnType<typeof sameProcess>,
  neu: ReturnType<typeof sameProcess>,
  verb: Verb,
  held: string,
  where: string
): void {
  for (const [which, p, state] of [
    ['old', rec.old, old],
    ['new', rec.new, neu]
  ] as const)
    if (state === 'other')
      throw new Error(
        `pid ${p.pid} is no longer the ${which} process the hold run recorded (its start time or executable differ): not signalling it; check the host (record ${where})`
      )
  if (neu === 'gone' && verb === 'commit')
    throw new Error(`${held}: the new process is gone, there is nothing to commit to: run mode: abort`)
  if (old === 'gone' && verb === 'abort')
    throw new Error(
      `${held}: the old process is gone (committed, or stopped), there is nothing to go back to: run mode: rollback for the previous release`
    )
}
