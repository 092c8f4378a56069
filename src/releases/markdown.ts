/** The release store's part of the job summary. */
import { markdownText } from '../remote-text.js'
import type { HostReport, ReleaseRow } from '../engine/types.js'

/** Text from state.json (written on the host) as text: no HTML, no Markdown, no links. */
const cell = (s: string) => markdownText(s)

/** Markdown: one releases table per host (hosts with the same releases share one), live marked. */
/** A release's run is a link only when it is a run of this repository (runsPrefix). */
export function releasesMarkdown(hosts: HostReport[], runsPrefix?: string): string {
  const groups = new Map<string, { hosts: string[]; rows: ReleaseRow[] }>()
  for (const h of hosts) {
    if (!h.releases || h.releases.length === 0) continue
    const key = JSON.stringify(
      h.releases.map(r => [r.sha256, r.version, r.live, r.rollbackTarget, r.commit, r.run])
    )
    const g = groups.get(key)
    if (g) g.hosts.push(h.host)
    else groups.set(key, { hosts: [h.host], rows: h.releases })
  }
  const out: string[] = []
  for (const g of groups.values()) {
    const names =
      g.hosts.length > 3
        ? `${g.hosts.slice(0, 3).join(', ')} and ${g.hosts.length - 3} more`
        : g.hosts.join(', ')
    out.push(
      `### Releases on ${cell(names)}`,
      '',
      '| | Version | sha256 | Deployed (UTC) | Commit | Run |',
      '|---|---|---|---|---|---|'
    )
    for (const r of [...g.rows].reverse()) {
      const run =
        r.run === undefined
          ? ''
          : runsPrefix !== undefined &&
              r.run.startsWith(runsPrefix) &&
              /^\d+(\/attempts\/\d+)?$/.test(r.run.slice(runsPrefix.length))
            ? `[${cell(r.run.slice(runsPrefix.length).split('/')[0] ?? r.run)}](${r.run})`
            : cell(r.run)
      out.push(
        `| ${r.live ? '**live**' : r.rollbackTarget ? 'rollback target' : ''} | ${cell(r.version ?? 'unknown')} | \`${r.sha256.slice(0, 12)}\` | ${cell(r.deployedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))} | ${r.commit ? `\`${r.commit.slice(0, 7).replace(/[^0-9a-f]/gi, '?')}\`` : ''} | ${run} |`
      )
    }
    out.push('')
  }
  return out.join('\n')
}
