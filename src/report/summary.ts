/** The job summary in Markdown: a row per host, the charts, per host the steps, and what to do now. */
import { markdownText } from '../remote-text.js'
import { formatDuration } from '../duration.js'
import type { HostReport, HostResult, StepReport } from '../engine/types.js'
import type { RolloutResult } from '../fleet/tally.js'
import { releasesMarkdown } from '../releases/markdown.js'
import { drainChart, rolloutChart, startOf } from './charts.js'
import { weightsChart, weightsLines } from '../strategies/upstream/weights-summary.js'
import type { SummaryContext } from './outputs.js'

/** Hosts that get a detail section (failed ones always); a summary is limited to 1 MiB. */
const MAX_DETAILED_HOSTS = 50

const ICON: Record<HostResult, string> = {
  upgraded: '✅',
  unchanged: '✅',
  'rolled-back': '↩️',
  failed: '❌',
  untouched: '⏸️',
  parked: '🅿️'
}

const ok = (r: HostResult) => r === 'upgraded' || r === 'unchanged'

export function summaryMarkdown(run: RolloutResult, ctx: SummaryContext = {}): string {
  const out: string[] = []
  out.push(`## zerodown: ${ICON[run.result]} ${run.result}`, '')
  out.push(countsLine(run), '')
  out.push(...hostTable(run.hosts), '')
  const chart = rolloutChart(run.hosts)
  if (chart.length > 0) out.push('### Rollout', '', ...chart, '')
  const weights = weightsChart(run.hosts)
  if (weights.length > 0)
    out.push(
      '### Weights in the load balancer',
      '',
      ...weights,
      '',
      ...weightsLines(run.hosts).map(w => `- **${cell(w.host)}**: ${cell(w.timeline, 2000)}`),
      ''
    )
  const next = whatNow(run, ctx)
  if (next.length > 0) out.push(...next, '')
  const releases = releasesMarkdown(
    run.hosts,
    ctx.serverUrl && ctx.repository ? `${ctx.serverUrl}/${ctx.repository}/actions/runs/` : undefined
  )
  if (releases !== '') out.push(releases)
  const detailed = run.hosts.filter((h, i) => !ok(h.result) || i < MAX_DETAILED_HOSTS)
  if (detailed.length > 0) {
    out.push('### Hosts', '')
    for (const h of detailed) out.push(...hostDetails(h, startOf(run.hosts)), '')
    const rest = run.hosts.length - detailed.length
    if (rest > 0) out.push(`${rest} more hosts: see the \`report\` output for their steps.`, '')
  }
  return out.join('\n')
}

function countsLine(run: RolloutResult): string {
  const parts = (Object.entries(run.counts) as [HostResult, number][])
    .filter(([, n]) => n > 0)
    .map(([result, n]) => `${n} ${result}`)
  const hosts = `${run.hosts.length} host${run.hosts.length === 1 ? '' : 's'}`
  const by = run.supervisor ? ` (supervisor ${run.supervisor})` : ''
  return `${hosts}${by} in ${formatDuration(run.durationMs)}${parts.length > 0 ? `: ${parts.join(', ')}` : ''}.`
}

/** A table cell or inline text: no line breaks, no HTML, no Markdown (remote text is shown as text), bounded. */
export function cell(text: string | number | undefined, max = 300): string {
  if (text === undefined || text === '') return ''
  let s = String(text).replace(/\s*\n\s*/g, ' ')
  if (s.length > max) s = s.slice(0, max - 1) + '…'
  return markdownText(s)
}

function table(head: string[], rows: (string | number | undefined)[][]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map(r => `| ${r.map(c => cell(c)).join(' | ')} |`)
  ]
}

export function versionsOf(h: HostReport): string {
  const from = h.previousVersion ?? '?'
  const to = h.version ?? (h.result === 'unchanged' ? from : '?')
  const sha = (s?: string) => (s ? s.slice(0, 8) : '?')
  // Two builds of one version differ only by their sha256.
  const builds = from === to && h.sha256 && h.previousSha256 && h.sha256 !== h.previousSha256
  // A host that went back serves what it had: say so, with what was tried beside it.
  if (h.result === 'rolled-back')
    return builds
      ? `${from} (sha256 ${sha(h.previousSha256)}) serves; tried ${to} (sha256 ${sha(h.sha256)})`
      : `${from} serves; tried ${to}`
  if (builds) return `${from} → ${to} (sha256 ${sha(h.previousSha256)} → ${sha(h.sha256)})`
  return `${from} → ${to}`
}

