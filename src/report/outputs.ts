/**
 * What the run tells people and programs: the outputs, and a job summary in Markdown with one row
 * per host, a Mermaid chart of the rollout, per host the steps, the drain curve and the health
 * checks, and on failure what happened and exactly what to run now.
 *
 * Everything here is pure (the command line writes the same text to a file); github.ts hands it
 * to GitHub. This file: the outputs and where the run happened; summary.ts the Markdown;
 * charts.ts the Mermaid charts.
 */
import type { HostReport } from '../engine/types.js'
import type { RolloutResult } from '../fleet/tally.js'
import { findRollbackWorkflow } from '../local/rollback-workflow.js'
import { reportOutput } from './report-output.js'

const join = (values: (string | number | undefined)[]) =>
  values.filter(v => v !== undefined && v !== '').join(',')

/** `reportLimit`: the most characters of the report output (GitHub's: REPORT_OUTPUT_CHARS; none for the command line). */
export function outputsOf(run: RolloutResult, o: { reportLimit?: number } = {}): Record<string, string> {
  const hosts = run.hosts
  return {
    result: run.result,
    supervisor: run.supervisor ?? '',
    version: join(unique(hosts.map(servingVersion))),
    'previous-version': join(unique(hosts.map(h => h.previousVersion))),
    'old-pid': join(hosts.map(h => h.oldPid)),
    'new-pid': join(hosts.map(h => h.newPid)),
    duration: String(run.durationMs),
    report: reportOutput(
      {
        result: run.result,
        supervisor: run.supervisor,
        counts: run.counts,
        durationMs: run.durationMs,
        hosts
      },
      o.reportLimit
    )
  }
}

/** The version a host serves after the run: the new one only where the upgrade went through. */
export function servingVersion(h: HostReport): string | undefined {
  if (h.result === 'upgraded') return h.version
  if (h.result === 'unchanged') return h.version ?? h.previousVersion
  return h.previousVersion
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)]
}

/** Where the run happened, for links (GitHub's default environment variables). */
export interface SummaryContext {
  serverUrl?: string
  repository?: string
  /** The rollback workflow: its file in .github/workflows, or a URL. None: no link. */
  rollbackWorkflow?: string
}

/**
 * GitHub's variables, and the rollback workflow to link: the `rollback-workflow` input, else the
 * workflow of the checked-out repository that runs zerodown-action with mode: rollback.
 */
export function contextFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  rollbackWorkflow?: string
): SummaryContext {
  return {
    serverUrl: env.GITHUB_SERVER_URL || undefined,
    repository: env.GITHUB_REPOSITORY || undefined,
    rollbackWorkflow: rollbackWorkflow ?? findRollbackWorkflow(env.GITHUB_WORKSPACE ?? process.cwd())
  }
}
