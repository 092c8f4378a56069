/** What the nginx supervisor knows of one host during a run: one object per host. */
import type { Host } from '../../host/host.js'
import type { MasterFacts } from './inspect.js'
import type { StartAhead } from './ahead.js'
import { probe, type Snapshot } from './protocol.js'

export class NginxHost {
  /** Pre-flight's facts; set by inspect (or adopt, in the post step). */
  private known: MasterFacts | null = null
  newPid: number | undefined
  /** The live file is a #! script: its master runs the interpreter or what the script execs, not the live file. */
  newIsScript = false
  /** WINCH was sent to the old master: its workers stop accepting, so a revert must HUP it. */
  winchSent = false
  /** HUP went to the old master in this revert: a retried revert must not start more workers. */
  hupSent = false
  /** Workers the new master starts (worker_processes of its config): all must accept before WINCH. */
  expectedWorkers = 1
  /** Config files changed since the old master started: a failing health gate may be their fault. */
  configChange: { files: string[]; masterStarted: string } | null = null
  /** The snapshot WINCH's wait ended on: the health gate starts from it instead of reading again. */
  isolatedSnapshot: Snapshot | null = null
  /**
   * The health gate's last read: the drain starts from it. Old workers never come back after
   * WINCH, so a count of none stays true; any other count is read again.
   */
  servingSnapshot: Snapshot | null = null
  /** USR2 and WINCH sent behind the swap (ahead.ts), taken by the start and the isolation. */
  startAhead: StartAhead | null = null
  /** QUIT and its first read, sent behind the watchdog's confirmation (null: its gate was closed). */
  quitAhead: Promise<(() => Promise<Snapshot>) | null> | null = null

  constructor(
    readonly host: Host,
    readonly pidFile: string,
    readonly pollIntervalMs: number
  ) {}

  facts(): MasterFacts {
    if (this.known === null) throw new Error(`${this.host.name}: the running master is not known yet`)
    return this.known
  }

  get inspected(): boolean {
    return this.known !== null
  }

  learn(facts: MasterFacts): void {
    this.known = facts
  }

  /**
   * A revert must know whether WINCH went ahead: its answer is awaited first. A lost one leaves
   * the flag as it was: the revert reads the host after a new login, when a WINCH that arrived
   * has long shown (no old worker accepts).
   */
  async settleAhead(): Promise<void> {
    const a = this.startAhead
    this.startAhead = null
    if (a !== null && (await a.isolated.catch(() => null)) !== null) this.winchSent = true
  }

  /** Reads to poll with, the first already sent (with the command before it). */
  readsFrom(first: Promise<Snapshot>): () => Promise<Snapshot> {
    let next: Promise<Snapshot> | null = first
    return () => {
      const r = next ?? this.read()
      next = null
      return r
    }
  }

  /** The host's state, with the old and new masters kept in view while nginx renames their pid files. */
  read(): Promise<Snapshot> {
    return probe(this.host, this.pidFile, [this.known?.pid ?? 0, this.newPid ?? 0])
  }
}
