/**
 * Where each host stands, for the post step: one record per host, handed to `persist` at every
 * change, so that the post step can finish what a killed run left (it rolls back, or completes
 * when only the retire remained). Nothing here knows GitHub: src/state.ts saves the records.
 */

/** Where a host stands, for the post step. */
export type SafetyPhase = 'locked' | 'changing' | 'committing' | 'rolling-back' | 'parked' | 'settled'

export interface SafetyRecord {
  /** The host's label (user@host:port), as in the hosts input. */
  host: string
  token: string
  phase: SafetyPhase
  pidFile: string
  /** The lock directory, once taken. */
  lock?: string
  /** The watchdog's state dir, once armed. */
  watchdog?: string
  oldPid?: number
  livePath?: string
  oldSha256?: string
  newSha256?: string
  result?: string
}

/** Every host's record of one run; `persist` gets them all after each change. */
export class Journal {
  private readonly records = new Map<string, SafetyRecord>()

  constructor(
    private readonly base: { token: string; pidFile: string },
    private readonly persist?: (records: SafetyRecord[]) => void
  ) {}

  /** The host's record, created at its first mention (phase locked). */
  of(host: string): SafetyRecord {
    let r = this.records.get(host)
    if (!r) {
      r = { host, token: this.base.token, phase: 'locked', pidFile: this.base.pidFile }
      this.records.set(host, r)
    }
    return r
  }

  /** Changes a host's record and hands every record to persist. */
  update(host: string, change: Partial<SafetyRecord>): void {
    Object.assign(this.of(host), change)
    this.persist?.([...this.records.values()].map(r => ({ ...r })))
  }
}

/** What the post step must do for a host: nothing, release its lock, or finish its upgrade first. */
export function postAction(r: SafetyRecord): 'nothing' | 'unlock' | 'rollback' | 'complete' {
  switch (r.phase) {
    case 'settled':
      return 'nothing'
    case 'locked':
      return r.lock ? 'unlock' : 'nothing'
    case 'committing':
      return 'complete'
    default:
      // changing, rolling-back, parked: the fleet did not commit, or the host had not passed
      return r.oldPid !== undefined && r.livePath && r.oldSha256 ? 'rollback' : r.lock ? 'unlock' : 'nothing'
  }
}
