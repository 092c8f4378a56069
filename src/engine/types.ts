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
  /** mode plan: what a deploy would do on this host. */
  plan?: PlanVerdict
  /** mode status: what runs on this host, and its release store. */
  status?: HostStatus
}

/** What a deploy would do on a host, as a plan found it. */
export interface PlanVerdict {
  /** upgrade: it would hand over to the new binary; unchanged: it runs it already; refused: a deploy would fail. */
  verdict: 'upgrade' | 'unchanged' | 'refused'
  /** "1.26.2 → 1.27.3 (higher by semver)". */
  change?: string
  /** The new version is lower than the live one: refused, or allowed by allow-downgrade. */
  downgrade?: 'refused' | 'allowed'
  /** Why a deploy would be refused: its own message, and the step that refuses. */
  message?: string
  step?: StepName
}

/** What runs on a host and what its release store holds, as status read them. */
export interface HostStatus {
  pid: number
  livePath: string
  /** sha256 of /proc/<pid>/exe: what runs. */
  runningSha256: string
  /** sha256 of the file at livePath (differs when a package manager replaced it). */
  liveSha256: string
  version: string | null
  /** The release store's folder. */
  store: string
  /** What a rollback without rollback-to would go to; null: none. */
  rollbackTarget: { version: string | null; sha256: string } | null
  /** The deploy lock: null when free, else who holds it. */
  lock: string | null
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
  /** The release a rollback without rollback-to goes to (status marks it). */
  rollbackTarget?: boolean
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
