/**
 * The `report` output's JSON, within GitHub's bounds. GitHub keeps at most 1 MB of outputs per job,
 * counted as UTF-16 (two bytes a character); a host's full report is a few kilobytes, so a
 * 1,000-host rollout's would be several megabytes, and a job that maps it to a job output would
 * fail. Past the limit, the report keeps every host and drops detail in steps, from the hosts
 * that went well first, and says what it left out. The command line's --json is never cut.
 */
import type { HostReport } from '../engine/types.js'

/** A quarter of a job's 1 MB (in UTF-16): room for the other outputs, and for a job that maps two runs. */
export const REPORT_OUTPUT_CHARS = 250_000

export interface ReportBody {
  mode?: string
  result: string
  supervisor?: string
  counts: unknown
  durationMs: number
  hosts: HostReport[]
}

const wentWell = (h: HostReport) => h.result === 'upgraded' || h.result === 'unchanged'

/** What every host keeps at the last cut: its result, versions and pids, and why it failed. */
function essentials(h: HostReport): Partial<HostReport> {
  const { host, result, version, previousVersion, sha256, oldPid, newPid, durationMs, failedStep, plan } = h
  return {
    host,
    plan,
    result,
    version,
    previousVersion,
    sha256,
    oldPid,
    newPid,
    durationMs,
    failedStep,
    error: h.error?.slice(0, 300)
  }
}

/** Steps with their times and outcomes, without observations; no drain or health curves. */
function withoutDetail(h: HostReport): Partial<HostReport> {
  const { drain: _drain, health: _health, weights: _weights, ...rest } = h
  return { ...rest, steps: h.steps.map(s => ({ ...s, observations: [] })) }
}

const CUTS: { left: string; cut: (h: HostReport) => Partial<HostReport> }[] = [
  { left: '', cut: h => h },
  {
    left: "the observations, drain and health curves of the hosts that went well (each host's steps are in the log)",
    cut: h => (wentWell(h) ? withoutDetail(h) : h)
  },
  {
    left: "the steps of the hosts that went well (each host's steps are in the log)",
    cut: h => (wentWell(h) ? essentials(h) : h)
  },
  {
    left: "every host's steps; errors cut to 300 characters (each host's steps are in the log)",
    cut: essentials
  }
]

/** The report's JSON: whole when it fits in `limit` characters, else with less detail, saying what was left out. */
export function reportOutput(body: ReportBody, limit = Infinity): string {
  for (const { left, cut } of CUTS) {
    const text = JSON.stringify({
      ...body,
      ...(left ? { truncated: `over ${limit} characters: left out ${left}` } : {}),
      hosts: body.hosts.map(cut)
    })
    if (text.length <= limit) return text
  }
  // Even one line per host is too much: the counts, and the hosts that did not go well.
  return JSON.stringify({
    ...body,
    truncated: `over ${limit} characters even with one line per host: only the hosts that did not go well, up to the limit`,
    hosts: fitting(body.hosts.filter(h => !wentWell(h)).map(essentials), limit / 2)
  })
}

function fitting<T>(items: T[], chars: number): T[] {
  const kept: T[] = []
  let used = 0
  for (const item of items) {
    used += JSON.stringify(item).length + 1
    if (used > chars) break
    kept.push(item)
  }
  return kept
}
