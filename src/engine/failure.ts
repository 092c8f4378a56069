/**
 * A host's failure in its report: which step failed and why, a clean-up that changed nothing (the
 * host ends untouched), and a rollback that failed, with the host's state and the commands that
 * repair it. The engine decides when a run fails; this file writes what the report and log say.
 */
import { StepError } from './step.js'
import type { RunSpec } from './spec.js'
import type { HostReport, Logger } from './types.js'

/** The failed step (a StepError names it, else the last entry) and the error; logged unless quiet. */
export function recordFailure(
  report: HostReport,
  error: Error,
  host: string,
  log: Logger,
  quiet = false
): void {
  const failedStep = error instanceof StepError ? error.step : (report.steps.at(-1)?.name ?? 'rollback')
  report.failedStep = failedStep
  report.error = error.message
  if (!quiet)
    log.error(`${host}: ${failedStep} failed: ${error.message}`, {
      host,
      step: failedStep
    })
}

/** A released host whose clean-up went through: nothing was changed, so it is untouched, not failed. */
export function clearFailure(report: HostReport): void {
  if (report.result !== 'failed' || report.rollbackError !== undefined) return
  report.result = 'untouched'
  delete report.failedStep
  delete report.error
}

/** The rollback failed: the host is left as it is, so people get its state and how to repair it. */
export async function recordRollbackFailure(
  report: HostReport,
  error: Error,
  spec: Pick<RunSpec, 'repair'>,
  host: string,
  log: Logger
): Promise<void> {
  report.result = 'failed'
  report.repair = (await spec.repair?.().catch(() => undefined)) ?? ['# state: the host could not be read']
  report.rollbackError = `${error.message}. Host state: ${report.repair[0]!.replace(/^# state: /, '')}`
  log.error(
    `${host}: the rollback failed: ${report.rollbackError}. Repair it on the host:\n${report.repair.join('\n')}`,
    { host, step: 'rollback' }
  )
}
