/** What the tableflip supervisor knows of one host during a run: one object per host. */
import type { Host } from '../../host/host.js'
import type { UpgradeSignal } from '../../settings.js'
import type { Running } from '../supervisor.js'
import { probe, type Snapshot } from './protocol.js'

export interface TableflipOptions {
  pidFile: string
  binaryPath?: string
  pollIntervalMs: number
  /** The signal on which the server calls Upgrade(). */
  signal: UpgradeSignal
  /** How long a revert waits for an old process to finish its requests before a hand-over back. */
  parentWaitMs: number
  /** For the trust checks: the release store, and one more user the server may run as. */
  releaseDir?: string
  masterUser?: string
}

export class TableflipHost {
  /** Pre-flight's facts; set by inspect (or adopt, in the post step). */
  private known: Running | null = null
  /** The process that serves the new binary, once the hand-over went through. */
  newPid: number | undefined
  /** The upgrade signal reached the old process in this run (a retried start must not send it twice). */
  signalled = false

  constructor(
    readonly host: Host,
    readonly o: TableflipOptions
  ) {}

  facts(): Running {
    if (this.known === null) throw new Error(`${this.host.name}: the running server is not known yet`)
    return this.known
  }

  learn(facts: Running): void {
    this.known = facts
  }

  /** The host's state, with the old and new processes kept in view whatever the pid file says. */
  read(extra: readonly number[] = []): Promise<Snapshot> {
    return probe(this.host, this.o.pidFile, [this.known?.pid ?? 0, this.newPid ?? 0, ...extra])
  }
}
