/**
 * The release store's logic: versions, the lineage (deploys push, rollbacks pop), the rollback
 * target, pruning, the summary rows; and the store's file work on a local folder through a Host
 * that runs argv here (real files, real sha256sum/ln/mv), including an interrupted write.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import type { ExecResult, Host } from '../src/host/host.js'
import {
  afterRollback,
  downgradeProblem,
  emptyState,
  markLive,
  versionText,
  parseState,
  previousRelease,
  provenanceFrom,
  pruneChoice,
  releaseRows,
  releasesMarkdown,
  ReleaseStore,
  rollbackTarget,
  StoreError,
  withoutReleases,
  withRelease,
  type Release,
  type StoreState
} from '../src/releases/index.js'
import type { HostReport } from '../src/engine/types.js'
import { readSettings, SettingsError } from '../src/settings.js'

const sha = (n: number | string) => createHash('sha256').update(String(n)).digest('hex')
const rel = (n: number, version: string | null, extra: Partial<Release> = {}): Release => ({
  sha256: sha(n),
  version,
  deployedAt: new Date(Date.UTC(2025, 0, 1, 0, n)).toISOString(),
  origin: 'deploy',
  ...extra
})

/** Deploys in order: each is recorded and made live, as the afterUpgrade hook does. */
function deployed(...releases: Release[]): StoreState {
  let s = emptyState('nginx')
  for (const r of releases) s = markLive(withRelease(s, r), r.sha256, r.deployedAt)
  return s
}

