/**
 * The canary's error rate, from the load balancer's own access log. nginx's stub_status counts
 * for the whole server, not per backend, so it cannot tell the canary from the others; the access
 * log can, with a format that names the tries of each request. Users add (inside http {}):
 *
 *   log_format zerodown '$msec\t$status\t$upstream_addr\t$upstream_status';
 *   access_log /var/log/nginx/zerodown.log zerodown;   (in the server that proxies to the block)
 *
 * One line per request: when nginx tried several servers, $upstream_addr and $upstream_status list
 * them in order, separated by ", " (and " : " across an internal redirect). A try at the canary
 * fails when its status is 5xx (or missing) or when nginx moved on to another server after it.
 */

export const LOG_FORMAT_NAME = 'zerodown'
/** The format string, as it goes in nginx.conf (nginx turns \t into a tab). */
export const LOG_FORMAT = String.raw`'$msec\t$status\t$upstream_addr\t$upstream_status'`

export interface Tally {
  /** Tries that went to the backend. */
  tries: number
  /** Of those, the ones that failed: 5xx, or nginx moved on to another server. */
  failed: number
  /** Of the failures, the ones after which nginx tried another server (the client may have seen no error). */
  movedOn: number
  /** Lines that are not in the format (a sign the access_log does not use it). */
  foreign: number
}

export const emptyTally = (): Tally => ({ tries: 0, failed: 0, movedOn: 0, foreign: 0 })

/** " : " separates the tries of internal redirects (groups); ", " the servers tried within one. */
const groups = (field: string) => field.split(/\s+:\s+/).map(g => g.split(/\s*,\s*/))

/** Counts the tries at `backend` (an address as nginx logs it: 127.0.0.1:8080) in log lines. */
export function tallyLines(text: string, backend: string, into: Tally = emptyTally()): Tally {
  for (const line of text.split('\n')) {
    if (line === '') continue
    const fields = line.split('\t')
    if (fields.length !== 4 || !/^\d+(\.\d+)?$/.test(fields[0]!)) {
      into.foreign++
      continue
    }
    const statusGroups = groups(fields[3]!)
    for (const [g, addrs] of groups(fields[2]!).entries()) {
      for (const [i, addr] of addrs.entries()) {
        if (addr !== backend) continue
        into.tries++
        const status = statusGroups[g]?.[i] ?? '-'
        // A try followed by another server in the same group: nginx gave up on this one.
        const moved = i < addrs.length - 1
        if (moved || !/^[1-4]\d\d$/.test(status)) into.failed++
        if (moved) into.movedOn++
      }
    }
  }
  return into
}

export function rateOf(t: Tally): number {
  return t.tries === 0 ? 0 : t.failed / t.tries
}

/**
 * The verdict at a moment of the watch. A canary fails as soon as its failures alone exceed the
 * allowed share of the tries that `minTries` would bring (so that one early 500 among three tries
 * does not end a canary that would have stayed under the limit), and at the end whenever the
 * rate is above the limit.
 */
export function verdict(
  t: Tally,
  maxRate: number,
  final: boolean,
  minTries = 20
): 'pass' | 'fail' | 'watching' {
  const over = t.failed > maxRate * t.tries
  if (over && (final || t.failed > maxRate * Math.max(minTries, t.tries))) return 'fail'
  return final ? 'pass' : 'watching'
}

/** "1%" → 0.01; null when not a percentage from 0 to 100. */
export function parsePercent(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text)
  if (!m) return null
  const v = Number(m[1])
  return v >= 0 && v <= 100 ? v / 100 : null
}

export function formatTally(t: Tally): string {
  const pct = (rateOf(t) * 100).toFixed(t.tries > 0 && rateOf(t) < 0.1 ? 2 : 1)
  return `${t.failed} of ${t.tries} tries failed (${pct}%)${t.movedOn > 0 ? `, ${t.movedOn} moved on to another server` : ''}`
}
