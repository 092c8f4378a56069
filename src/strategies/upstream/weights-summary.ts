/**
 * The job summary's picture of strategy upstream: each host's server in the load balancer's block
 * over time (down = 0), as a Mermaid line chart with one line per host, and as a table in words.
 * Text from hosts is made safe by the caller's cell(); host names here go through mermaidSafe.
 */
import type { HostReport, WeightPoint } from '../../engine/types.js'

const mermaidSafe = (s: string) =>
  s
    .replace(/["#;:\n\r`]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
const level = (p: WeightPoint) => (p.weight === 'down' ? 0 : p.weight)

/** Seconds since t0, one decimal. */
const secs = (at: string, t0: number) => ((Date.parse(at) - t0) / 1000).toFixed(1)

export function weightsChart(hosts: HostReport[]): string[] {
  const charted = hosts.filter(h => (h.weights?.length ?? 0) > 0).slice(0, 20)
  if (charted.length === 0) return []
  const times = [...new Set(charted.flatMap(h => h.weights!.map(w => Date.parse(w.at))))].sort(
    (a, b) => a - b
  )
  const t0 = times[0]!
  const max = Math.max(1, ...charted.flatMap(h => h.weights!.map(level)))
  const lines = [
    '```mermaid',
    'xychart-beta',
    '  title "Weight in the load balancer (0 = down), per host"',
    `  x-axis "seconds into the rollout" [${times.map(t => `"${((t - t0) / 1000).toFixed(1)}"`).join(', ')}]`,
    `  y-axis "weight" 0 --> ${max}`
  ]
  for (const h of charted) {
    const ws = h.weights!
    // The host's state at each moment: its last change at or before it (before its first: that one's).
    const values = times.map(t => level([...ws].reverse().find(w => Date.parse(w.at) <= t) ?? ws[0]!))
    lines.push(`  line "${mermaidSafe(h.host)}" [${values.join(', ')}]`)
  }
  lines.push('```')
  return lines
}

/** One line per host: "+0.0s 3 (before the run) → +0.4s down (out for the upgrade) → ...". */
export function weightsLines(hosts: HostReport[]): { host: string; timeline: string }[] {
  const all = hosts.flatMap(h => h.weights ?? []).map(w => Date.parse(w.at))
  if (all.length === 0) return []
  const t0 = Math.min(...all)
  return hosts
    .filter(h => (h.weights?.length ?? 0) > 0)
    .map(h => ({
      host: h.host,
      timeline: h
        .weights!.map(
          w => `+${secs(w.at, t0)}s ${w.weight === 'down' ? 'down' : `weight ${w.weight}`} (${w.why})`
        )
        .join(' → ')
    }))
}
