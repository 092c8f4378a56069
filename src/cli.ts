/**
 * The same run from a terminal, GitLab CI or Jenkins: `zerodown-action deploy --hosts ...` (the
 * package's bin) or `node dist/index.js deploy --hosts ...`.
 * Every input of action.yml is a flag (--health-url X) or an environment variable
 * (ZERODOWN_HEALTH_URL); --<input>-file reads a value from a file. The values go through the
 * same readSettings as in GitHub, so they are validated the same way.
 *
 * Exit status: 0 upgraded or unchanged, 1 rolled back or failed, 2 bad flags or inputs. plan: 0
 * when every host would upgrade or is unchanged, 1 when a deploy would be refused on any host;
 * status: 0 when every host was read. commit, abort: 0 when every held host was finished (or
 * nothing was held); 1 when any was not, a cancelled run's hosts not reached included.
 */
import { stripTerminal } from './remote-text.js'
import { writeFileSync } from 'node:fs'
import { cancelOnSignals, perform, performReadOnly } from './app.js'
import { envName, inputReader, parseArgs, UsageError, type CliArgs } from './cli-args.js'
import { helpText } from './cli-help.js'
import { succeeded, type RolloutResult } from './fleet/tally.js'
import type { ModeResult } from './modes/index.js'
import { setTrace } from './host/trace.js'
import {
  contextFromEnv,
  modeOutputsOf,
  modeSummaryMarkdown,
  modeTextReport,
  outputsOf,
  summaryMarkdown
} from './report/index.js'
import { terminalLogger, textReport } from './report/terminal.js'
import { readSettings, SettingsError } from './settings.js'
import { isReadOnlyMode } from './settings/modes.js'
import { VERSION } from './version.js'

export { envName, inputReader, parseArgs, UsageError }

// ------------------------------------------------------------------------------------- run

/** Runs the command line; resolves with the exit status. */
export async function cli(
  argv: readonly string[],
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream; env: NodeJS.ProcessEnv } = {
    out: process.stdout,
    err: process.stderr,
    env: process.env
  }
): Promise<number> {
  let json = argv.includes('--json')
  const fail = (code: number, message: string): number => {
    io.err.write(`zerodown: ${stripTerminal(message)}\n`)
    if (json) io.out.write(`${JSON.stringify({ result: 'failed', error: message })}\n`)
    return code
  }
  let args: CliArgs
  try {
    args = parseArgs(argv)
  } catch (e) {
    if (e instanceof UsageError) return fail(2, e.message)
    throw e
  }
  json = args.json
  if (args.command === 'help') {
    io.out.write(helpText(args.helpFor))
    return 0
  }
  if (args.command === 'version') {
    io.out.write(`zerodown-action ${VERSION}\n`)
    return 0
  }
  // With --json, stdout carries the report only.
  const log = terminalLogger(json ? io.err : io.out, io.err)
  if (args.verbose || io.env.RUNNER_DEBUG === '1') setTrace(line => void io.err.write(`debug: ${line}\n`))
  for (const flag of args.secretsInFlags)
    log.warn(
      `${flag} on the command line is visible to other users of this machine (ps); use ${flag}-file or ${envName(flag.slice(2))}`
    )
  let run: RolloutResult | ModeResult
  let rollbackWorkflow: string | undefined
  let wanted = { mode: 'deploy', hold: false }
  // Ctrl-C (or a CI system's SIGTERM) rolls the hosts in the middle of an upgrade back, as in GitHub.
  const controller = new AbortController()
  let mode: string | undefined
  const uninstall = cancelOnSignals(controller, log, () => mode)
  try {
    const settings = readSettings(inputReader(args, io.env), io.env)
    mode = settings.mode
    rollbackWorkflow = settings.rollbackWorkflow
    wanted = settings
    const control = { signal: controller.signal }
    run = isReadOnlyMode(settings.mode)
      ? await performReadOnly({ ...settings, mode: settings.mode }, log, control)
      : await perform({ ...settings, mode: settings.mode }, log, control)
  } catch (e) {
    if (e instanceof SettingsError || e instanceof UsageError) return fail(2, (e as Error).message)
    return fail(1, (e as Error).message)
  } finally {
    uninstall()
  }
  if ('mode' in run) return reportMode(run, args, io)
  if (args.summaryFile)
    writeFileSync(args.summaryFile, summaryMarkdown(run, contextFromEnv(io.env, rollbackWorkflow)))
  if (json) io.out.write(`${outputsOf(run).report}\n`)
  else io.out.write(`\n${stripTerminal(textReport(run))}`)
  return succeeded(run, wanted) ? 0 : 1
}

/** plan and status: the summary file, the JSON or text report; 0 when every host would deploy (or was read). */
function reportMode(
  run: ModeResult,
  args: CliArgs,
  io: { out: NodeJS.WritableStream; env: NodeJS.ProcessEnv }
): number {
  if (args.summaryFile) writeFileSync(args.summaryFile, modeSummaryMarkdown(run, contextFromEnv(io.env)))
  if (args.json) io.out.write(`${modeOutputsOf(run).report}\n`)
  else io.out.write(`\n${stripTerminal(modeTextReport(run))}`)
  return run.ok ? 0 : 1
}
