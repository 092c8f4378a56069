/** Durations as users write them: `250ms`, `30s`, `5m`, `1h`, or plain seconds (`90`, `1.5`). */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Returns milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text)
  if (!m) return null
  const value = Number(m[1]) * UNITS[m[2] ?? 's']!
  return Number.isFinite(value) ? Math.round(value) : null
}

/** Formats milliseconds for people: 850ms, 12.3s, 4m05s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const minutes = Math.floor(ms / 60_000)
  const seconds = Math.round((ms % 60_000) / 1000)
  return `${minutes}m${String(seconds).padStart(2, '0')}s`
}
