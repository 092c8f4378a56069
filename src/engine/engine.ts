/**
 * The engine: runs one host's ordered steps. It keeps the undo stack, stops at a cancel, runs a
 * step again after a lost connection (the step reads the host back), holds a host between its
 * cut-over and its commit when the fleet asks, and writes the failure report (failure.ts). It
 * knows no protocol and no strategy: a strategy hands it steps (src/strategies), safety wraps them
 * (src/safety).
 *
 *   run()            prepare → change → [held: commit() | abort()] → commit → after → settle
 */
import type { Host } from '../host/host.js'
import { runAfterSteps } from './after.js'
import { checkCancel, runAttempts, STEP_ATTEMPTS } from './attempts.js'
import { clearFailure, recordFailure, recordRollbackFailure } from './failure.js'
import { StepError, type Step, type StepContext } from './step.js'
import { EntryRecord } from './record.js'
import type { EngineOptions, RunPhase, RunSpec } from './spec.js'
import type { HostReport, Logger } from './types.js'
import { rollbackStep, UndoStack } from './undo.js'

export class HostRun {
  readonly report: HostReport
  private readonly undos = new UndoStack()
  private readonly started = Date.now()
  private next = 0
  private phase: RunPhase = 'started'

  constructor(
    readonly host: Host,
    readonly spec: RunSpec,
    readonly options: EngineOptions
  ) {
    this.report = {
      host: host.name,
      result: 'untouched',
      startedAt: new Date().toISOString(),
      steps: [],
      drain: [],
      health: []
    }
  }

  private get log(): Logger {
    return this.options.log
  }

  private enter(phase: RunPhase): void {
    if (this.phase === phase) return
    this.phase = phase
    for (const o of this.spec.observers ?? []) o(phase, this.report)
  }

