/**
 * The trace of remote work, for `--verbose` and GitHub's debug logging (RUNNER_DEBUG=1): every
 * command a host runs, every upload and every health request, with how long it took and how it
 * ended. Off unless the entry point sets a sink; one sink for the process.
 */
import { neutralize } from '../remote-text.js'

let sink: ((line: string) => void) | undefined

/** Sends the trace to `fn` (undefined turns it off). */
export function setTrace(fn: ((line: string) => void) | undefined): void {
  sink = fn
}

/**
 * Text from a host or built from host data, made safe for a terminal or a log on one line: what
 * `neutralize` does to any remote text, with line breaks and tabs shown too, cut at `max`.
 */
export function visible(text: string, max = 600): string {
  const safe = neutralize(text).replace(/\n/g, '\\n').replace(/\t/g, '\\t')
  return safe.length > max ? `${safe.slice(0, max)}… (${safe.length - max} more characters)` : safe
}

/** One traced operation of `host`: what it was, how it ended, and its time since `startedAt`. */
export function trace(host: string, what: string, outcome: string, startedAt: number): void {
  if (!sink) return
  sink(`${visible(host, 200)}: ${visible(what)} → ${visible(outcome, 200)} in ${Date.now() - startedAt}ms`)
}

/** Runs `fn` and traces it as `what`; the outcome is `describe`'s text, or the error's message. */
export async function traced<T>(
  host: string,
  what: string,
  fn: () => Promise<T>,
  describe: (value: T) => string
): Promise<T> {
  if (!sink) return fn()
  const started = Date.now()
  try {
    const value = await fn()
    trace(host, what, describe(value), started)
    return value
  } catch (e) {
    trace(host, what, `error: ${(e as Error).message}`, started)
    throw e
  }
}
