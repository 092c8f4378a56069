/** Shapes shared by the upgrade, the rollout and the reports. No GitHub, no SSH here. */

export type StepName =
  'preflight' | 'upload' | 'verify' | 'swap' | 'usr2' | 'winch' | 'health' | 'drain' | 'quit' | 'rollback'

export type HostResult = 'upgraded' | 'rolled-back' | 'unchanged' | 'failed' | 'untouched' | 'parked'

export interface StepReport {
  name: StepName
  startedAt: string
  endedAt: string
  ms: number
  outcome: 'ok' | 'failed' | 'skipped'
  observations: string[]
}

export interface HostReport {
  host: string
  result: HostResult
  version?: string
  previousVersion?: string
  sha256?: string
  previousSha256?: string
  oldPid?: number
  newPid?: number
  binaryPath?: string
  startedAt: string
  endedAt?: string
  durationMs?: number
  steps: StepReport[]
  /** Old workers left, over time (ms since the drain began). */
  drain: { atMs: number; oldWorkers: number }[]
  health: { atMs: number; ok: boolean; detail: string }[]
  /** The step that failed and why, when the host did not end upgraded. */
  failedStep?: StepName
  error?: string
  /** When the rollback itself failed: the host's exact state and the commands that repair it. */
  rollbackError?: string
  repair?: string[]
}

/** Where log lines go; main.ts maps it to @actions/core, the CLI to the terminal. */
export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
  /** Runs fn inside a collapsible group (a plain heading outside GitHub). */
  group<T>(title: string, fn: () => Promise<T>): Promise<T>
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  group: (_title, fn) => fn()
}

/** A failure of one step; `observed` says what the host looked like. */
export class StepError extends Error {
  constructor(
    readonly step: StepName,
    message: string
  ) {
    super(message)
    this.name = 'StepError'
  }
}
