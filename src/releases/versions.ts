/**
 * Version strings as people and distributions write them, compared by the rule that fits them:
 *
 * - semver (semver.org) when both are plain semantic versions: x.y.z with an optional
 *   pre-release that starts with a letter (2.0.0-rc.1 < 2.0.0), no build metadata;
 * - Debian's ordering (deb-version(7), dpkg's verrevcmp) otherwise: epochs, upstream version,
 *   revision, `~` before anything, `+debNuM` security updates: 1.22.1 < 1.22.1-9+deb12u9 <
 *   1.22.1-9+deb12u11. Build metadata and numeric pre-releases (1.22.1-9) are read this way,
 *   because semver would call a distribution revision a pre-release and ignore `+deb12u11`.
 *
 * The strings themselves are never rewritten: what a user or a binary said is what is stored and
 * shown. Pure code, no I/O; tested against `dpkg --compare-versions`.
 */

export type VersionRule = 'semver' | 'debian'

export interface VersionOrder {
  /** -1: a is lower, 0: same, 1: a is higher. */
  order: -1 | 0 | 1
  rule: VersionRule
}

// semver.org's grammar, with a pre-release that starts with a letter or hyphen (a digit first
// reads as a distribution revision: 1.22.1-9).
const PLAIN_SEMVER =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([A-Za-z-][0-9A-Za-z-]*(?:\.[0-9A-Za-z-]+)*))?$/

/** dpkg's syntax: [epoch:]upstream[-revision]; upstream starts with a digit. */
const DEBIAN = /^(?:(\d+):)?(\d[A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$/

interface Debian {
  epoch: string
  upstream: string
  revision: string
}

/** A version a user may write (input `version`, `rollback-to`): either rule's syntax. */
export function isVersionText(text: string): boolean {
  return text.length <= 256 && (PLAIN_SEMVER.test(text) || parseDebian(stripV(text)) !== null)
}

function stripV(text: string): string {
  return /^v\d/.test(text) ? text.slice(1) : text
}

export function parseDebian(text: string): Debian | null {
  const m = DEBIAN.exec(text)
  if (!m) return null
  const upstream = m[2]!
  // A colon in the upstream version needs an epoch (dpkg: "invalid character in version number").
  if (m[1] === undefined && upstream.includes(':')) return null
  // A trailing hyphen is an empty revision: dpkg refuses it.
  if (upstream.endsWith('-')) return null
  return { epoch: (m[1] ?? '0').replace(/^0+(?=\d)/, ''), upstream, revision: m[3] ?? '' }
}

/** dpkg's weight of one character: `~` first, then the end, digits, letters, then the rest. */
function weight(s: string, i: number): number {
  if (i >= s.length) return 0
  const c = s.charCodeAt(i)
  if (c >= 48 && c <= 57) return 0
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) return c
  if (c === 126) return -1
  return c + 256
}

const isDigit = (s: string, i: number) => i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57

/** dpkg's verrevcmp: alternating runs of non-digits (by weight) and digits (by value). */
export function compareDebianPart(a: string, b: string): number {
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a, i)) || (j < b.length && !isDigit(b, j))) {
      const d = weight(a, i) - weight(b, j)
      if (d !== 0) return Math.sign(d)
      i++
      j++
    }
    while (a[i] === '0') i++
    while (b[j] === '0') j++
    let firstDiff = 0
    while (isDigit(a, i) && isDigit(b, j)) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j)
      i++
      j++
    }
    if (isDigit(a, i)) return 1
    if (isDigit(b, j)) return -1
    if (firstDiff !== 0) return Math.sign(firstDiff)
  }
  return 0
}

function compareDigits(a: string, b: string): number {
  return a.length !== b.length ? Math.sign(a.length - b.length) : a < b ? -1 : a > b ? 1 : 0
}

export function compareDebian(a: Debian, b: Debian): number {
  return (
    compareDigits(a.epoch, b.epoch) ||
    compareDebianPart(a.upstream, b.upstream) ||
    compareDebianPart(a.revision, b.revision)
  )
}

function compareSemver(a: RegExpExecArray, b: RegExpExecArray): number {
  for (let k = 1; k <= 3; k++) {
    const d = compareDigits(a[k]!, b[k]!)
    if (d !== 0) return d
  }
  const pa = a[4]
  const pb = b[4]
  if (pa === undefined || pb === undefined) return pa === pb ? 0 : pa === undefined ? 1 : -1
  const xa = pa.split('.')
  const xb = pb.split('.')
  for (let k = 0; k < Math.max(xa.length, xb.length); k++) {
    const x = xa[k]
    const y = xb[k]
    if (x === undefined || y === undefined) return x === undefined ? -1 : 1
    const nx = /^\d+$/.test(x)
    const ny = /^\d+$/.test(y)
    const d = nx && ny ? compareDigits(x, y) : nx !== ny ? (nx ? -1 : 1) : x < y ? -1 : x > y ? 1 : 0
    if (d !== 0) return d
  }
  return 0
}

/**
 * Compares two version strings by the rule both fit (semver when both are plain semver, else
 * Debian's), or null when they cannot be compared (one is not a version by either rule).
 */
export function compareVersions(a: string, b: string): VersionOrder | null {
  const sa = PLAIN_SEMVER.exec(a)
  const sb = PLAIN_SEMVER.exec(b)
  if (sa && sb) return { order: Math.sign(compareSemver(sa, sb)) as -1 | 0 | 1, rule: 'semver' }
  const da = parseDebian(stripV(a))
  const db = parseDebian(stripV(b))
  if (!da || !db) return null
  return { order: Math.sign(compareDebian(da, db)) as -1 | 0 | 1, rule: 'debian' }
}

/** How a rule is named in messages. */
export function ruleName(rule: VersionRule): string {
  return rule === 'semver' ? 'semantic versions' : "Debian's version ordering"
}