function stepsLine(h: HostReport): string {
  return h.steps
    .map(s => `${s.name} ${formatDuration(s.ms)}${s.outcome === 'failed' ? ' ✗' : ''}`)
    .join(' · ')
}

/** Old workers over time in one line: `2 → 1 (0.1s) → 0 (0.3s)`. */
export function drainLine(h: HostReport): string {
  if (h.drain.length === 0) return ''
  return h.drain
    .map((d, i) => (i === 0 ? `${d.oldWorkers}` : `${d.oldWorkers} (${formatDuration(d.atMs)})`))
    .join(' → ')
}

function healthLine(h: HostReport): string {
  if (h.health.length === 0) return ''
  const passed = h.health.filter(c => c.ok).length
  return `${passed}/${h.health.length} passed`
}

function hostTable(hosts: HostReport[]): string[] {
  return table(
    ['Host', 'Result', 'Version', 'Master pid', 'Time', 'Steps', 'Drain (old workers)', 'Health checks'],
    hosts.map(h => [
      h.host,
      `${ICON[h.result]} ${h.result}${h.failedStep ? ` at ${h.failedStep}` : ''}`,
      h.previousVersion || h.version ? versionsOf(h) : '',
      h.oldPid ? `${h.oldPid} → ${h.newPid ?? '-'}` : '',
      h.durationMs !== undefined ? formatDuration(h.durationMs) : '',
      stepsLine(h) || '-',
      drainLine(h),
      healthLine(h)
    ])
  )
}

// ------------------------------------------------------------------------------------ details

function offset(iso: string, t0: number): string {
  const t = Date.parse(iso)
  return Number.isFinite(t) && t0 > 0 ? `+${((t - t0) / 1000).toFixed(3)}s` : ''
}

function stepRow(s: StepReport, t0: number): (string | number | undefined)[] {
  const icon = s.outcome === 'failed' ? '❌' : s.outcome === 'skipped' ? '⏭️' : '✅'
  return [
    s.name,
    offset(s.startedAt, t0),
    formatDuration(s.ms),
    `${icon} ${s.outcome}`,
    s.observations.slice(-3).join(' / ')
  ]
}

function hostDetails(h: HostReport, t0: number): string[] {
  const out: string[] = []
  const open = ok(h.result) ? '' : ' open'
  out.push(`<details${open}><summary><b>${cell(h.host)}</b>: ${ICON[h.result]} ${h.result}</summary>`, '')
  if (h.error) out.push(`**${h.failedStep ?? 'error'}:** ${cell(h.error, 2000)}`, '')
  if (h.steps.length > 0)
    out.push(
      ...table(
        ['Step', 'Start', 'Duration', 'Outcome', 'Observed'],
        h.steps.map(s => stepRow(s, t0))
      ),
      ''
    )
  if (h.drain.length > 0) {
    const chart = drainChart(h)
    out.push('**Drain**: old workers over time', '')
    if (chart.length > 0) out.push(...chart, '')
    out.push(
      ...table(
        ['Into the drain', 'Old workers'],
        h.drain.map(d => [formatDuration(d.atMs), d.oldWorkers])
      ),
      ''
    )
  }
  if (h.health.length > 0) {
    out.push('**Health checks**', '')
    out.push(
      ...table(
        ['#', 'At', 'Result', 'Detail'],
        h.health.map((c, i) => [i + 1, formatDuration(c.atMs), c.ok ? '✅ pass' : '❌ fail', c.detail])
      ),
      ''
    )
  }
  for (const section of hostExtraSections(h)) out.push(...section, '')
  out.push('</details>')
  return out
}

/**
 * Further per-host sections (each a list of Markdown lines), shown after the steps, the drain
 * and the health checks. Add one entry per section here.
 */
function hostExtraSections(_h: HostReport): string[][] {
  return []
}

// ------------------------------------------------------------------------ what to do now