  /**
   * Runs every step up to the last `change` step. With hold, the host stays there (result
   * `parked`) and `commit` or `abort` must follow; otherwise the commit steps run at once.
   */
  async run(options: { hold?: boolean } = {}): Promise<HostReport> {
    try {
      const ended = await this.runStages(['prepare', 'ready', 'change'])
      if (ended) return this.finish()
      if (options.hold) {
        this.report.result = 'parked'
        this.enter('held')
        return this.report
      }
      await this.complete()
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /**
   * Pre-staging: only the `prepare` steps (checks, upload, verify), the host left as it serves.
   * Returns null when the host is ready for `run` (which goes on from there), or its final report
   * when the run is over (nothing to do, or a failure, cleaned up).
   */
  async prepare(): Promise<HostReport | null> {
    try {
      if (!(await this.runStages(['prepare']))) return null
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /**
   * A host pre-staged but never changed, because the run stopped (or a plan, which never goes
   * further): its clean-ups (the staged file) run in the report entry `entry`, its lock is
   * released, and it ends `untouched`.
   */
  async release(reason: string, entry = 'rollback'): Promise<HostReport> {
    this.log.info(`${this.host.name}: ${reason}: nothing was changed on this host; removing what was staged`)
    await this.fail(new StepError(entry, reason), { quiet: true, entry })
    clearFailure(this.report)
    return this.finish()
  }

  /** After a hold: the fleet passed; the commit steps run. */
  async commit(): Promise<HostReport> {
    try {
      await this.complete()
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /** After a hold: the host stays held after this run (spec.leave); it goes back when that fails. */
  async leave(): Promise<HostReport> {
    try {
      for (const s of this.spec.leave ?? [])
        await s.run({ host: this.host, report: this.report, log: this.log })
    } catch (e) {
      return this.abort(`could not leave the host held: ${(e as Error).message}`)
    }
    this.report.endedAt = new Date().toISOString()
    this.report.durationMs = Date.now() - this.started
    this.enter('settled')
    return this.report
  }

  /** After a hold: another host failed; this one goes back. */
  async abort(reason: string): Promise<HostReport> {
    // Not this host's failure: no error annotation for it (the failing host has its own).
    await this.fail(new StepError('rollback', reason), { quiet: true })
    return this.finish()
  }

  /**
   * Finishes what an earlier, interrupted run left (the post step): `undo` rebuilds its undo
   * stack (the steps whose undos are due, in the order they ran). With `steps`, those run first
   * (what remained); they succeed (`upgraded`) or fail and roll back. Without, the host rolls back.
   */
  async recover(options: {
    undo: readonly Step[]
    steps?: readonly Step[]
    reason: string
  }): Promise<HostReport> {
    for (const step of options.undo) this.undos.push(step, this.entryOf(step))
    try {
      if (!options.steps) throw new StepError('rollback', options.reason)
      await this.runList(options.steps)
      this.report.result = 'upgraded'
      this.undos.clear()
    } catch (e) {
      await this.fail(e as Error, { quiet: !options.steps })
    }
    return this.finish()
  }

  /** Ends the run with a result an inspection decided, without steps (the post step's `old-gone`). */
  async conclude(result: HostReport['result'], error?: string): Promise<HostReport> {
    this.report.result = result
    if (error !== undefined) this.report.error = error
    return this.finish()
  }

  /** The commit steps, then the point of no return: nothing to undo; the `after` steps only warn. */
  private async complete(): Promise<void> {
    await this.runStages(['commit'])
    this.report.result = 'upgraded'
    this.undos.clear()
    const after = this.spec.steps.slice(this.next).filter(s => s.stage === 'after')
    this.next = this.spec.steps.length
    const settleCtx = { host: this.host, report: this.report, log: this.log }
    await runAfterSteps(
      after,
      this.report,
      this.host.name,
      this.log,
      (step, note) => this.context(step, note, 1),
      gate => {
        for (const s of this.spec.settle ?? []) s.ahead?.(settleCtx, gate)
      }
    )
  }

  /** Runs the steps from where the run stands while they belong to the stages; true when a step ended the run. */
  private async runStages(stages: readonly Step['stage'][]): Promise<boolean> {
    const steps: Step[] = []
    while (this.next < this.spec.steps.length && stages.includes(this.spec.steps[this.next]!.stage))
      steps.push(this.spec.steps[this.next++]!)
    return this.runList(steps)
  }

  /** Runs steps in order, consecutive steps of one report entry in one record and log group. */
  private async runList(steps: readonly Step[]): Promise<boolean> {
    for (let i = 0; i < steps.length;) {
      const entry = this.entryOf(steps[i]!)
      const group: Step[] = []
      while (i < steps.length && this.entryOf(steps[i]!) === entry) group.push(steps[i++]!)
      if (group.some(s => s.stage === 'change')) this.enter('changing')
      if (group.some(s => s.stage === 'commit')) this.enter('committing')
      const ended = await this.entry(entry, group)
      if (ended) return true
    }
    return false
  }

  private entryOf(step: Step): string {
    return step.report ?? step.name
  }

  /** One report entry: its record, its log group, its steps; true when a step ended the run. */
  private async entry(name: string, steps: readonly Step[], rollback = false): Promise<boolean> {
    const record = new EntryRecord(this.report, this.host.name, this.log, name)
    let ended: string | null = null
    try {
      checkCancel(steps[0]!, name, this.options.signal)
      await this.log.group(`${this.host.name}: ${name}`, async () => {
        for (const step of steps) {
          checkCancel(step, name, this.options.signal)
          if (!rollback && !step.sentAhead?.()) await this.spec.checkpoint?.(step)
          ended = await this.guarded(step, name, record.note)
          if (ended !== null) return
        }
      })
    } catch (e) {
      record.failed((e as Error).message)
      throw e instanceof StepError ? e : new StepError(name, (e as Error).message)
    } finally {
      record.close()
    }
    if (ended === null) return false
    this.report.result = 'unchanged'
    this.log.info(`${this.host.name}: ${ended}`)
    return true
  }

  private context(step: Step, note: (s: string) => void, attempt: number): StepContext {
    return {
      host: this.host,
      log: this.log,
      report: this.report,
      note,
      attempt,
      retrying: attempt > 1,
      signal: this.options.signal
    }
  }

  /** A step's attempts (attempts.ts), its undo pushed as its `undoFrom` says. */
  private guarded(step: Step, entry: string, note: (s: string) => void): Promise<string | null> {
    return runAttempts(step, {
      entry,
      attempts: this.options.attempts ?? STEP_ATTEMPTS,
      signal: this.options.signal,
      note,
      context: attempt => this.context(step, note, attempt),
      starting: () => {
        if ((step.undoFrom ?? 'start') === 'start') this.undos.push(step, entry)
      },
      succeeded: () => {
        if (step.undoFrom === 'success') this.undos.push(step, entry)
      }
    })
  }

  /** Records the failure and runs the undos, in reverse order. */
  private async fail(error: Error, options: { quiet?: boolean; entry?: string } = {}): Promise<void> {
    recordFailure(this.report, error, this.host.name, this.log, options.quiet)
    if (this.undos.empty) {
      this.report.result = 'failed'
      return
    }
    const changed = this.undos.changed
    const undos = this.undos.take()
    if (changed) this.enter('rolling-back')
    try {
      const entry = options.entry ?? 'rollback'
      const warn = (m: string) => this.log.warn(`${this.host.name}: ${m}`)
      await this.entry(entry, [rollbackStep(entry, undos, changed, warn)], true)
      this.report.result = changed ? 'rolled-back' : 'failed'
    } catch (e) {
      await recordRollbackFailure(this.report, e as Error, this.spec, this.host.name, this.log)
    }
  }

  private async finish(): Promise<HostReport> {
    this.report.endedAt = new Date().toISOString()
    this.report.durationMs = Date.now() - this.started
    for (const s of this.spec.settle ?? [])
      await s
        .run({ host: this.host, report: this.report, log: this.log })
        .catch((e: Error) => this.log.warn(`${this.host.name}: ${e.message}`))
    this.enter('settled')
    return this.report
  }
}
