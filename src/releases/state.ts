/**
 * The release store on each host: every binary zerodown deployed (by sha256), with its version,
 * time and provenance, and which one is live. It is what `mode: rollback` deploys from, so a
 * rollback needs nothing from the runner.
 *
 *   <release-dir>/state.json                       the releases (oldest first), the live sha256, the lineage
 *   <release-dir>/releases/<sha256>/<binary name>  the binary (a hard link to the live file when it can be)
 *   <release-dir>/releases/<sha256>/meta.json      that release's entry (for people, and to rebuild state.json)
 *
 * The lineage is a stack of sha256s: a deploy pushes, a rollback pops back to its target, the top
 * is live. "The release before the live one" (the default rollback target, never pruned) is the
 * one under the top: after v1 → v2 → v3 and a rollback to v2, the next rollback goes to v1.
 *
 * Every file is written atomically (a temp file in the same folder, then one rename); a release
 * file's sha256 is checked before it is used. All remote work is Host.run argv, with sudo when the
 * host uses it.
 *
 * This file: the pure state (lineage, versions, pruning); rollback-target.ts chooses the release a
 * rollback goes to, store.ts does the I/O, steps.ts the store's steps in a host's run, markdown.ts
 * its part of the job summary.
 */
import type { ReleaseRow } from '../engine/types.js'
import { compareVersions, ruleName, type VersionOrder } from './versions.js'

export const DEFAULT_RELEASE_ROOT = '/var/lib/zerodown'
export const SHA256 = /^[0-9a-f]{64}$/

/** Who deployed a release (GITHUB_SHA, GITHUB_REPOSITORY, GITHUB_RUN_ID); all unknown for a found binary. */
export interface Provenance {
  commit?: string
  repository?: string
  runId?: string
  runUrl?: string
}

export interface Release extends Provenance {
  sha256: string
  /** As given (input `version`) or as the binary printed it; null when it could not be told. */
  version: string | null
  /** When zerodown recorded it (deploy mode sets it again on a re-deploy). */
  deployedAt: string
  /** When it last became live. */
  liveAt?: string
  /** deploy: recorded after a deploy; found: the binary that was live before zerodown recorded it (provenance unknown). */
  origin: 'deploy' | 'found'
}

export interface StoreState {
  format: 1
  /** File name of the binary inside each release folder. */
  binary: string
  /** sha256 of the live release. */
  live: string | null
  /** Deploys push, rollbacks pop; the top is live. */
  lineage: string[]
  /** Oldest first. */
  releases: Release[]
}

/** The store cannot be used as it is: the message names the file, the problem and the fix. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'StoreError'
  }
}

// ---------------------------------------------------------------- versions

/** A version as given (input, `-v` output, store entry), trimmed; null when there is none. */
export function versionText(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null
  const t = text.trim()
  return t === '' ? null : t
}

/** How the new version stands to the live one, and by which rule; null when they cannot be compared. */
export function versionChange(newVersion: string | null, liveVersion: string | null): VersionOrder | null {
  if (newVersion === null || liveVersion === null) return null
  return compareVersions(newVersion, liveVersion)
}

/** "1.22.1 → 1.22.1-9+deb12u11 (higher by Debian's version ordering)" for the log. */
export function describeChange(from: string | null, to: string | null): string {
  const c = versionChange(to, from)
  const how =
    c === null
      ? from !== null && to !== null
        ? ' (not comparable: neither semver nor a Debian version)'
        : ''
      : ` (${c.order > 0 ? 'higher' : c.order < 0 ? 'lower' : 'the same'} by ${ruleName(c.rule)})`
  return `${from ?? 'unknown'} → ${to ?? 'unknown'}${how}`
}

/** The refusal of a downgrade, or null when the deploy may go on. */
export function downgradeProblem(
  newVersion: string | null,
  liveVersion: string | null,
  allowDowngrade: boolean
): string | null {
  if (allowDowngrade) return null
  const c = versionChange(newVersion, liveVersion)
  if (c === null || c.order >= 0) return null
  return (
    `the new binary is version ${newVersion}, lower than the live version ${liveVersion} (compared by ${ruleName(c.rule)}): a downgrade is refused. ` +
    `Set allow-downgrade: true to deploy it anyway, or use mode: rollback to go back to a release the host has`
  )
}

// ---------------------------------------------------------------- state (pure)

export function emptyState(binary: string): StoreState {
  return { format: 1, binary, live: null, lineage: [], releases: [] }
}

/** Parses and checks state.json; throws StoreError naming the file when it is not a store. */
export function parseState(text: string, binary: string, where: string): StoreState {
  const bad = (why: string): never => {
    throw new StoreError(
      `the release store ${where} is not valid (${why}). Move it aside (zerodown rebuilds it from releases/*/meta.json) or fix it`
    )
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    bad(`not JSON: ${(e as Error).message}`)
  }
  const o = raw as Partial<StoreState> | null
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('not an object')
  if (o!.format !== 1) bad(`format ${String(o!.format)}, expected 1`)
  if (!Array.isArray(o!.releases)) bad('no releases list')
  const releases = o!.releases!.map((r, i) => validRelease(r, `release ${i + 1}`, bad))
  const known = new Set(releases.map(r => r.sha256))
  if (known.size !== releases.length) bad('a sha256 is listed twice')
  const live = o!.live ?? null
  if (live !== null && !known.has(live)) bad(`live ${String(live)} is not among the releases`)
  const lineage = Array.isArray(o!.lineage)
    ? o!.lineage.filter(s => typeof s === 'string' && known.has(s))
    : []
  return { format: 1, binary, live, lineage: dedupeKeepLast(lineage), releases }
}

