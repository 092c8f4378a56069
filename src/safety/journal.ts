/**
 * Where each host stands, for the post step: one record per host, handed to `persist` at each
 * of its changes, so that the post step can finish what a killed run left (it rolls back, or completes
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

/** Every host's record of one run; `persist` gets a host's record (and its index) at each change of it. */
export class Journal {
  private readonly records = new Map<string, SafetyRecord>()
  /** Each host's index: the order of first mention. */
  private readonly index = new Map<string, number>()

  constructor(
    private readonly base: { token: string; pidFile: string },
    private readonly persist?: (record: SafetyRecord, index: number) => void
  ) {}

  /** The host's record, created at its first mention (phase locked). */
  of(host: string): SafetyRecord {
    let r = this.records.get(host)
    if (!r) {
      r = { host, token: this.base.token, phase: 'locked', pidFile: this.base.pidFile }
      this.index.set(host, this.records.size)
      this.records.set(host, r)
    }
    return r
  }

  /** Changes a host's record and hands it to persist, with its index (the order of first mention). */
  update(host: string, change: Partial<SafetyRecord>): void {
    const r = Object.assign(this.of(host), change)
    this.persist?.({ ...r }, this.index.get(host)!)
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
