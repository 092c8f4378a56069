/**
 * What plan and status tell people and programs: the outputs, the job summary (one row per host,
 * the release stores, each host's steps) and the closing lines at a terminal. Pure, like the rest
 * of src/report; github.ts and cli.ts hand it on.
 */
import { formatDuration } from '../duration.js'
import type { HostReport, PlanVerdict } from '../engine/types.js'
import type { ModeResult } from '../modes/index.js'
import { releasesMarkdown } from '../releases/markdown.js'
import type { SummaryContext } from './outputs.js'
import { reportOutput } from './report-output.js'
import { cell } from './summary.js'

const short = (s?: string) => (s ? s.slice(0, 12) : '')
const join = (values: (string | number | undefined | null)[]) =>
  [...new Set(values.filter(v => v !== undefined && v !== null && v !== ''))].join(',')

const VERDICT: Record<PlanVerdict['verdict'], string> = {
  upgrade: '✅ upgrade',
  unchanged: '✅ leave it unchanged',
  refused: '❌ be refused'
}

/** The outputs, with the same names as a deploy's. */
export function modeOutputsOf(run: ModeResult, o: { reportLimit?: number } = {}): Record<string, string> {
  const plan = run.mode === 'plan'
  const hosts = run.hosts
  return {
    result: run.result,
    supervisor: run.supervisor,
    // plan: the version a deploy would bring; status: the version that serves.
    version: join(
      hosts.map(h => (plan ? (h.plan?.verdict === 'refused' ? undefined : h.version) : h.status?.version))
    ),
    'previous-version': plan ? join(hosts.map(h => h.previousVersion)) : '',
    'old-pid': join(hosts.map(h => h.oldPid)),
    'new-pid': '',
    duration: String(run.durationMs),
    report: reportOutput(
      {
        mode: run.mode,
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

function table(head: string[], rows: (string | number | undefined)[][]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map(r => `| ${r.map(c => cell(c)).join(' | ')} |`)
  ]
}

function countsLine(run: ModeResult): string {
  const n = run.hosts.length
  const parts = Object.entries(run.counts).map(([k, v]) => `${v} ${k === 'upgrade' ? 'would upgrade' : k}`)
  return `${n} host${n === 1 ? '' : 's'} (supervisor ${run.supervisor}) in ${formatDuration(run.durationMs)}: ${parts.join(', ')}. Nothing was changed on any host.`
}

function planRow(h: HostReport): (string | undefined)[] {
  const p = h.plan!
  const at = p.verdict === 'refused' && p.step ? ` at ${p.step}` : ''
  const version =
    p.verdict === 'unchanged'
      ? (h.version ?? h.previousVersion ?? '?')
      : (p.change ??
        (h.previousVersion || h.version ? `${h.previousVersion ?? '?'} → ${h.version ?? '?'}` : ''))
  const sha =
    p.verdict === 'unchanged'
      ? short(h.previousSha256)
      : h.sha256
        ? `${short(h.previousSha256) || '?'} → ${short(h.sha256)}`
        : ''
  return [h.host, `${VERDICT[p.verdict]}${at}`, version, sha, p.downgrade ?? '', p.message ?? '']
}

function statusRow(h: HostReport): (string | number | undefined)[] {
  const s = h.status
  if (!s)
    return [
      h.host,
      `❌ ${h.failedStep ?? 'failed'}: ${h.error ?? ''}`,
      h.oldPid,
      h.binaryPath,
      '',
      '',
      '',
      ''
    ]
  const target = s.rollbackTarget
    ? `${s.rollbackTarget.version ?? 'unknown'} (${short(s.rollbackTarget.sha256)})`
    : 'none'
  const replaced = s.liveSha256 !== s.runningSha256 ? ` (file on disk: ${short(s.liveSha256)})` : ''
  return [
    h.host,
    s.version ?? 'unknown',
    s.pid,
    s.livePath,
    `${short(s.runningSha256)}${replaced}`,
    h.releases?.length ?? 0,
    target,
    s.lock ?? 'free'
  ]
}

/** Each host's steps, folded: what the plan or status observed. */
function hostDetails(h: HostReport): string[] {
  const failed = h.plan ? h.plan.verdict === 'refused' : h.result !== 'unchanged'
  const out = [`<details${failed ? ' open' : ''}><summary><b>${cell(h.host)}</b></summary>`, '']
  out.push(
    ...table(
      ['Step', 'Duration', 'Outcome', 'Observed'],
      h.steps.map(s => [
        s.name,
        formatDuration(s.ms),
        s.outcome === 'failed' ? '❌ failed' : '✅ ok',
        s.observations.slice(-4).join(' / ')
      ])
    ),
    '',
    '</details>',
    ''
  )
  return out
}

export function modeSummaryMarkdown(run: ModeResult, ctx: SummaryContext = {}): string {
  const plan = run.mode === 'plan'
  const n = run.hosts.length
  const refused = run.counts.refused ?? 0
  const title = plan
    ? run.ok
      ? '✅ a deploy would go through on every host'
      : `❌ a deploy would be refused on ${refused} of ${n} host${n === 1 ? '' : 's'}`
    : run.ok
      ? `✅ ${n} host${n === 1 ? '' : 's'} read`
      : `❌ ${run.counts.failed ?? 0} of ${n} host${n === 1 ? '' : 's'} could not be read`
  const out = [`## zerodown ${run.mode}: ${title}`, '', countsLine(run), '']
  if (plan)
    out.push(
      ...table(
        ['Host', 'A deploy would', 'Version', 'sha256', 'Downgrade', 'Refusal'],
        run.hosts.map(planRow)
      ),
      ''
    )
  else
    out.push(
      ...table(
        [
          'Host',
          'Version',
          'Pid',
          'Binary',
          'Runs (sha256 of /proc/pid/exe)',
          'Releases',
          'Rollback target',
          'Lock'
        ],
        run.hosts.map(statusRow)
      ),
      ''
    )
  const releases = releasesMarkdown(
    run.hosts,
    ctx.serverUrl && ctx.repository ? `${ctx.serverUrl}/${ctx.repository}/actions/runs/` : undefined
  )
  if (releases !== '') out.push(releases)
  out.push('### Hosts', '')
  for (const h of run.hosts.slice(0, 50)) out.push(...hostDetails(h))
  return out.join('\n')
}

/** The end of a plan or status, for people at a terminal: one line per host. */
export function modeTextReport(run: ModeResult): string {
  const lines = [
    `zerodown ${run.mode}: ${run.result} in ${formatDuration(run.durationMs)}; nothing was changed`
  ]
  for (const h of run.hosts) {
    if (run.mode === 'plan') {
      const p = h.plan!
      const what =
        p.verdict === 'upgrade'
          ? `would upgrade ${p.change ?? `${h.previousVersion ?? '?'} → ${h.version ?? '?'}`}${p.downgrade ? ` (downgrade ${p.downgrade})` : ''}`
          : p.verdict === 'unchanged'
            ? `unchanged: already runs this binary (${h.version ?? h.previousVersion ?? 'unknown version'})`
            : `would be refused${p.step ? ` at ${p.step}` : ''}`
      lines.push(`  ${h.host}: ${what}`)
      if (p.verdict === 'refused') lines.push(`    ${p.message ?? ''}`)
      continue
    }
    const s = h.status
    if (!s) {
      lines.push(
        `  ${h.host}: could not be read${h.failedStep ? ` at ${h.failedStep}` : ''}`,
        `    ${h.error ?? ''}`
      )
      continue
    }
    lines.push(
      `  ${h.host}: ${s.version ?? 'unknown version'}, pid ${s.pid}, ${s.livePath}, runs sha256 ${short(s.runningSha256)}` +
        (s.liveSha256 !== s.runningSha256 ? ` (the file on disk is ${short(s.liveSha256)})` : '')
    )
    const rows = h.releases ?? []
    for (const r of [...rows].reverse())
      lines.push(
        `    ${r.live ? 'live    ' : r.rollbackTarget ? 'rollback' : '        '} ${r.version ?? 'unknown'} (sha256 ${short(r.sha256)}, deployed ${r.deployedAt})`
      )
    if (rows.length === 0) lines.push(`    release store ${s.store}: empty`)
    if (s.lock) lines.push(`    deploy lock held: ${s.lock}`)
  }
  return lines.join('\n') + '\n'
}
