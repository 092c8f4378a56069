/**
 * The step model: what the engine runs for one host. A step is data plus two functions (its run
 * and its undo); how it behaves on a cancel and on a lost connection are fields, not sets kept
 * elsewhere. The engine knows no protocol and no strategy: it runs the list it is given.
 */
import type { Host } from '../host/host.js'
import type { HostReport, HostResult, Logger } from './types.js'

/**
 * Where a step sits in a host's run. The engine derives the run's phases from it:
 * - `prepare`: nothing that serves changes (checks, staging). A failure here leaves the host
 *   `failed` (untouched), whatever undos (clean-ups) ran.
 * - `ready`: the last moment before the cut-over (arm a watchdog). Like `prepare`, nothing that
 *   serves changes; unlike it, never run ahead of time (pre-staging stops before it).
 * - `change`: the cut-over. A failure rolls back (`rolled-back`). A fleet may hold the host after
 *   the last `change` step, until every host has passed.
 * - `commit`: the point of no return (retire the old process). Runs at once, or at the fleet's
 *   commit when held. A failure still rolls back.
 * - `after`: the host serves the new version; nothing is undone any more. A failure is a warning.
 */
export type StepStage = 'prepare' | 'ready' | 'change' | 'commit' | 'after'

/** What a step's run sees. */
export interface StepContext {
  readonly host: Host
  readonly log: Logger
  /** The host's report: a step records what it observed (pids, versions, health, drain). */
  readonly report: HostReport
  /** A line in this step's record and log (dropped once the step is over: a wait given up on by a cancel). */
  note(message: string): void
  /** 1 on the first attempt; more when the step runs again after a lost connection. */
  readonly attempt: number
  /** True on an attempt after a lost connection: read the host back before acting again. */
  readonly retrying: boolean
  /** Aborted when the job is cancelled. */
  readonly signal?: AbortSignal
  /**
   * `after` steps only: every command this step sends is on its way (the host's shell runs them
   * in order). The engine then starts what follows (the next `after` step, then the settles'
   * `ahead`) without waiting for the answers. A step that never calls it is waited for.
   * `gate`: all are sent only if that gate of the host's shell opens (otherwise the step sends
   * more once it knows): the settles' commands sent ahead then need it.
   */
  sent?(gate?: string): void
}

/** A step may end the host's run early, successfully (nothing to do). */
export type StepOutcome = void | { end: Extract<HostResult, 'unchanged'>; message: string }

export interface Step {
  /** Unique in a run; used in undo notes ("undid swap") and errors. */
  readonly name: string
  /**
   * The report entry (and log group) this step's lines go to; default: its name. Consecutive
   * steps with the same entry share one record: safety steps (lock, watchdog, release store) thus
   * appear inside the protocol step they guard, and the report keeps its step names.
   */
  readonly report?: string
  readonly stage: StepStage
  run(ctx: StepContext): Promise<StepOutcome>
  /**
   * Puts back what the run changed, reading the host first (it may run after a partial run, or
   * twice after a lost connection). Pushed on the undo stack when the run begins
   * (`undoFrom: 'start'`, the default: a failing run is undone too) or after it succeeded
   * (`'success'`). Once per step, however many attempts.
   */
  undo?(ctx: StepContext): Promise<void>
  readonly undoFrom?: 'start' | 'success'
  /** Told before any undo runs, for every step on the undo stack (e.g. give a watchdog more time). */
  beforeRollback?(ctx: StepContext): Promise<void>
  /**
   * On a cancel: `stop` (the default) — the step does not start once the job is cancelled, and the
   * rollback runs; `finish` — it runs anyway (the old process's retire: the rest is quicker and
   * safer than a rollback).
   */
  readonly onCancel?: 'stop' | 'finish'
  /**
   * Its commands may be on the host already, sent behind an earlier step's (a gate of the host's
   * shell): while true, the step runs whatever a cancel or a checkpoint says, so that its answer is
   * judged and its undo is on the stack before any rollback.
   */
  readonly sentAhead?: () => boolean
  /** The step ends in a wait: a cancel gives it up at once (the wait goes on unheard, reading only). */
  readonly interruptible?: boolean
  /**
   * On a lost SSH connection: `retry` (the default) — the host reconnects and the run starts again
   * with `retrying` set (it must read back what it may have done); `fail` — the step fails.
   */
  readonly onLostConnection?: 'retry' | 'fail'
}

/** A failure of one step (its report entry's name); `message` says what the host looked like. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    message: string
  ) {
    super(message)
    this.name = 'StepError'
  }
}