describe('versions', () => {
  it('keeps versions as given', () => {
    expect(versionText(' 1.22.1-9+deb12u11 ')).toBe('1.22.1-9+deb12u11')
    expect(versionText('v1.27.3')).toBe('v1.27.3')
    expect(versionText('')).toBeNull()
    expect(versionText(null)).toBeNull()
  })

  it('compares distribution builds by Debian ordering and names the rule', () => {
    expect(downgradeProblem('1.22.1-9+deb12u11', '1.22.1', false)).toBeNull()
    expect(downgradeProblem('1.22.1-9+deb12u9', '1.22.1-9+deb12u11', false)).toMatch(
      /1\.22\.1-9\+deb12u9, lower than the live version 1\.22\.1-9\+deb12u11 \(compared by Debian's version ordering\)/
    )
    expect(downgradeProblem('1.22.1+deb12u9', '1.22.1+deb12u11', false)).not.toBeNull()
    expect(downgradeProblem('latest', '1.22.1', false)).toBeNull()
  })

  it('refuses a downgrade, naming allow-downgrade, unless allowed', () => {
    expect(downgradeProblem('1.26.0', '1.27.3', false)).toMatch(
      /1\.26\.0, lower than the live version 1\.27\.3.*allow-downgrade: true/
    )
    expect(downgradeProblem('2.0.0-rc.1', '2.0.0', false)).not.toBeNull()
    expect(downgradeProblem('1.26.0', '1.27.3', true)).toBeNull()
    expect(downgradeProblem('1.27.3', '1.27.3', false)).toBeNull()
    expect(downgradeProblem('1.28.0', '1.27.3', false)).toBeNull()
    expect(downgradeProblem(null, '1.27.3', false)).toBeNull()
    expect(downgradeProblem('1.0.0', null, false)).toBeNull()
  })
})

describe('release inputs', () => {
  const read = (inputs: Record<string, string>) => () =>
    readSettings(
      name =>
        ({
          hosts: 'web1',
          'host-fingerprints': 'SHA256:' + 'A'.repeat(43),
          password: 'pw',
          ...inputs
        })[name] ?? ''
    )

  it('rollback needs no binary; version belongs to deploys, rollback-to to rollbacks', () => {
    expect(read({ mode: 'rollback', 'rollback-to': 'v1.27.3' })().rollbackTo).toBe('v1.27.3')
    expect(read({ mode: 'rollback', 'rollback-to': '1:1.22.1-9+deb12u11' })().rollbackTo).toBe(
      '1:1.22.1-9+deb12u11'
    )
    expect(read({ mode: 'rollback', 'rollback-to': 'a1b2c3d4e5f6' })().rollbackTo).toBe('a1b2c3d4e5f6')
    expect(read({ mode: 'rollback', 'rollback-to': 'latest' })).toThrow(
      /Input 'rollback-to': 'latest' is neither a semantic version nor a Debian version/
    )
    expect(read({ binary: 'nginx', version: '1.22.1-9+deb12u11' })().version).toBe('1.22.1-9+deb12u11')
    expect(read({ mode: 'rollback', version: '1.2.3' })).toThrow(SettingsError)
    expect(read({ mode: 'rollback', version: '1.2.3' })).toThrow(/Input 'version': .*rollback-to/)
    expect(read({ binary: 'nginx', 'rollback-to': '1.2.3' })).toThrow(/Input 'rollback-to'/)
    expect(read({ binary: 'nginx', 'keep-releases': '1' })).toThrow(/Input 'keep-releases'/)
  })
})

describe('the lineage and the rollback target', () => {
  const [v1, v2, v3] = [rel(1, '1.0.0'), rel(2, '2.0.0'), rel(3, '3.0.0')]

  it('a deploy pushes, a rollback pops back to the release before the live one', () => {
    let s = deployed(v1!, v2!, v3!)
    expect(s.live).toBe(v3!.sha256)
    expect(previousRelease(s)?.version).toBe('2.0.0')
    expect(rollbackTarget(s).version).toBe('2.0.0')
    s = afterRollback(s, v2!.sha256, 'now')
    expect(s.live).toBe(v2!.sha256)
    // The next rollback goes further back, not forth to v3.
    expect(rollbackTarget(s).version).toBe('1.0.0')
    // A deploy after a rollback: rolling back returns to v2, not to the abandoned v3.
    const v4 = rel(4, '4.0.0')
    s = markLive(withRelease(s, v4), v4.sha256, 'now')
    expect(rollbackTarget(s).version).toBe('2.0.0')
    expect(s.lineage).toEqual([v1!.sha256, v2!.sha256, v4.sha256])
  })

  it('rollback-to a release outside the lineage pushes it; one in it pops back to it', () => {
    let s = afterRollback(deployed(v1!, v2!, v3!), v2!.sha256, 'now') // lineage v1, v2
    s = afterRollback(s, v3!.sha256, 'now') // v3 was abandoned: it goes on top again
    expect(s.lineage).toEqual([v1!.sha256, v2!.sha256, v3!.sha256])
    s = afterRollback(s, v1!.sha256, 'now')
    expect(s.lineage).toEqual([v1!.sha256])
    expect(s.live).toBe(v1!.sha256)
  })

  it('with nothing before the live release, says so and lists what the host has', () => {
    const s = deployed(v1!)
    expect(() => rollbackTarget(s)).toThrow(StoreError)
    expect(() => rollbackTarget(s)).toThrow(
      /no release before the live one \(1\.0\.0\).*It has: 1\.0\.0 \(sha256 \w{12}, live\).*rollback-to/
    )
  })

  it('rollback-to names a version; an unknown one fails with the releases the host has', () => {
    const s = deployed(v1!, v2!, v3!)
    expect(rollbackTarget(s, '1.0.0').sha256).toBe(v1!.sha256)
    expect(rollbackTarget(s, 'v1.0.0').sha256).toBe(v1!.sha256) // the same version by semver
    expect(rollbackTarget(s, v2!.sha256.slice(0, 12)).sha256).toBe(v2!.sha256)
    expect(rollbackTarget(s, '3.0.0').sha256).toBe(v3!.sha256) // the live one: the upgrade ends unchanged
    expect(() => rollbackTarget(s, '9.9.9')).toThrow(
      `rollback-to 9.9.9: the host's release store has no release with version 9.9.9. It has: 1.0.0 (sha256 ${v1!.sha256.slice(0, 12)}), 2.0.0 (sha256 ${v2!.sha256.slice(0, 12)}), 3.0.0 (sha256 ${v3!.sha256.slice(0, 12)}, live)`
    )
  })

  it('builds of one upstream version are told apart; two builds of one version need the sha256', () => {
    const u9 = rel(1, '1.22.1+deb12u9')
    const u11 = rel(2, '1.22.1+deb12u11')
    const s = deployed(rel(0, '1.22.1'), u9, u11)
    expect(rollbackTarget(s, '1.22.1+deb12u9').sha256).toBe(u9.sha256)
    const a = rel(4, '1.0.0')
    const b = rel(5, '1.0.0')
    const t = deployed(a, b, rel(6, '2.0.0'))
    expect(() => rollbackTarget(t, '1.0.0')).toThrow(
      new RegExp(
        `names 2 releases .*${a.sha256.slice(0, 12)}, ${b.sha256.slice(0, 12)}.*Name one by its sha256`
      )
    )
    expect(rollbackTarget(t, b.sha256.slice(0, 16)).sha256).toBe(b.sha256)
  })

  it('markLive corrects a store whose live release is not the one the host runs', () => {
    const s = markLive(deployed(v1!, v2!), v1!.sha256, 'later')
    expect(s.live).toBe(v1!.sha256)
    expect(s.lineage).toEqual([v2!.sha256, v1!.sha256])
    expect(s.releases.find(r => r.sha256 === v1!.sha256)?.liveAt).toBe('later')
  })
})

describe('pruning', () => {
  it('keeps the newest, but never drops the live release nor the one before it', () => {
    const rs = [1, 2, 3, 4, 5].map(n => rel(n, `${n}.0.0`))
    let s = deployed(...rs)
    expect(pruneChoice(s, 5)).toEqual([])
    expect(pruneChoice(s, 2)).toEqual([sha(1), sha(2), sha(3)])
    // Roll back to v2: the live v2 and v1 before it are kept; the newest other fills the rest.
    s = afterRollback(s, sha(2), 'now')
    expect(pruneChoice(s, 2)).toEqual([sha(3), sha(4), sha(5)])
    expect(pruneChoice(s, 3)).toEqual([sha(3), sha(4)])
    const left = withoutReleases(s, pruneChoice(s, 2))
    expect(left.releases.map(r => r.version)).toEqual(['1.0.0', '2.0.0'])
    expect(left.lineage).toEqual([sha(1), sha(2)])
  })

  it('holds for any history of deploys and rollbacks (property)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('deploy' as const), n: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ kind: fc.constant('rollback' as const), n: fc.integer({ min: 0, max: 12 }) })
    )
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 2, max: 6 }),
        (ops, keep) => {
          let s = emptyState('nginx')
          let t = 0
          for (const o of ops) {
            const r = rel(o.n, `${o.n}.0.0`, {
              deployedAt: new Date(Date.UTC(2025, 0, 1, 0, t++)).toISOString()
            })
            if (o.kind === 'deploy') s = markLive(withRelease(s, r), r.sha256, r.deployedAt)
            else if (s.releases.some(x => x.sha256 === r.sha256)) s = afterRollback(s, r.sha256, r.deployedAt)
            const pruned = pruneChoice(s, keep)
            const prev = previousRelease(s)?.sha256
            expect(pruned).not.toContain(s.live)
            if (prev) expect(pruned).not.toContain(prev)
            const kept = s.releases.length - pruned.length
            expect(kept).toBe(Math.min(s.releases.length, Math.max(keep, prev ? 2 : 1)))
            // Among the others, the newest are kept.
            const others = s.releases.filter(x => x.sha256 !== s.live && x.sha256 !== prev)
            const keptOthers = others.filter(x => !pruned.includes(x.sha256))
            expect(keptOthers).toEqual(others.slice(others.length - keptOthers.length))
            s = withoutReleases(s, pruned)
            expect(s.lineage[s.lineage.length - 1] ?? null).toBe(s.live)
          }
        }
      ),
      { numRuns: 300 }
    )
  })
})

