/** The Mermaid charts of the job summary: the rollout's steps over time, and a host's drain. */
import { formatDuration } from '../duration.js'
import type { HostReport } from '../engine/types.js'

/** Hosts charted at most (a chart of more is unreadable). */
export const MAX_CHARTED_HOSTS = 50

/**
 * Text Mermaid accepts in a gantt section or task name (no `:`, `#`, `;`), and no `%%`: Mermaid
 * takes `%%{...}%%` anywhere in a diagram as a directive (it configures the diagram and vanishes
 * from the name) and a line from `%%` as a comment; `% %` is shown instead.
 */
export function mermaidText(s: string): string {
  return noDirective(s)
    .replace(/:/g, '∶')
    .replace(/[#;\n\r]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
}

/** `%%` broken up, so that no text of ours becomes a Mermaid directive or comment. */
export function noDirective(s: string): string {
  return s.replace(/%(?=%)/g, '% ')
}

/** When the run began: the earliest host or step start. */
export function startOf(hosts: HostReport[]): number {
  const times = hosts
    .flatMap(h => [h.startedAt, ...h.steps.map(s => s.startedAt)])
    .map(t => Date.parse(t))
    .filter(t => Number.isFinite(t))
  return times.length > 0 ? Math.min(...times) : 0
}

/**
 * A gantt chart: one section per host, one bar per step, failed steps in red (crit). Times are
 * Unix milliseconds (dateFormat x), so bars of a few milliseconds keep their true length.
 */
export function rolloutChart(hosts: HostReport[]): string[] {
  const charted = hosts.filter(h => h.steps.length > 0).slice(0, MAX_CHARTED_HOSTS)
  if (charted.length === 0) return []
  const all = charted.flatMap(h => h.steps)
  const first = Math.min(...all.map(s => Date.parse(s.startedAt)))
  const last = Math.max(...all.map(s => Date.parse(s.endedAt) || Date.parse(s.startedAt)))
  const lines = [
    '```mermaid',
    'gantt',
    `  title ${charted.length === 1 ? 'Hot upgrade' : `Rollout of ${charted.length} hosts`}, ${formatDuration(last - first)}`,
    '  dateFormat x',
    `  axisFormat ${last - first < 60_000 ? '%H:%M:%S.%L' : '%H:%M:%S'}`,
    '  todayMarker off'
  ]
  for (const h of charted) {
    lines.push(`  section ${mermaidText(h.host)}`)
    for (const s of h.steps) {
      const start = Date.parse(s.startedAt)
      const end = Math.max(Date.parse(s.endedAt) || start, start + 1)
      const tag = s.outcome === 'failed' ? 'crit, ' : s.name === 'rollback' ? 'active, ' : 'done, '
      lines.push(`    ${mermaidText(s.name)} ${formatDuration(s.ms)} :${tag}${start}, ${end}`)
    }
  }
  lines.push('```')
  return lines
}

/** The drain as a Mermaid line chart: old workers at each change, seconds into the drain. */
export function drainChart(h: HostReport): string[] {
  if (h.drain.length < 2) return []
  const max = Math.max(1, ...h.drain.map(d => d.oldWorkers))
  return [
    '```mermaid',
    'xychart-beta',
    `  title "Old workers left on ${noDirective(h.host).replace(/"/g, "'")}"`,
    `  x-axis "seconds into the drain" [${h.drain.map(d => `"${(d.atMs / 1000).toFixed(1)}"`).join(', ')}]`,
    `  y-axis "old workers" 0 --> ${max}`,
    `  line [${h.drain.map(d => d.oldWorkers).join(', ')}]`,
    '```'
  ]
}
