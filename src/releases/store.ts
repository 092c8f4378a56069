/** The release store's files on a host (see state.ts for the layout): read, write atomically, put, prune. */
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import type { ExecResult, Host } from '../host/host.js'
import { GATE_CLOSED, type Gate } from '../host/remote-shell.js'
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
import { putRelease } from './store-put.js'
import { SAVED_GATE, STORE_SCRIPTS } from './store-scripts.js'

export { SAVED_GATE, STORE_SCRIPTS, STORED_GATE } from './store-scripts.js'

export class ReleaseStore {
  readonly statePath: string

  constructor(
    readonly host: Host,
    readonly dir: string,
    readonly binary: string
  ) {
    this.statePath = posix.join(dir, 'state.json')
  }

  /**
   * Whether the record can go in one round trip (put's `gate`, saveAndPruneIf): not through the
   * sudo helper, which runs its fixed commands only (LANDED is not one of them).
   */
  get gates(): boolean {
    return !this.host.privileged
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
  exec(argv: string[], gate?: Gate): Promise<ExecResult> {
    return this.host.run(argv, { sudo: this.host.sudo, timeoutMs: 120_000, gate })
  }

  /** Throws a StoreError naming what failed and the fix (exec's results are checked by it). */
  check(r: ExecResult, what: string): void {
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
  async writeAtomic(path: string, text: string, gate?: Gate): Promise<ExecResult> {
    const tmp = posix.join(
      posix.dirname(path),
      `.${posix.basename(path)}.tmp-${randomBytes(6).toString('hex')}`
    )
    const r = await this.exec(['sh', '-c', STORE_SCRIPTS.write, 'sh', text, tmp, path], gate)
    if (r.code !== GATE_CLOSED || !gate?.need) this.check(r, `write ${path}`)
    return r
  }

  /**
   * Writes state.json (and first a release's meta.json, when given). The commands go out together
   * and the host runs them in order: one round trip. A failed mkdir fails the writes after it.
   * `need`: run only if that gate of the host's shell is open (false: it was closed, nothing
   * written); state.json's write then opens the SAVED_GATE.
   */
  async write(state: StoreState, meta?: Release, need?: string): Promise<boolean> {
    const gate = need ? { need } : undefined
    const [made] = await Promise.all([
      this.exec(['mkdir', '-p', '--', this.dir], gate),
      meta ? this.writeMeta(meta, gate) : null,
      this.writeAtomic(
        this.statePath,
        JSON.stringify(state, null, 2),
        need ? { need, set: SAVED_GATE } : undefined
      )
    ])
    if (need && made.code === GATE_CLOSED) return false
    this.check(made, `create ${this.dir}`)
    return true
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
   * Puts the file at fromPath (with sha256) into the store (store-put.ts): a hard link, or a copy
   * on another file system; with `gate`, what landed intact opens it for the writes sent behind.
   */
  put(
    fromPath: string,
    sha256: string,
    stored?: string | null,
    o: { link?: boolean; gate?: string } = {}
  ): Promise<'present' | 'linked' | 'copied'> {
    return putRelease(this, fromPath, sha256, stored, o)
  }

  async writeMeta(release: Release, gate?: Gate): Promise<void> {
    await this.writeAtomic(
      posix.join(this.releaseDir(release.sha256), 'meta.json'),
      JSON.stringify(release, null, 2),
      gate
    )
  }

  async remove(sha256: string, gate?: Gate): Promise<void> {
    const r = await this.exec(['rm', '-rf', '--', this.releaseDir(sha256)], gate)
    if (r.code !== GATE_CLOSED || !gate?.need) this.check(r, `remove ${this.releaseDir(sha256)}`)
  }

  /** Records state after pruning to keep; returns the pruned releases. */
  async saveAndPrune(
    state: StoreState,
    keep: number,
    meta?: Release
  ): Promise<{ state: StoreState; pruned: Release[] }> {
    const { next, shas, pruned } = this.pruning(state, keep)
    await this.write(next, meta)
    // After state.json no longer names them: a failed removal leaves a folder, never a dangling entry.
    await Promise.all(shas.map(sha => this.remove(sha)))
    return { state: next, pruned }
  }

  /**
   * saveAndPrune, run only if the `need` gate is open on the host's shell (null: it was closed,
   * nothing changed); the removals go with the writes, run only once state.json no longer names
   * what they remove (SAVED_GATE): one round trip in all.
   */
  async saveAndPruneIf(
    need: string,
    state: StoreState,
    keep: number,
    meta?: Release
  ): Promise<{ state: StoreState; pruned: Release[] } | null> {
    const { next, shas, pruned } = this.pruning(state, keep)
    const written = this.write(next, meta, need)
    const removed = shas.map(sha => this.remove(sha, { need: SAVED_GATE }))
    removed.forEach(r => r.catch(() => undefined)) // awaited once the write is known
    if (!(await written)) return null
    await Promise.all(removed)
    return { state: next, pruned }
  }

  private pruning(state: StoreState, keep: number) {
    const shas = pruneChoice(state, keep)
    return {
      shas,
      pruned: state.releases.filter(r => shas.includes(r.sha256)),
      next: withoutReleases(state, shas)
    }
  }
}