export function validRelease(r: unknown, what: string, bad: (why: string) => never): Release {
  const o = r as Partial<Release> | null
  if (typeof o !== 'object' || o === null) bad(`${what} is not an object`)
  if (typeof o!.sha256 !== 'string' || !SHA256.test(o!.sha256)) bad(`${what} has no valid sha256`)
  if (o!.version !== null && typeof o!.version !== 'string') bad(`${what} has no version`)
  if (typeof o!.deployedAt !== 'string') bad(`${what} has no deployedAt`)
  const out: Release = {
    sha256: o!.sha256!,
    version: o!.version === null ? null : versionText(o!.version),
    deployedAt: o!.deployedAt!,
    origin: o!.origin === 'found' ? 'found' : 'deploy'
  }
  for (const k of ['liveAt', 'commit', 'repository', 'runId', 'runUrl'] as const)
    if (typeof o![k] === 'string') out[k] = o![k]
  return out
}

function dedupeKeepLast(list: string[]): string[] {
  return list.filter((s, i) => list.lastIndexOf(s) === i)
}

/** Makes sha live: it goes on top of the lineage (once). */
export function markLive(state: StoreState, sha256: string, at: string): StoreState {
  if (!state.releases.some(r => r.sha256 === sha256)) throw new Error(`${sha256} is not in the store`)
  const already = state.live === sha256 && state.lineage[state.lineage.length - 1] === sha256
  return {
    ...state,
    live: sha256,
    lineage: already ? state.lineage : [...state.lineage.filter(s => s !== sha256), sha256],
    releases: already
      ? state.releases
      : state.releases.map(r => (r.sha256 === sha256 ? { ...r, liveAt: at } : r))
  }
}

/** Adds a release, or replaces the entry of the same sha256 and moves it to the end (newest). */
export function withRelease(state: StoreState, release: Release): StoreState {
  return { ...state, releases: [...state.releases.filter(r => r.sha256 !== release.sha256), release] }
}

/** After a rollback to sha: the lineage pops back to it (or it is pushed when it was not in it). */
export function afterRollback(state: StoreState, sha256: string, at: string): StoreState {
  const i = state.lineage.lastIndexOf(sha256)
  if (i < 0) return markLive(state, sha256, at)
  return markLive({ ...state, lineage: state.lineage.slice(0, i + 1) }, sha256, at)
}

export function liveRelease(state: StoreState): Release | undefined {
  return state.releases.find(r => r.sha256 === state.live)
}

/** The release before the live one: under the top of the lineage. */
export function previousRelease(state: StoreState): Release | undefined {
  const top = state.lineage[state.lineage.length - 1]
  if (top === undefined || top !== state.live) return undefined
  const sha = state.lineage[state.lineage.length - 2]
  return state.releases.find(r => r.sha256 === sha)
}

/** "1.22.1 (sha256 1a2b3c4d5e6f), 2.1.0 (sha256 …, live)": every release the host has, oldest first. */
export function describeReleases(state: StoreState): string {
  if (state.releases.length === 0) return 'none'
  return state.releases
    .map(
      r =>
        `${r.version ?? 'unknown version'} (sha256 ${r.sha256.slice(0, 12)}${r.sha256 === state.live ? ', live' : ''})`
    )
    .join(', ')
}

/**
 * The sha256s to prune so that `keep` releases stay: the live release and the one before it are
 * always kept, then the newest others.
 */
export function pruneChoice(state: StoreState, keep: number): string[] {
  const kept = new Set<string>()
  if (state.live) kept.add(state.live)
  const prev = previousRelease(state)
  if (prev) kept.add(prev.sha256)
  for (const r of [...state.releases].reverse()) {
    if (kept.size >= keep) break
    kept.add(r.sha256)
  }
  return state.releases.filter(r => !kept.has(r.sha256)).map(r => r.sha256)
}

export function withoutReleases(state: StoreState, shas: string[]): StoreState {
  const gone = new Set(shas)
  return {
    ...state,
    releases: state.releases.filter(r => !gone.has(r.sha256)),
    lineage: state.lineage.filter(s => !gone.has(s))
  }
}

export function releaseRows(state: StoreState): ReleaseRow[] {
  return state.releases.map(r => ({
    version: r.version,
    sha256: r.sha256,
    deployedAt: r.deployedAt,
    commit: r.commit,
    run: r.runUrl ?? r.runId,
    live: r.sha256 === state.live
  }))
}

/** The provenance of this run from the GitHub environment variables (all optional). */
export function provenanceFrom(env: Record<string, string | undefined>): Provenance {
  const p: Provenance = {}
  const clean = (v: string | undefined, max = 200) =>
    v !== undefined && v.trim() !== '' && !/[\r\n\0]/.test(v) ? v.trim().slice(0, max) : undefined
  p.commit = clean(env.GITHUB_SHA)
  p.repository = clean(env.GITHUB_REPOSITORY)
  p.runId = clean(env.GITHUB_RUN_ID)
  const server = clean(env.GITHUB_SERVER_URL) ?? 'https://github.com'
  if (p.repository && p.runId && /^\d+$/.test(p.runId) && /^https?:\/\/[^\s]+$/.test(server))
    p.runUrl = `${server}/${p.repository}/actions/runs/${p.runId}`
  for (const k of Object.keys(p) as (keyof Provenance)[]) if (p[k] === undefined) delete p[k]
  return p
}
