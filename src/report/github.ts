/** The report's GitHub adapter: log lines as annotations and groups, secrets masked, outputs, the job summary. */
import * as core from '@actions/core'
import type { Logger, LogWhere } from '../engine/types.js'
import type { RolloutResult } from '../fleet/tally.js'
import type { Settings } from '../settings.js'
import { contextFromEnv, outputsOf } from './outputs.js'
import { summaryMarkdown } from './summary.js'

export const coreLogger: Logger = {
  info: m => core.info(m),
  warn: (m, where) => core.warning(m, annotation(where)),
  error: (m, where) => core.error(m, annotation(where)),
  group: (title, fn) => core.group(title, fn)
}

/** An annotation titled with the host and the step it is about. */
function annotation(where?: LogWhere): core.AnnotationProperties | undefined {
  if (!where?.host && !where?.step) return undefined
  return { title: [where.host, where.step].filter(Boolean).join(': ') }
}

/** Registers every secret with the runner so that no log line shows it. */
export function maskSecrets(settings: Settings): void {
  for (const secret of [
    settings.privateKey,
    settings.passphrase,
    settings.password,
    settings.jumpPrivateKey,
    settings.jumpPassphrase,
    settings.jumpPassword
  ]) {
    if (!secret) continue
    core.setSecret(secret)
    // The runner masks line by line: register each line of a multi-line key as well.
    for (const line of secret.split('\n'))
      if (line.trim().length >= 8 && !/^-----/.test(line.trim())) core.setSecret(line.trim())
  }
}

export function setOutputs(run: RolloutResult): void {
  for (const [name, value] of Object.entries(outputsOf(run))) core.setOutput(name, value)
}

export async function writeSummary(run: RolloutResult): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  await core.summary.addRaw(summaryMarkdown(run, contextFromEnv())).write()
}
