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
 * host uses it. Pure logic (versions, targets, pruning) is exported apart from the I/O for tests.
 */
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import type { Host } from './host/host.js'
import type { Settings } from './settings.js'
import { compareVersions, ruleName, type VersionOrder } from './releases/versions.js'
import { remoteSha256 } from './upgrade/install.js'
import type { HookContext, UpgradeHooks, UpgradeSource } from './upgrade/machine.js'
import { StepError, type HostReport, type ReleaseRow } from './upgrade/types.js'

export const DEFAULT_RELEASE_ROOT = '/var/lib/zerodown'
const SHA256 = /^[0-9a-f]{64}$/

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
  const releases = o!.releases!.map((r, i) => checkRelease(r, `release ${i + 1}`, bad))
  const known = new Set(releases.map(r => r.sha256))
  if (known.size !== releases.length) bad('a sha256 is listed twice')
  const live = o!.live ?? null
  if (live !== null && !known.has(live)) bad(`live ${String(live)} is not among the releases`)
  const lineage = Array.isArray(o!.lineage)
    ? o!.lineage.filter(s => typeof s === 'string' && known.has(s))
    : []
  return { format: 1, binary, live, lineage: dedupeKeepLast(lineage), releases }
}

function checkRelease(r: unknown, what: string, bad: (why: string) => never): Release {
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

/** What rollback-to names: releases whose version is exactly it, else the same by its rule, else a sha256 prefix. */
function releasesNamed(state: StoreState, wanted: string): Release[] {
  const exact = state.releases.filter(r => r.version === wanted)
  if (exact.length > 0) return exact
  const same = state.releases.filter(
    r => r.version !== null && compareVersions(r.version, wanted)?.order === 0
  )
  if (same.length > 0) return same
  const prefix = wanted.toLowerCase()
  return /^[0-9a-f]{12,64}$/.test(prefix) ? state.releases.filter(r => r.sha256.startsWith(prefix)) : []
}

/**
 * The release a rollback goes to: the one rollback-to names (exactly one, by version or sha256
 * prefix), or the release before the live one. Anything else fails with the list of releases.
 */
export function rollbackTarget(state: StoreState, rollbackTo?: string): Release {
  const has = `It has: ${describeReleases(state)}`
  if (rollbackTo === undefined) {
    const prev = previousRelease(state)
    if (prev) return prev
    throw new StoreError(
      `there is no release before the live one (${liveRelease(state)?.version ?? 'unknown'}) in the host's release store. ${has}. ` +
        `Name one with rollback-to, or deploy the version you want with mode: deploy`
    )
  }
  const matches = releasesNamed(state, rollbackTo)
  if (matches.length === 0)
    throw new StoreError(
      `rollback-to ${rollbackTo}: the host's release store has no release with version ${rollbackTo}. ${has}. ` +
        `Choose one of these, or deploy ${rollbackTo} with mode: deploy`
    )
  if (matches.length > 1)
    throw new StoreError(
      `rollback-to ${rollbackTo} names ${matches.length} releases of the host's store (builds with sha256 ` +
        `${matches.map(r => r.sha256.slice(0, 12)).join(', ')}). ${has}. Name one by its sha256 (12 or more hex digits) in rollback-to`
    )
  return matches[0]!
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

// ---------------------------------------------------------------- summary

const cell = (s: string) =>
  s
    .replace(/[\r\n]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')

/** Markdown: one releases table per host (hosts with the same releases share one), live marked. */
export function releasesMarkdown(hosts: HostReport[]): string {
  const groups = new Map<string, { hosts: string[]; rows: ReleaseRow[] }>()
  for (const h of hosts) {
    if (!h.releases || h.releases.length === 0) continue
    const key = JSON.stringify(h.releases.map(r => [r.sha256, r.version, r.live, r.commit, r.run]))
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
          : /^https?:\/\/[A-Za-z0-9._~:/?#@!$&*+,;=%-]+$/.test(r.run)
            ? `[${cell(r.run.split('/').pop() ?? r.run)}](${r.run})`
            : cell(r.run)
      out.push(
        `| ${r.live ? '**live**' : ''} | ${cell(r.version ?? 'unknown')} | \`${r.sha256.slice(0, 12)}\` | ${cell(r.deployedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))} | ${r.commit ? `\`${cell(r.commit.slice(0, 7))}\`` : ''} | ${run} |`
      )
    }
    out.push('')
  }
  return out.join('\n')
}

// ---------------------------------------------------------------- the store on a host

export class ReleaseStore {
  readonly statePath: string

  constructor(
    readonly host: Host,
    readonly dir: string,
    readonly binary: string
  ) {
    this.statePath = posix.join(dir, 'state.json')
  }

  /** The store of the binary at livePath: release-dir, or /var/lib/zerodown/<binary name>. */
  static forLive(host: Host, releaseDir: string | undefined, livePath: string): ReleaseStore {
    const name = posix.basename(livePath)
    const binary = name === '' || name === '.' || name === '..' ? 'binary' : name
    return new ReleaseStore(host, releaseDir ?? posix.join(DEFAULT_RELEASE_ROOT, binary), binary)
  }

  releaseDir(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`)
    return posix.join(this.dir, 'releases', sha256)
  }

  releasePath(sha256: string): string {
    return posix.join(this.releaseDir(sha256), this.binary)
  }

  private async run(argv: string[], what: string): Promise<void> {
    const r = await this.host.run(argv, { sudo: this.host.sudo, timeoutMs: 120_000 })
    if (r.code !== 0) {
      const detail = (r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')
      const denied = /denied|read-only/i.test(detail)
      throw new StoreError(
        `release-dir ${this.dir}: cannot ${what} on ${this.host.name} (${detail || `status ${r.code}`}). ` +
          (denied
            ? 'Let the deploy user write that folder, set sudo: true, or set release-dir to a folder it can write'
            : 'Check the folder and the disk')
      )
    }
  }

  /** Reads state.json; rebuilds it from releases/*\/meta.json when it is missing; empty for a new store. */
  async read(): Promise<StoreState> {
    const text = await this.host.readFile(this.statePath, { sudo: this.host.sudo }).catch((e: Error) => {
      if (!/cannot read/.test(e.message)) throw e
      const what = `read ${this.statePath}`
      throw new StoreError(
        `release-dir ${this.dir}: cannot ${what} on ${this.host.name} (${e.message.split(': ').pop()}). ` +
          'Let the deploy user read that folder, set sudo: true, or set release-dir to a folder it can read'
      )
    })
    if (text !== null) return parseState(text, this.binary, this.statePath)
    return this.rebuild()
  }

  private async rebuild(): Promise<StoreState> {
    const r = await this.host.run(
      [
        'sh',
        '-c',
        'for f in "$1"/releases/*/meta.json; do [ -f "$f" ] || continue; printf "%s\\n" "$f"; cat -- "$f"; printf "\\n\\036\\n"; done',
        'sh',
        this.dir
      ],
      { sudo: this.host.sudo }
    )
    let state = emptyState(this.binary)
    if (r.code !== 0) return state
    const bad = (why: string): never => {
      throw new StoreError(why)
    }
    const found: Release[] = []
    for (const chunk of r.stdout.split('\n\u001e\n')) {
      const nl = chunk.indexOf('\n')
      if (nl < 0) continue
      try {
        const rel = checkRelease(JSON.parse(chunk.slice(nl + 1)), chunk.slice(0, nl), bad)
        if (posix.basename(posix.dirname(chunk.slice(0, nl))) === rel.sha256) found.push(rel)
      } catch {
        // an unreadable meta.json: that release is not listed
      }
    }
    found.sort((a, b) => a.deployedAt.localeCompare(b.deployedAt))
    for (const rel of found) state = withRelease(state, rel)
    return state
  }

  /** Writes a file atomically: a temp file in the same folder, flushed, then one rename. */
  async writeAtomic(path: string, text: string): Promise<void> {
    const tmp = posix.join(
      posix.dirname(path),
      `.${posix.basename(path)}.tmp-${randomBytes(6).toString('hex')}`
    )
    const script =
      'umask 022; printf "%s\\n" "$1" > "$2" || exit 1; sync "$2" 2>/dev/null; mv -f -- "$2" "$3" || { rm -f -- "$2"; exit 1; }'
    await this.run(['sh', '-c', script, 'sh', text, tmp, path], `write ${path}`)
  }

  async write(state: StoreState): Promise<void> {
    await this.run(['mkdir', '-p', '--', this.dir], `create ${this.dir}`)
    await this.writeAtomic(this.statePath, JSON.stringify(state, null, 2))
  }

  /** The sha256 the stored file has now (null: missing). */
  async storedSha256(sha256: string): Promise<string | null> {
    return remoteSha256(this.host, this.releasePath(sha256))
  }

  /** Refuses a release whose file is missing or does not have its sha256. */
  async checkRelease(release: Release, state: StoreState): Promise<void> {
    const got = await this.storedSha256(release.sha256)
    if (got === release.sha256) return
    throw new StoreError(
      `the release ${release.version ?? 'of unknown version'} in the host's store is ${got === null ? 'missing' : 'corrupted'}: ` +
        `${this.releasePath(release.sha256)} ${got === null ? 'does not exist' : `has sha256 ${got}, expected ${release.sha256}`}. ` +
        `It is not deployed. Deploy that version again from its build (mode: deploy), or choose another release ` +
        `(it has: ${describeReleases(state)})`
    )
  }

  /**
   * Puts the file at fromPath (with sha256) into the store, unless the store already holds it
   * intact: a hard link when both are on one file system, else a copy; checked, then renamed in.
   */
  async put(fromPath: string, sha256: string): Promise<'present' | 'linked' | 'copied'> {
    if ((await this.storedSha256(sha256)) === sha256) return 'present'
    const dir = this.releaseDir(sha256)
    const target = this.releasePath(sha256)
    const tmp = posix.join(dir, `.${this.binary}.tmp-${randomBytes(6).toString('hex')}`)
    await this.run(['mkdir', '-p', '--', dir], `create ${dir}`)
    const sudo = this.host.sudo
    let how: 'linked' | 'copied' = 'linked'
    try {
      if ((await this.host.run(['ln', '--', fromPath, tmp], { sudo })).code !== 0) {
        how = 'copied'
        await this.run(['cp', '--', fromPath, tmp], `copy ${fromPath} into ${dir}`)
      }
      const got = await remoteSha256(this.host, tmp)
      if (got !== sha256)
        throw new StoreError(
          `${fromPath} changed while it was stored (sha256 ${got}, expected ${sha256}); it is not recorded`
        )
      if (how === 'copied') await this.run(['chmod', '0755', '--', tmp], `chmod ${tmp}`)
      await this.run(['mv', '-f', '--', tmp, target], `store ${target}`)
    } catch (e) {
      // A folder made for nothing: remove it when empty, so no release looks half-stored.
      await this.host.run(['rm', '-f', '--', tmp], { sudo }).catch(() => undefined)
      await this.host.run(['rmdir', '--', dir], { sudo }).catch(() => undefined)
      throw e
    } finally {
      await this.host.run(['rm', '-f', '--', tmp], { sudo }).catch(() => undefined)
    }
    return how
  }

  async writeMeta(release: Release): Promise<void> {
    await this.writeAtomic(
      posix.join(this.releaseDir(release.sha256), 'meta.json'),
      JSON.stringify(release, null, 2)
    )
  }

  async remove(sha256: string): Promise<void> {
    await this.run(['rm', '-rf', '--', this.releaseDir(sha256)], `remove ${this.releaseDir(sha256)}`)
  }

  /** Records state after pruning to keep; returns the pruned releases. */
  async saveAndPrune(state: StoreState, keep: number): Promise<{ state: StoreState; pruned: Release[] }> {
    const shas = pruneChoice(state, keep)
    const pruned = state.releases.filter(r => shas.includes(r.sha256))
    const next = withoutReleases(state, shas)
    await this.write(next)
    // After state.json no longer names them: a failed removal leaves a folder, never a dangling entry.
    for (const sha of shas) await this.remove(sha)
    return { state: next, pruned }
  }
}

// ---------------------------------------------------------------- hooks for the upgrade

export interface ReleaseOptions {
  mode: 'deploy' | 'rollback'
  releaseDir?: string
  keepReleases: number
  /** The new binary's version (input `version`); default: detected from the binary. */
  version?: string
  allowDowngrade: boolean
  rollbackTo?: string
  provenance: Provenance
  now?: () => Date
}

interface HostRun {
  store: ReleaseStore
  liveVersion: string | null
  newVersion: string | null
  target?: Release
}

const shortSha = (s: string) => s.slice(0, 12)

/**
 * The release store's part of an upgrade, as hooks of the state machine:
 * - after preflight: the live binary is in the store (recorded as found if zerodown never saw it)
 *   and marked live; rollback mode picks its target there and checks its sha256;
 * - after verify: the versions are known; a downgrade is refused unless allowed;
 * - after the upgrade: the new release is recorded and made live, old ones pruned.
 */
export function releaseHooks(o: ReleaseOptions): UpgradeHooks {
  const runs = new WeakMap<HostReport, HostRun>()
  const now = () => (o.now ? o.now() : new Date()).toISOString()
  const refuse = (step: 'preflight' | 'verify', e: unknown): never => {
    throw e instanceof StoreError ? new StepError(step, e.message) : e
  }

  return {
    async afterPreflight(ctx: HookContext): Promise<UpgradeSource | void> {
      const { host, facts, report, note } = ctx
      const store = ReleaseStore.forLive(host, o.releaseDir, facts.livePath)
      let state = await store.read().catch(e => refuse('preflight', e))
      // The build that runs must be in the store before a deploy replaces it: rollback needs it.
      // When a package manager replaced the file under the master, it is read from /proc/<pid>/exe.
      const running = facts.runningSha256
      const from = facts.masterExeReplaced ? `/proc/${facts.masterPid}/exe` : facts.livePath
      const had = state.releases.find(r => r.sha256 === running)
      const how = await store.put(from, running).catch(e => refuse('preflight', e))
      if (!had) {
        const found: Release = {
          sha256: running,
          version: versionText(facts.version),
          deployedAt: now(),
          origin: 'found'
        }
        state = withRelease(state, found)
        await store.writeMeta(found).catch(e => refuse('preflight', e))
        note(
          `release store ${store.dir}: recorded the running binary (version ${found.version ?? 'unknown'}, sha256 ${shortSha(found.sha256)}, ${how}${facts.masterExeReplaced ? ` from ${from}` : ''})`
        )
      } else if (how !== 'present') {
        note(`release store: the live release's file was missing or damaged; stored it again (${how})`)
      }
      if (state.live !== running || state.lineage[state.lineage.length - 1] !== running) {
        if (had && state.live !== null && state.live !== running)
          note(
            `release store: it named ${shortSha(state.live)} live, but the host runs ${shortSha(running)}; corrected`
          )
        state = markLive(state, running, now())
      }
      await store.write(state).catch(e => refuse('preflight', e))
      const live = liveRelease(state)
      const liveVersion = live?.version ?? versionText(facts.version)
      const hostRun: HostRun = { store, liveVersion, newVersion: liveVersion }
      runs.set(report, hostRun)
      report.releases = releaseRows(state)
      report.previousVersion = report.version = liveVersion ?? undefined

      if (o.mode === 'deploy') {
        // With the version input, a downgrade is refused before anything is sent (an unchanged
        // binary is not a downgrade: the machine ends it as unchanged).
        if (ctx.source.sha256 === facts.runningSha256) return
        const problem = downgradeProblem(versionText(o.version), liveVersion, o.allowDowngrade)
        if (problem) throw new StepError('preflight', problem)
        return
      }
      const target = (() => {
        try {
          return rollbackTarget(state, o.rollbackTo)
        } catch (e) {
          return refuse('preflight', e)
        }
      })()
      if (target.sha256 === facts.runningSha256)
        note(
          `rollback-to ${o.rollbackTo ?? ''} names the live release (sha256 ${shortSha(target.sha256)}): nothing to roll back on this host`
        )
      else await store.checkRelease(target, state).catch(e => refuse('preflight', e))
      hostRun.target = target
      hostRun.newVersion = target.version
      report.version = target.version ?? undefined
      note(
        `rollback target: ${target.version ?? 'unknown version'} (sha256 ${shortSha(target.sha256)}, deployed ${target.deployedAt}) from ${store.releasePath(target.sha256)}, sha256 checked`
      )
      return {
        sha256: target.sha256,
        hostPath: store.releasePath(target.sha256),
        version: target.version ?? undefined
      }
    },

    async afterVerify(ctx: HookContext): Promise<void> {
      const { report, note } = ctx
      const r = runs.get(report)
      if (!r) return
      const detected = versionText(report.version)
      r.newVersion =
        o.mode === 'rollback' ? (r.target?.version ?? detected) : (versionText(o.version) ?? detected)
      report.version = r.newVersion ?? undefined
      report.previousVersion = r.liveVersion ?? undefined
      if (o.mode === 'deploy') {
        const problem = downgradeProblem(r.newVersion, r.liveVersion, o.allowDowngrade)
        if (problem) throw new StepError('verify', problem)
      }
      note(`version ${describeChange(r.liveVersion, r.newVersion)}`)
    },

    async afterUpgrade(ctx: HookContext): Promise<void> {
      const { facts, source, report, note } = ctx
      const r = runs.get(report)
      if (!r) return
      const store = r.store
      let state = await store.read()
      const at = now()
      if (o.mode === 'rollback' && state.releases.some(x => x.sha256 === source.sha256)) {
        state = afterRollback(state, source.sha256, at)
      } else {
        const how = await store.put(facts.livePath, source.sha256)
        const release: Release = {
          sha256: source.sha256,
          version: r.newVersion,
          deployedAt: at,
          origin: 'deploy',
          ...o.provenance
        }
        await store.writeMeta(release)
        state = markLive(withRelease(state, release), source.sha256, at)
        note(
          `release store: recorded ${release.version ?? 'unknown version'} (sha256 ${shortSha(release.sha256)}, ${how})`
        )
      }
      const { state: saved, pruned } = await store.saveAndPrune(state, o.keepReleases)
      report.releases = releaseRows(saved)
      note(
        `release store ${store.dir}: live ${liveRelease(saved)?.version ?? 'unknown'}; ${saved.releases.length} release(s) kept` +
          (pruned.length ? `; pruned ${pruned.map(p => p.version ?? shortSha(p.sha256)).join(', ')}` : '')
      )
    }
  }
}

/** The store's options from the settings and this run's environment (GITHUB_SHA, ...). */
export function releaseOptions(settings: Settings, env: Record<string, string | undefined>): ReleaseOptions {
  return {
    mode: settings.mode,
    releaseDir: settings.releaseDir,
    keepReleases: settings.keepReleases,
    version: settings.version,
    allowDowngrade: settings.allowDowngrade,
    rollbackTo: settings.rollbackTo,
    provenance: provenanceFrom(env)
  }
}
