/**
 * The `after` steps: past the point of no return (the host is upgraded, nothing is undone), so a
 * failure only warns. They have no report entry of their own: their lines go to the last one.
 * They are pipelined: the next starts once the previous said its commands are sent (ctx.sent),
 * and once the last did, `ahead` sends what follows them (the settles' commands), needing the
 * gate a step still answering named; the host's shell runs it all in order, so the tail of a run
 * costs one round trip.
 */
import type { Step, StepContext } from './step.js'
import type { HostReport, Logger } from './types.js'

export async function runAfterSteps(
  steps: readonly Step[],
  report: HostReport,
  host: string,
  log: Logger,
  context: (step: Step, note: (s: string) => void) => StepContext,
  ahead?: (gate?: string) => void
): Promise<void> {
  const running: Promise<void>[] = []
  /** The gate each step still answering named when it said all was sent. */
  const gates = new Map<Step, string>()
  for (const step of steps) {
    const rec = report.steps.at(-1)
    const note = (s: string) => {
      rec?.observations.push(s)
      log.info(`${host} [${rec?.name ?? step.name}] ${s}`)
    }
    let allSent!: () => void
    const sentOrDone = new Promise<void>(resolve => (allSent = resolve))
    const sent = (gate?: string) => {
      if (gate !== undefined) gates.set(step, gate)
      allSent()
    }
    const done = step
      .run({ ...context(step, note), sent })
      .then(
        () => undefined,
        (e: unknown) => {
          rec?.observations.push((e as Error).message)
          log.warn(`${host}: ${(e as Error).message}`)
        }
      )
      .finally(() => {
        gates.delete(step)
        allSent()
      })
    running.push(done)
    await sentOrDone
  }
  // One gate at most can be needed; with two, what follows waits for the answers.
  const open = new Set(gates.values())
  if (open.size <= 1) ahead?.([...open][0])
  await Promise.all(running)
}
