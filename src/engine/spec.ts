/** What the engine is given for one host: the steps, what settles the run, who follows it. */
import type { Host } from '../host/host.js'
import type { Step } from './step.js'
import type { HostReport, Logger } from './types.js'

/** Where a host's run stands; observers (the post-step journal, a held host's heartbeat) follow it. */
export type RunPhase = 'started' | 'changing' | 'held' | 'committing' | 'rolling-back' | 'settled'

/** Runs once the host's run is over (not while held), whatever the result; a throw is a warning. */
export interface Settle {
  readonly name: string
  run(ctx: SettleContext): Promise<void>
  /**
   * Optional, after a commit: sends the settle's commands right behind the last `after` step's
   * (once it said they are sent), needing `gate` when one is given; `run` then takes their answers
   * (and sends them again if the host skipped them).
   */
  ahead?(ctx: SettleContext, gate?: string): void
}

export interface SettleContext {
  readonly host: Host
  readonly report: HostReport
  readonly log: Logger
}

/** What the engine runs for one host. */
export interface RunSpec {
  steps: readonly Step[]
  /** After the run, in order (release the lock, disarm what is armed). */
  settle?: readonly Settle[]
  /** Told of every phase change, in order; must not throw (the journal, a heartbeat). */
  observers?: readonly ((phase: RunPhase, report: HostReport) => void)[]
  /**
   * Before each step of the run (never of its rollback): a throw fails that step and the run rolls
   * back (a deploy lock found in other hands).
   */
  checkpoint?(step: Step): Promise<void>
  /**
   * hold: true: instead of the commit, a held host is handed on beyond this run (the held-state
   * record, the watchdog's hold-timeout, the lock released). When one of them throws, the host
   * goes back as an abort would.
   */
  leave?: readonly Settle[]
  /** After a rollback that failed: the host's state (first line, `# state: ...`) and the commands that repair it. */
  repair?(): Promise<string[]>
}

export interface EngineOptions {
  log: Logger
  /** Aborted when the job is cancelled. */
  signal?: AbortSignal
  /** Attempts of a step whose SSH connection dropped. Default 4. */
  attempts?: number
}