describe('state.json', () => {
  it('parses what it writes, and refuses a damaged file naming it and the fix', () => {
    const s = deployed(rel(1, '1.0.0', { commit: 'abc', runId: '7' }), rel(2, null, { origin: 'found' }))
    expect(parseState(JSON.stringify(s), 'nginx', '/x/state.json')).toEqual(s)
    expect(() => parseState('{"format":1,"releases":[', 'nginx', '/x/state.json')).toThrow(
      /release store \/x\/state\.json is not valid \(not JSON.*Move it aside/
    )
    const bad = (o: unknown) => () => parseState(JSON.stringify(o), 'nginx', '/x/state.json')
    expect(bad({ ...s, format: 2 })).toThrow(/format 2/)
    expect(bad({ ...s, releases: [{ ...s.releases[0], sha256: '../../etc' }] })).toThrow(/no valid sha256/)
    expect(bad({ ...s, live: sha(99) })).toThrow(/is not among the releases/)
    expect(bad({ ...s, releases: [s.releases[0], s.releases[0]] })).toThrow(/listed twice/)
  })
})

describe('summary and provenance', () => {
  it('renders one table per store, newest first, live marked, cells escaped', () => {
    const s = deployed(
      rel(1, '1.0.0'),
      rel(2, '2.0.0', { commit: 'f'.repeat(40), runUrl: 'https://github.com/a/b/actions/runs/42' })
    )
    const host = (name: string, releases = releaseRows(s)): HostReport =>
      ({
        host: name,
        result: 'upgraded',
        startedAt: '',
        steps: [],
        drain: [],
        health: [],
        releases
      }) as HostReport
    const md = releasesMarkdown(
      [host('web1'), host('web2'), host('web|3', releaseRows(deployed(rel(1, '1.0.0'))))],
      'https://github.com/a/b/actions/runs/'
    )
    expect(md).toContain('### Releases on web1, web2')
    expect(md).toContain('### Releases on web\\|3')
    const rows = md.split('\n').filter(l => l.startsWith('| **live**') || l.startsWith('|  |'))
    expect(rows[0]).toBe(
      `| **live** | 2.0.0 | \`${sha(2).slice(0, 12)}\` | 2025-01-01 00:02:00Z | \`fffffff\` | [42](https://github.com/a/b/actions/runs/42) |`
    )
    expect(rows[1]).toMatch(/^\| {2}\| 1\.0\.0 \|/)
    expect(releasesMarkdown([host('web1', [])])).toBe('')
    // A run of another repository (state.json is written on the host) is text, not a link.
    const other = releasesMarkdown([host('web1')], 'https://github.com/x/y/actions/runs/')
    expect(other).toContain('| https&#58;//github.com/a/b/actions/runs/42 |')
  })

  it('reads provenance from the GitHub variables, and drops unsafe values', () => {
    expect(
      provenanceFrom({ GITHUB_SHA: 'a'.repeat(40), GITHUB_REPOSITORY: 'acme/web', GITHUB_RUN_ID: '123' })
    ).toEqual({
      commit: 'a'.repeat(40),
      repository: 'acme/web',
      runId: '123',
      runUrl: 'https://github.com/acme/web/actions/runs/123'
    })
    expect(provenanceFrom({ GITHUB_SHA: 'x\ny' })).toEqual({})
    expect(provenanceFrom({})).toEqual({})
  })
})

// ------------------------------------------------------------------ the store on a real folder

/** A Host that runs argv on this machine (no shell between), with a PATH of the test's choosing. */
class LocalHost implements Host {
  readonly name = 'local'
  readonly address = '127.0.0.1'
  readonly sudo = false
  path = process.env.PATH ?? '/usr/bin:/bin'
  async run(argv: readonly string[]): Promise<ExecResult> {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { PATH: this.path } })
    return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status ?? 128 }
  }
  async upload(): Promise<string | null> {
    throw new Error('not used')
  }
  async readFile(remotePath: string): Promise<string | null> {
    const r = await this.run([
      'sh',
      '-c',
      'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi',
      'sh',
      remotePath
    ])
    if (r.code === 3) return null
    if (r.code !== 0) throw new Error(r.stderr)
    return r.stdout
  }
  async http(): Promise<never> {
    throw new Error('not used')
  }
  async close(): Promise<void> {}
}

