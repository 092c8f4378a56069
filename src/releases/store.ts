/** The release store's files on a host (see state.ts for the layout): read, write atomically, put, prune. */
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import type { ExecResult, Host } from '../host/host.js'
import { remoteSha256 } from '../strategies/hot-upgrade/install.js'
import {
  validRelease,
  DEFAULT_RELEASE_ROOT,
  describeReleases,
  emptyState,
  parseState,
  pruneChoice,
  SHA256,
  StoreError,
  withoutReleases,
  withRelease,
  type Release,
  type StoreState
} from './state.js'

/** The store's sh scripts (every value a positional parameter). */
export const STORE_SCRIPTS = {
  /** $1 store dir: each releases/*\/meta.json, its path first, records separated by \036. */
  rebuild:
    'for f in "$1"/releases/*/meta.json; do [ -f "$f" ] || continue; printf "%s\\n" "$f"; cat -- "$f"; printf "\\n\\036\\n"; done',
  /** $1 text, $2 temp file, $3 path: written, flushed, renamed in. */
  write:
    'umask 022; printf "%s\\n" "$1" > "$2" || exit 1; sync "$2" 2>/dev/null; mv -f -- "$2" "$3" || { rm -f -- "$2"; exit 1; }'
} as const

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

  /** Runs a store command; the result is checked by `check` (so commands can be issued together). */
  private exec(argv: string[]): Promise<ExecResult> {
    return this.host.run(argv, { sudo: this.host.sudo, timeoutMs: 120_000 })
  }

  private check(r: ExecResult, what: string): void {
    if (r.code === 0) return
    const detail = (r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')
    const denied = /denied|read-only/i.test(detail)
    throw new StoreError(
      `release-dir ${this.dir}: cannot ${what} on ${this.host.name} (${detail || `status ${r.code}`}). ` +
        (denied
          ? 'Let the deploy user write that folder, set sudo: true, or set release-dir to a folder it can write'
          : 'Check the folder and the disk')
    )
  }

  private async run(argv: string[], what: string): Promise<void> {
    this.check(await this.exec(argv), what)
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
    const r = await this.host.run(['sh', '-c', STORE_SCRIPTS.rebuild, 'sh', this.dir], {
      sudo: this.host.sudo
    })
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
        const rel = validRelease(JSON.parse(chunk.slice(nl + 1)), chunk.slice(0, nl), bad)
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
    await this.run(['sh', '-c', STORE_SCRIPTS.write, 'sh', text, tmp, path], `write ${path}`)
  }

  /**
   * Writes state.json (and first a release's meta.json, when given). The commands go out together
   * and the host runs them in order: one round trip. A failed mkdir fails the writes after it.
   */
  async write(state: StoreState, meta?: Release): Promise<void> {
    const [made] = await Promise.all([
      this.exec(['mkdir', '-p', '--', this.dir]),
      meta ? this.writeMeta(meta) : null,
      this.writeAtomic(this.statePath, JSON.stringify(state, null, 2))
    ])
    this.check(made, `create ${this.dir}`)
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
   * intact (`stored`: its sha256 there, when the caller read it already): a hard link when both
   * are on one file system (renamed in, then checked), else a copy (checked, then renamed in).
   * Commands with no decision between them go out together (pipelined): one round trip for a
   * link, three for a copy, two with `link: false` (the store known to be on another mount).
   */
  async put(
    fromPath: string,
    sha256: string,
    stored?: string | null,
    o: { link?: boolean } = {}
  ): Promise<'present' | 'linked' | 'copied'> {
    if ((stored !== undefined ? stored : await this.storedSha256(sha256)) === sha256) return 'present'
    const dir = this.releaseDir(sha256)
    const target = this.releasePath(sha256)
    const tmp = posix.join(dir, `.${this.binary}.tmp-${randomBytes(6).toString('hex')}`)
    const changed = (got: string | null) =>
      new StoreError(
        `${fromPath} changed while it was stored (sha256 ${got}, expected ${sha256}); it is not recorded`
      )
    try {
      // link: false (pre-flight saw the store on another mount): no link to try, the copy at once.
      const linked = o.link === false ? null : await this.link(fromPath, dir, tmp, target)
      if (linked !== null) {
        if (linked === sha256) return 'linked'
        await this.exec(['rm', '-f', '--', target])
        throw changed(linked)
      }
      const got = await this.copy(fromPath, tmp, dir, o.link === false)
      if (got !== sha256) throw changed(got)
      // After a rename the rm finds nothing; after a failed one it removes the temporary file.
      const [copiedIn] = await Promise.all([
        this.exec(['mv', '-f', '--', tmp, target]),
        this.exec(['rm', '-f', '--', tmp])
      ])
      this.check(copiedIn, `store ${target}`)
      return 'copied'
    } catch (e) {
      // A folder made for nothing: removed when empty, so no release looks half-stored.
      await Promise.all([this.exec(['rm', '-f', '--', tmp]), this.exec(['rmdir', '--', dir])]).catch(
        () => undefined
      )
      throw e
    }
  }

  /**
   * The folder, a hard link into it renamed in, and the sha256 of what landed, in one round trip;
   * the sha256 that landed, or null when the link failed (as across file systems: the rename
   * then found nothing).
   */
  private async link(fromPath: string, dir: string, tmp: string, target: string): Promise<string | null> {
    const [made, linked, moved, landed] = await Promise.all([
      this.exec(['mkdir', '-p', '--', dir]),
      this.exec(['ln', '--', fromPath, tmp]),
      this.exec(['mv', '-f', '--', tmp, target]),
      remoteSha256(this.host, target)
    ])
    this.check(made, `create ${dir}`)
    if (linked.code !== 0) return null
    this.check(moved, `store ${target}`)
    // A file that landed with another sha256 is removed (by the caller) before state.json can name it.
    return landed ?? 'none'
  }

  /**
   * A copy at tmp, its mode and its sha256, in one round trip (the caller checks the sha256 before
   * it is renamed in); `mkdir`: the folder is made in the same round trip (no link tried first).
   */
  private async copy(fromPath: string, tmp: string, dir: string, mkdir = false): Promise<string | null> {
    const [made, copied, sha, mode] = await Promise.all([
      mkdir ? this.exec(['mkdir', '-p', '--', dir]) : null,
      this.exec(['cp', '--', fromPath, tmp]),
      remoteSha256(this.host, tmp),
      this.exec(['chmod', '0755', '--', tmp])
    ])
    if (made) this.check(made, `create ${dir}`)
    this.check(copied, `copy ${fromPath} into ${dir}`)
    this.check(mode, `chmod ${tmp}`)
    return sha
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
  async saveAndPrune(
    state: StoreState,
    keep: number,
    meta?: Release
  ): Promise<{ state: StoreState; pruned: Release[] }> {
    const shas = pruneChoice(state, keep)
    const pruned = state.releases.filter(r => shas.includes(r.sha256))
    const next = withoutReleases(state, shas)
    await this.write(next, meta)
    // After state.json no longer names them: a failed removal leaves a folder, never a dangling entry.
    await Promise.all(shas.map(sha => this.remove(sha)))
    return { state: next, pruned }
  }
}
