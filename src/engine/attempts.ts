/** A step's run: again after a lost connection, and given up at once on a cancel while it waits. */
import { ConnectionLostError } from '../host/host.js'
import { StepError, type Step, type StepContext } from './step.js'

/** Attempts of a step whose SSH connection dropped: the host reconnects, the step reads its state back. */
export const STEP_ATTEMPTS = 4

/** The error of a step stopped by a cancel, naming why (SIGTERM, ...). */
export function cancelledError(signal: AbortSignal | undefined, entry: string): StepError {
  const why = signal?.reason
  const detail = why instanceof Error ? why.message : why !== undefined ? String(why) : ''
  return new StepError(entry, `the run was cancelled${detail ? ` (${detail})` : ''} during ${entry}`)
}

/** Before a step: a cancel stops the run there, unless the step must finish (a rollback). */
export function checkCancel(step: Step, entry: string, signal: AbortSignal | undefined): void {
  if ((step.onCancel ?? 'stop') === 'stop' && !step.sentAhead?.() && signal?.aborted)
    throw cancelledError(signal, entry)
}

export interface AttemptOptions {
  entry: string
  attempts: number
  signal?: AbortSignal
  note: (s: string) => void
  context: (attempt: number) => StepContext
  /** Before each attempt (the engine pushes the step's undo), and after a success. */
  starting: () => void
  succeeded: () => void
}

/**
 * Runs the step: again after a lost connection (each step reads the host's state back before it
 * acts), and given up at once on a cancel while it waits when it is interruptible. Resolves with
 * the message of a step that ended the run, or null.
 */
export function runAttempts(step: Step, o: AttemptOptions): Promise<string | null> {
  const max = step.onLostConnection === 'fail' ? 1 : o.attempts
  const attempts = async (): Promise<string | null> => {
    for (let i = 1; ; i++) {
      o.starting()
      try {
        const out = await step.run(o.context(i))
        o.succeeded()
        return out ? out.message : null
      } catch (e) {
        if (!(e instanceof ConnectionLostError) || i >= max) throw e
        o.note(`${e.message}; reconnecting and reading the host's state back (attempt ${i + 1} of ${max})`)
      }
    }
  }
  const signal = o.signal
  if (!signal || !step.interruptible) return attempts()
  const work = attempts()
  return new Promise<string | null>((resolve, reject) => {
    const onAbort = () => reject(cancelledError(signal, o.entry))
    signal.addEventListener('abort', onAbort, { once: true })
    void work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
