/** The report's GitHub adapter: log lines as annotations and groups, secrets masked, outputs, the job summary. */
import { neutralize } from '../remote-text.js'
import * as core from '@actions/core'
import type { Logger, LogWhere } from '../engine/types.js'
import type { RolloutResult } from '../fleet/tally.js'
import type { Settings } from '../settings.js'
import { contextFromEnv, outputsOf } from './outputs.js'
import { summaryMarkdown } from './summary.js'
import type { ModeResult } from '../modes/index.js'
import { modeOutputsOf, modeSummaryMarkdown } from './modes.js'
import { REPORT_OUTPUT_CHARS } from './report-output.js'

export const coreLogger: Logger = {
  // Every line neutralised: remote text embedded in a message never becomes a runner command.
  info: m => core.info(neutralize(m)),
  warn: (m, where) => core.warning(neutralize(m), annotation(where)),
  error: (m, where) => core.error(neutralize(m), annotation(where)),
  group: (title, fn) => core.group(neutralize(title), fn)
}

/** An annotation titled with the host and the step it is about. */
function annotation(where?: LogWhere): core.AnnotationProperties | undefined {
  if (!where?.host && !where?.step) return undefined
  return { title: [where.host, where.step].filter(Boolean).join(': ') }
}

/** The password of health-url (http://user:pw@...), which the logs also mask. */
function healthUrlPassword(url: string | undefined): string | undefined {
  const m = url === undefined ? null : /^[a-z][a-z0-9+.-]*:\/\/[^/?#@:\s]*:([^/?#@\s]+)@/i.exec(url)
  return m?.[1]
}

/** Registers every secret with the runner so that no log line shows it. */
export function maskSecrets(settings: Settings): void {
  for (const secret of [
    settings.privateKey,
    settings.passphrase,
    settings.password,
    settings.jumpPrivateKey,
    settings.jumpPassphrase,
    settings.jumpPassword,
    healthUrlPassword(settings.healthUrl)
  ]) {
    if (!secret) continue
    core.setSecret(secret)
    // The runner masks line by line: register each line of a multi-line key as well.
    for (const line of secret.split('\n'))
      if (line.trim().length >= 8 && !/^-----/.test(line.trim())) core.setSecret(line.trim())
  }
}

export function setOutputs(run: RolloutResult): void {
  for (const [name, value] of Object.entries(outputsOf(run, { reportLimit: REPORT_OUTPUT_CHARS })))
    core.setOutput(name, value)
}

export async function writeSummary(run: RolloutResult, rollbackWorkflow?: string): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  await core.summary.addRaw(summaryMarkdown(run, contextFromEnv(process.env, rollbackWorkflow))).write()
}

/** plan and status: the outputs and the summary. */
export async function reportMode(run: ModeResult): Promise<void> {
  for (const [name, value] of Object.entries(modeOutputsOf(run, { reportLimit: REPORT_OUTPUT_CHARS })))
    core.setOutput(name, value)
  if (!process.env.GITHUB_STEP_SUMMARY) return
  await core.summary.addRaw(modeSummaryMarkdown(run, contextFromEnv(process.env))).write()
}
