/** Shapes shared by the engine, the fleet and the reports. No GitHub, no SSH here. */

/** A report entry's name: the steps a strategy reports (preflight, upload, ..., rollback). */
export type StepName = string

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
  /** The host's release store after the run (oldest first), the live one marked. */
  releases?: ReleaseRow[]
  /** The batch the host ran in, from 0, in rollout order; batch 0 is the canary when canary > 0. */
  batch?: number
  /** Strategy upstream: the host's server in the load balancer's block over time (down, or its weight). */
  weights?: WeightPoint[]
}

/** One change of a server's state in the load balancer's block. */
export interface WeightPoint {
  at: string
  weight: number | 'down'
  why: string
}

/** One release in a host's store, as reports show it. */
export interface ReleaseRow {
  version: string | null
  sha256: string
  deployedAt: string
  commit?: string
  run?: string
  live: boolean
}

/** Which host and step a log line is about (GitHub shows it as the annotation's title). */
export interface LogWhere {
  host?: string
  step?: string
}

/** Where log lines go; main.ts maps it to @actions/core, the CLI to the terminal. */
export interface Logger {
  info(message: string): void
  warn(message: string, where?: LogWhere): void
  /** Every error is also an annotation naming the host and the step. */
  error(message: string, where?: LogWhere): void
  /** Runs fn inside a collapsible group (a plain heading outside GitHub). */
  group<T>(title: string, fn: () => Promise<T>): Promise<T>
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  group: (_title, fn) => fn()
}
