/** What the run tells GitHub: outputs, and a job summary with one row per host. */
import * as core from '@actions/core'
import { formatDuration } from './duration.js'
import type { RolloutResult } from './rollout.js'
import type { HostReport } from './upgrade/types.js'

const join = (values: (string | number | undefined)[]) =>
  values.filter(v => v !== undefined && v !== '').join(',')

export function outputsOf(run: RolloutResult): Record<string, string> {
  const hosts = run.hosts
  return {
    result: run.result,
    version: join(unique(hosts.map(h => h.version))),
    'previous-version': join(unique(hosts.map(h => h.previousVersion))),
    'old-pid': join(hosts.map(h => h.oldPid)),
    'new-pid': join(hosts.map(h => h.newPid)),
    duration: String(run.durationMs),
    report: JSON.stringify({ result: run.result, counts: run.counts, durationMs: run.durationMs, hosts })
  }
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)]
}

export function setOutputs(run: RolloutResult): void {
  for (const [name, value] of Object.entries(outputsOf(run))) core.setOutput(name, value)
}

function hostRow(h: HostReport): string[] {
  const versions = `${h.previousVersion ?? '?'} → ${h.version ?? '?'}`
  const steps = h.steps
    .map(s => `${s.name} ${formatDuration(s.ms)}${s.outcome === 'failed' ? ' ✗' : ''}`)
    .join(', ')
  return [h.host, h.result, versions, steps || '-', h.error ?? '']
}

export async function writeSummary(run: RolloutResult): Promise<void> {
  if (!process.env.GITHUB_STEP_SUMMARY) return
  const s = core.summary.addHeading(`zerodown: ${run.result}`, 2)
  s.addRaw(`${run.hosts.length} host(s) in ${formatDuration(run.durationMs)}\n\n`)
  s.addTable([
    [
      { data: 'Host', header: true },
      { data: 'Result', header: true },
      { data: 'Version', header: true },
      { data: 'Steps', header: true },
      { data: 'Error', header: true }
    ],
    ...run.hosts.map(hostRow)
  ])
  await s.write()
}
