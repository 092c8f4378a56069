/**
 * The `after` steps: past the point of no return (the host is upgraded, nothing is undone), so a
 * failure only warns. They have no report entry of their own: their lines go to the last one.
 */
import type { Step, StepContext } from './step.js'
import type { HostReport, Logger } from './types.js'

export async function runAfterSteps(
  steps: readonly Step[],
  report: HostReport,
  host: string,
  log: Logger,
  context: (step: Step, note: (s: string) => void) => StepContext
): Promise<void> {
  for (const step of steps) {
    const rec = report.steps.at(-1)
    const note = (s: string) => {
      rec?.observations.push(s)
      log.info(`${host} [${rec?.name ?? step.name}] ${s}`)
    }
    try {
      await step.run(context(step, note))
    } catch (e) {
      rec?.observations.push((e as Error).message)
      log.warn(`${host}: ${(e as Error).message}`)
    }
  }
}