/** The rollback workflow: a URL as given, or a file of this repository's .github/workflows. */
function rollbackLink(ctx: SummaryContext): string | undefined {
  const w = ctx.rollbackWorkflow
  if (!w) return undefined
  if (/^https?:\/\//.test(w)) return w
  if (!ctx.serverUrl || !ctx.repository) return undefined
  return `${ctx.serverUrl}/${ctx.repository}/actions/workflows/${w}`
}

/** On failure: per host what happened, and the exact commands or workflow to run. */
export function whatNow(run: RolloutResult, ctx: SummaryContext): string[] {
  const link = rollbackLink(ctx)
  const workflow = link
    ? `the [rollback workflow](${link})`
    : ctx.rollbackWorkflow
      ? `the rollback workflow (${ctx.rollbackWorkflow})`
      : 'this action'
  const upgraded = run.hosts.filter(h => h.result === 'upgraded')
  // hold: true: every host held on purpose, for a later run with mode commit or abort.
  if (run.result === 'parked')
    return [
      `Every host is held: its new master serves, its old master waits. Run this action with \`mode: commit\` to keep the new version, or \`mode: abort\` to go back; a held host nobody finishes goes back by itself at \`hold-timeout\`.`
    ]
  if (ok(run.result)) {
    if (upgraded.length === 0) return []
    return [
      `To go back to the previous version later, run ${workflow} with \`mode: rollback\` for these hosts.`
    ]
  }
  const out = ['### What happened', '']
  const causes = run.failures ?? []
  if (causes.length > 0) {
    const list = causes.map(
      f => `**${cell(f.host)}**${f.step ? ` at **${f.step}**` : ''}: ${cell(f.error, 1000)}`
    )
    out.push(`Cause: ${list.join('; ')}`, '')
  }
  for (const h of run.hosts) {
    if (ok(h.result)) continue
    const at = h.failedStep ? ` at **${h.failedStep}**` : ''
    const why = h.error ? `: ${cell(h.error, 1000)}` : ''
    const name = `**${cell(h.host)}**`
    switch (h.result) {
      case 'rolled-back':
        out.push(
          `- ${name} rolled back${at}${why}. The old master${h.oldPid ? ` ${h.oldPid}` : ''} serves again with the old binary${h.previousVersion ? ` (${h.previousVersion})` : ''}: nothing to run on this host.`
        )
        break
      case 'failed':
        if (h.repair && h.repair.length > 0)
          out.push(
            `- ${name} failed${at}${why}, and its rollback failed too${h.rollbackError ? `: ${cell(h.rollbackError, 1000)}` : ''}. Repair it by hand, on the host:`,
            '',
            '  ```sh',
            ...h.repair.map(line => `  ${line}`),
            '  ```'
          )
        else if (h.steps.some(s => s.name === 'swap' && s.outcome === 'ok'))
          out.push(
            `- ${name} failed${at}${why}. Its state is uncertain: check the master in the pid file and the live binary before the next run.`
          )
        else
          out.push(`- ${name} failed${at}${why}. Nothing changed on the host: fix the cause and run again.`)
        break
      case 'untouched':
        out.push(`- ${name} was not reached: the rollout stopped before it. It still runs the old version.`)
        break
      case 'parked':
        out.push(
          `- ${name} is parked: its old master${h.oldPid ? ` ${h.oldPid}` : ''} is still alive beside the new one${h.newPid ? ` ${h.newPid}` : ''}. ` +
            `Keep the new version: \`kill -QUIT ${h.oldPid ?? '<old master>'}\`. Go back: \`kill -HUP ${h.oldPid ?? '<old master>'}; kill -QUIT ${h.newPid ?? '<new master>'}\`, then put the old binary back.`
        )
        break
    }
  }
  out.push('')
  if (upgraded.length > 0)
    out.push(
      `These hosts run the new version: ${upgraded.map(h => `\`${cell(h.host)}\``).join(', ')}. ` +
        `To take them back, run ${workflow} with \`mode: rollback\` for them, or from a terminal: ` +
        `\`node dist/index.js rollback --hosts ${upgraded.map(h => h.host).join(',')} ...\``
    )
  else
    out.push(
      `No host runs the new version. To go back further, to an earlier release, run ${workflow} with \`mode: rollback\` and \`rollback-to\`.`
    )
  return out
}
