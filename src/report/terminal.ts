/** The run for people at a terminal: a logger with headings, and the closing text report. */
import { stripTerminal } from '../remote-text.js'
import { formatDuration } from '../duration.js'
import type { Logger } from '../engine/types.js'
import type { RolloutResult } from '../fleet/tally.js'
import { versionsOf } from './summary.js'

/** Logs to a terminal: steps as headings, errors and warnings on stderr. */
export function terminalLogger(out: NodeJS.WritableStream, err: NodeJS.WritableStream): Logger {
  const tty = (out as { isTTY?: boolean }).isTTY === true && !process.env.NO_COLOR
  const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s)
  return {
    // Remote text in a message must not drive the terminal: escape sequences are removed.
    info: m => void out.write(`${stripTerminal(m)}\n`),
    warn: m => void err.write(`warning: ${stripTerminal(m)}\n`),
    // The machine's messages already name the host and the step.
    error: m => void err.write(`error: ${stripTerminal(m)}\n`),
    group: async (title, fn) => {
      out.write(`${bold(`── ${stripTerminal(title)}`)}\n`)
      return fn()
    }
  }
}

/** The end of a run, for people: one line per host and what to do now. */
export function textReport(run: RolloutResult): string {
  const lines = [`zerodown: ${run.result} in ${formatDuration(run.durationMs)}`]
  for (const h of run.hosts) {
    const at = h.failedStep ? ` at ${h.failedStep}` : ''
    const steps = h.steps.map(s => `${s.name} ${formatDuration(s.ms)}${s.outcome === 'failed' ? ' ✗' : ''}`)
    lines.push(
      `  ${h.host}: ${h.result}${at}; ${versionsOf(h)}${steps.length ? `; ${steps.join(', ')}` : ''}`
    )
    if (h.error) lines.push(`    ${h.error}`)
    if (h.repair?.length) lines.push('    repair it on the host:', ...h.repair.map(r => `      ${r}`))
  }
  return lines.join('\n') + '\n'
}
