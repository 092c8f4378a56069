/**
 * verify-command: the user's own check of the staged binary, run on the host by sh before the
 * swap (every supervisor). `{binary}` becomes the staged file's path, quoted by src/host/quote.ts;
 * the rest of the command is the user's, as written.
 */
import { StepError } from '../../engine/step.js'
import type { Host } from '../../host/host.js'
import { quote } from '../../host/quote.js'

/** What runs on the host: sh -c with {binary} replaced by the quoted staged path. */
export function verifyCommandArgv(template: string, stagedPath: string): string[] {
  return ['sh', '-c', template.replaceAll('{binary}', quote(stagedPath))]
}

/** The last lines of remote output, one line, no control characters (terminal escapes), bounded. */
function tail(text: string): string {
  const lines = text.trim().split('\n').slice(-3).join(' | ')
  return lines.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, 500)
}

export async function runVerifyCommand(
  host: Host,
  template: string,
  stagedPath: string,
  note: (m: string) => void
): Promise<void> {
  const r = await host.run(verifyCommandArgv(template, stagedPath), { sudo: host.sudo, timeoutMs: 120_000 })
  const out = tail(r.stderr || r.stdout)
  if (r.code !== 0)
    throw new StepError(
      'verify',
      `verify-command failed with status ${r.code} (${template})${out ? `: ${out}` : ''}; nothing was changed`
    )
  note(`verify-command passed: ${template}${out ? ` (${out})` : ''}`)
}