describe('ReleaseStore on a folder', () => {
  let root: string
  let host: LocalHost
  let store: ReleaseStore
  let binary: string
  let binarySha: string

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'zerodown-store-'))
    host = new LocalHost()
    mkdirSync(join(root, 'sbin'))
    binary = join(root, 'sbin', 'nginx')
    copyFileSync('/bin/true', binary)
    writeFileSync(binary, Buffer.concat([readFileSync(binary), Buffer.from('build 1')]))
    chmodSync(binary, 0o755)
    binarySha = createHash('sha256').update(readFileSync(binary)).digest('hex')
    store = ReleaseStore.forLive(host, join(root, 'store'), binary)
  })
  afterEach(() => rmSync(root, { recursive: true, force: true }))

  it('stores a binary (a hard link on one file system), checks it, and refuses it once tampered', async () => {
    expect(await store.put(binary, binarySha)).toBe('linked')
    expect(await store.put(binary, binarySha)).toBe('present')
    const stored = join(root, 'store', 'releases', binarySha, 'nginx')
    expect(createHash('sha256').update(readFileSync(stored)).digest('hex')).toBe(binarySha)
    const r = rel(1, '1.0.0', { sha256: binarySha })
    const state = deployed(r)
    await expect(store.checkRelease(r, state)).resolves.toBeUndefined()
    rmSync(stored)
    writeFileSync(stored, 'something else')
    await expect(store.checkRelease(r, state)).rejects.toThrow(
      /release 1\.0\.0 in the host's store is corrupted: .* has sha256 [0-9a-f]{64}, expected/
    )
    rmSync(stored)
    await expect(store.checkRelease(r, state)).rejects.toThrow(/is missing: .* does not exist/)
    // put() repairs it from a file that has the right sha256.
    expect(await store.put(binary, binarySha)).toBe('linked')
    await expect(store.checkRelease(r, state)).resolves.toBeUndefined()
  })

  it('with link: false (the store on another mount) copies at once: its own file, mode 0755, no link tried', async () => {
    expect(await store.put(binary, binarySha, undefined, { link: false })).toBe('copied')
    const stored = join(root, 'store', 'releases', binarySha, 'nginx')
    expect(createHash('sha256').update(readFileSync(stored)).digest('hex')).toBe(binarySha)
    expect(statSync(stored).ino).not.toBe(statSync(binary).ino)
    expect(statSync(stored).mode & 0o777).toBe(0o755)
    expect(readdirSync(join(root, 'store', 'releases', binarySha))).toEqual(['nginx'])
    await expect(store.put(binary, sha('other'), undefined, { link: false })).rejects.toThrow(
      /changed while it was stored/
    )
    expect(existsSync(join(root, 'store', 'releases', sha('other')))).toBe(false)
  })

  it('refuses to store a file whose sha256 is not the one claimed, and leaves nothing', async () => {
    await expect(store.put(binary, sha('other'))).rejects.toThrow(/changed while it was stored/)
    expect(existsSync(join(root, 'store', 'releases', sha('other')))).toBe(false)
  })

  it('writes state.json atomically: a write interrupted before the rename leaves the old state', async () => {
    const before = deployed(rel(1, '1.0.0'))
    await store.write(before)
    // A `sync` that kills the writing shell: the temp file is written, the rename never happens.
    const bin = join(root, 'crash-bin')
    mkdirSync(bin)
    writeFileSync(join(bin, 'sync'), '#!/bin/sh\nkill -9 $PPID\n', { mode: 0o755 })
    host.path = `${bin}:${process.env.PATH}`
    const after = deployed(rel(1, '1.0.0'), rel(2, '2.0.0'))
    await expect(store.write(after)).rejects.toThrow(/cannot write .*state\.json/)
    host.path = process.env.PATH ?? '/usr/bin:/bin'
    // The interrupted write left its temp file, complete or not; state.json is the old one, intact.
    const leftovers = readdirSync(join(root, 'store')).filter(f => f.startsWith('.state.json.tmp-'))
    expect(leftovers.length).toBe(1)
    expect(await store.read()).toEqual(before)
    await store.write(after)
    expect(await store.read()).toEqual(after)
  })

  it('rebuilds the list from releases/*/meta.json when state.json is gone', async () => {
    const r1 = rel(1, '1.0.0', { sha256: binarySha })
    await store.put(binary, binarySha)
    await store.writeMeta(r1)
    await store.write(deployed(r1))
    rmSync(join(root, 'store', 'state.json'))
    const rebuilt = await store.read()
    expect(rebuilt.releases).toEqual([r1])
    expect(rebuilt.live).toBeNull()
    expect(existsSync(join(root, 'store', 'releases', binarySha, 'meta.json'))).toBe(true)
  })

  it('saveAndPrune removes the pruned folders after state.json no longer names them', async () => {
    let s = emptyState('nginx')
    for (const n of [1, 2, 3]) {
      const r = rel(n, `${n}.0.0`)
      mkdirSync(join(root, 'store', 'releases', r.sha256), { recursive: true })
      s = markLive(withRelease(s, r), r.sha256, r.deployedAt)
    }
    const { state, pruned } = await store.saveAndPrune(s, 2)
    expect(pruned.map(p => p.version)).toEqual(['1.0.0'])
    expect(readdirSync(join(root, 'store', 'releases')).sort()).toEqual([sha(2), sha(3)].sort())
    expect((await store.read()).releases).toEqual(state.releases)
  })
})
