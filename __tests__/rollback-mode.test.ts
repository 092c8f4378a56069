/**
 * Release history and mode: rollback against a real sandbox host (sshd + nginx on 127.0.0.31),
 * through the bundle as GitHub runs it. One story, in order: deploy v1 → v2 → v3; roll back to
 * v2 under load on the same listening socket; roll back to v1 after the runner lost its copy;
 * pruning; downgrade refused then allowed; unchanged; a corrupted store entry refused.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'

const STORE = '/var/lib/zerodown/nginx'
const LIVE = '/srv/app/sbin/nginx'
/** The sandbox's original binary is a copy of the machine's nginx: its `-v`, as semver. */
const BASE_VERSION = /nginx\/(\d+\.\d+\.\d+)/.exec(
  execFileSync('sh', ['-c', '/usr/sbin/nginx -v 2>&1'], { encoding: 'utf8' })
)![1]!

let sb: Sandbox
let h: SandboxHost
let dir: string
const builds: Record<string, { path: string; sha: string }> = {}
let runNumber = 1000

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

beforeAll(() => {
  sb = sandboxUp({ first: 31, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-releases-')
  for (const label of ['v1', 'v2', 'v3', 'v4', 'v5']) {
    const path = nginxBuild(dir, label)
    builds[label] = { path, sha: sha256(path) }
  }
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

function run(inputs: Record<string, string>): Promise<ActionRun> {
  runNumber++
  return runAction(
    { ...sandboxInputs(sb, [h]), ...inputs },
    {
      env: {
        GITHUB_SHA: createHash('sha1').update(String(runNumber)).digest('hex'),
        GITHUB_REPOSITORY: 'acme/web',
        GITHUB_RUN_ID: String(runNumber),
        GITHUB_SERVER_URL: 'https://github.com'
      },
      timeoutMs: 90_000
    }
  )
}

const deploy = (label: string, extra: Record<string, string> = {}) =>
  run({ binary: builds[label]!.path, ...extra })

interface StoredRelease {
  sha256: string
  version: string | null
  deployedAt: string
  origin: string
  commit?: string
  repository?: string
  runId?: string
}
interface StoredState {
  live: string | null
  lineage: string[]
  releases: StoredRelease[]
}

const state = (): StoredState =>
  JSON.parse(readFileSync(sb.hostPath(h, `${STORE}/state.json`), 'utf8')) as StoredState
const liveSha = () => sha256(sb.hostPath(h, LIVE))
const storedDirs = () => readdirSync(sb.hostPath(h, `${STORE}/releases`)).sort()
const masterPid = () => sb.readPid(h)

function expectOk(r: ActionRun, result = 'upgraded') {
  if (r.code !== 0 || r.outputs.result !== result) console.log(r.log)
  expect(r.outputs.result).toBe(result)
  expect(r.code).toBe(0)
}

function expectFailed(r: ActionRun) {
  expect(r.code).not.toBe(0)
  expect(r.outputs.result).toBe('failed')
}

/** The inode of the socket listening on the host's http port (/proc/net/tcp: state 0A). */
function listenInode(): string {
  const [a, b, c, d] = h.address.split('.').map(Number)
  const local = `${[d, c, b, a].map(n => n!.toString(16).padStart(2, '0').toUpperCase()).join('')}:${h.httpPort.toString(16).toUpperCase().padStart(4, '0')}`
  const line = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map(l => l.trim().split(/\s+/))
    .find(f => f[1] === local && f[3] === '0A')
  if (!line) throw new Error(`no listener on ${h.address}:${h.httpPort}`)
  return line[9]!
}

function holdsSocket(pid: number, inode: string): boolean {
  return readdirSync(`/proc/${pid}/fd`).some(fd => {
    try {
      return (
        execFileSync('readlink', [`/proc/${pid}/fd/${fd}`], { encoding: 'utf8' }).trim() ===
        `socket:[${inode}]`
      )
    } catch {
      return false
    }
  })
}

/** Clients that open a new connection per request until stopped (bounded: 2 loops, at most 120 s). */
function load() {
  let stop = false
  const counts = { ok: 0, failed: 0, errors: [] as string[] }
  const deadline = Date.now() + 120_000
  const loop = async () => {
    while (!stop && Date.now() < deadline) {
      try {
        const r = await httpGet(h.address, h.httpPort, '/health', 5000)
        if (r.status === 200) counts.ok++
        else {
          counts.failed++
          counts.errors.push(`status ${r.status}`)
        }
      } catch (e) {
        counts.failed++
        counts.errors.push((e as Error).message)
      }
    }
  }
  const loops = [loop(), loop()]
  return {
    counts,
    async stop() {
      stop = true
      await Promise.all(loops)
      return counts
    }
  }
}

describe('release history and mode: rollback', () => {
  it('deploy v1 → v2 → v3 records every release with its version and provenance', async () => {
    const r1 = await deploy('v1', { version: '2.1.0' })
    expectOk(r1)
    expect(r1.outputs.version).toBe('2.1.0')
    expect(r1.outputs['previous-version']).toBe(BASE_VERSION)
    const r2 = await deploy('v2', { version: 'v2.2.0' })
    expectOk(r2)
    expect(r2.outputs['previous-version']).toBe('2.1.0')
    const r3 = await deploy('v3', { version: '2.3' })
    expectOk(r3)
    // Versions are kept as written: 2.3 stays 2.3, v2.2.0 stays v2.2.0.
    expect(r3.outputs.version).toBe('2.3')
    expect(r3.outputs['previous-version']).toBe('v2.2.0')

    expect(liveSha()).toBe(builds.v3!.sha)
    const s = state()
    expect(s.releases.map(x => x.version)).toEqual([BASE_VERSION, '2.1.0', 'v2.2.0', '2.3'])
    expect(s.live).toBe(builds.v3!.sha)
    // The binary that was live before zerodown: recorded before the first swap, provenance unknown.
    const found = s.releases[0]!
    expect(found.origin).toBe('found')
    expect(found.commit).toBeUndefined()
    const v2 = s.releases[2]!
    expect(v2).toMatchObject({ sha256: builds.v2!.sha, origin: 'deploy', repository: 'acme/web' })
    expect(v2.commit).toMatch(/^[0-9a-f]{40}$/)
    expect(Number(v2.runId)).toBe(runNumber - 1)
    // Each stored file is the binary it claims to be, with its meta.json.
    for (const rel of s.releases) {
      expect(sha256(sb.hostPath(h, `${STORE}/releases/${rel.sha256}/nginx`))).toBe(rel.sha256)
      const meta = JSON.parse(
        readFileSync(sb.hostPath(h, `${STORE}/releases/${rel.sha256}/meta.json`), 'utf8')
      )
      expect(meta.version).toBe(rel.version)
    }
    // The job summary lists the releases, the live one marked.
    expect(r3.summary).toContain('Releases on')
    expect(r3.summary).toMatch(/\| \*\*live\*\* \| 2\.3 \|/)
    expect(r3.summary).toMatch(/\| {2}\| v2\.2\.0 \|/)
  })

  it('mode: rollback serves v2 again, on the same listening socket, without a failed request', async () => {
    const inode = listenInode()
    const oldMaster = masterPid()!
    const traffic = load()
    await new Promise(r => setTimeout(r, 300))
    const started = Date.now()
    const r = await run({ mode: 'rollback' })
    const wallMs = Date.now() - started
    await new Promise(r => setTimeout(r, 300))
    const counts = await traffic.stop()
    expectOk(r)
    expect(r.outputs.version).toBe('v2.2.0')
    expect(r.outputs['previous-version']).toBe('2.3')
    expect(liveSha()).toBe(builds.v2!.sha)
    expect(r.log).toMatch(/copied .*releases\/[0-9a-f]{64}\/nginx .*nothing sent/)

    const newMaster = masterPid()!
    expect(newMaster).not.toBe(oldMaster)
    expect(sb.isAlive(oldMaster)).toBe(false)
    expect(listenInode()).toBe(inode)
    expect(holdsSocket(newMaster, inode)).toBe(true)
    expect(counts.errors).toEqual([])
    expect(counts.ok).toBeGreaterThan(20)
    expect((await httpGet(h.address, h.httpPort, '/health')).body).toBe('ok\n')
    console.log(
      `rollback v3 → v2: ${wallMs} ms wall (action run), ${counts.ok} requests during it, ${counts.failed} failed`
    )

    const s = state()
    expect(s.live).toBe(builds.v2!.sha)
    // v3 stays in the store: it can be deployed again, but it is no longer in the lineage.
    expect(s.releases.map(x => x.version)).toContain('2.3')
  })

  it('rollback-to v1 works after the runner deleted its copy of v1', async () => {
    unlinkSync(builds.v1!.path)
    const r = await run({ mode: 'rollback', 'rollback-to': '2.1.0' })
    expectOk(r)
    expect(r.outputs.version).toBe('2.1.0')
    expect(r.outputs['previous-version']).toBe('v2.2.0')
    expect(liveSha()).toBe(builds.v1!.sha)
    expect(state().live).toBe(builds.v1!.sha)
  })

  it('rollback-to a version the host does not have fails with the versions it has', async () => {
    const before = masterPid()
    const r = await run({ mode: 'rollback', 'rollback-to': '9.9.9' })
    expectFailed(r)
    expect(r.log).toContain(`has no release with version 9.9.9`)
    expect(r.log).toMatch(
      new RegExp(
        `It has: ${BASE_VERSION} \\(sha256 \\w{12}\\), 2\\.1\\.0 \\(sha256 \\w{12}, live\\), v2\\.2\\.0 \\(sha256 \\w{12}\\), 2\\.3 \\(sha256`
      )
    )
    expect(masterPid()).toBe(before)
    expect(liveSha()).toBe(builds.v1!.sha)
  })

  it('keep-releases prunes the oldest, never the live release nor the one before it', async () => {
    // Lineage now: base → v1 (v2 and v3 were rolled back). A deploy of v4 makes v1 the one before it.
    const r = await deploy('v4', { version: '2.4.0', 'keep-releases': '2' })
    expectOk(r)
    // The two newest would be v3 and v4; v1 is kept instead of v3 because rollback goes there.
    expect(storedDirs()).toEqual([builds.v1!.sha, builds.v4!.sha].sort())
    expect(state().releases.map(x => x.version)).toEqual(['2.1.0', '2.4.0'])
    expect(r.log).toMatch(/pruned .*2\.2\.0/)

    const back = await run({ mode: 'rollback' })
    expectOk(back)
    expect(liveSha()).toBe(builds.v1!.sha)
    expect(back.outputs.version).toBe('2.1.0')
  })

  it('a downgrade is refused, and deploys with allow-downgrade', async () => {
    const before = masterPid()
    // Version from the input: refused before anything is sent.
    const byInput = await deploy('v5', { version: '2.0.0' })
    expectFailed(byInput)
    expect(byInput.log).toMatch(/version 2\.0\.0, lower than the live version 2\.1\.0.*allow-downgrade: true/)
    // Version detected from the binary (nginx -v): refused after verify, before the swap.
    const detected = await deploy('v5')
    expectFailed(detected)
    expect(detected.log).toMatch(
      new RegExp(`version ${BASE_VERSION.replace(/\./g, '\\.')}, lower than the live version 2\\.1\\.0`)
    )
    expect(masterPid()).toBe(before)
    expect(liveSha()).toBe(builds.v1!.sha)
    expect(existsSync(sb.hostPath(h, `${STORE}/releases/${builds.v5!.sha}`))).toBe(false)
    expect(existsSync(sb.hostPath(h, '/srv/app/sbin/.nginx.zerodown-new'))).toBe(false)

    const allowed = await deploy('v5', { version: '2.0.0', 'allow-downgrade': 'true' })
    expectOk(allowed)
    expect(allowed.outputs.version).toBe('2.0.0')
    expect(allowed.outputs['previous-version']).toBe('2.1.0')
    expect(liveSha()).toBe(builds.v5!.sha)
  })

  it('deploying the live binary again is unchanged', async () => {
    const before = masterPid()
    const r = await deploy('v5', { version: '2.0.0' })
    expectOk(r, 'unchanged')
    expect(masterPid()).toBe(before)
    expect(r.outputs.version).toBe('2.0.0')
  })

  it('a corrupted release store entry (wrong sha256) is refused, never deployed', async () => {
    // The release before the live one is v1; its stored file now holds other bytes.
    const path = sb.hostPath(h, `${STORE}/releases/${builds.v1!.sha}/nginx`)
    const bytes = readFileSync(path)
    unlinkSync(path) // a new inode: never write through a hard link into another file
    writeFileSync(path, Buffer.concat([bytes, Buffer.from('tampered')]), { mode: 0o755 })
    const before = masterPid()
    const r = await run({ mode: 'rollback' })
    expectFailed(r)
    expect(r.log).toMatch(
      /release 2\.1\.0 in the host's store is corrupted: .* has sha256 [0-9a-f]{64}, expected/
    )
    expect(masterPid()).toBe(before)
    expect(liveSha()).toBe(builds.v5!.sha)
    expect(existsSync(sb.hostPath(h, '/srv/app/sbin/.nginx.zerodown-new'))).toBe(false)
    expect((await httpGet(h.address, h.httpPort, '/health')).status).toBe(200)
  })
})

describe('release-dir and sudo', () => {
  it('keeps a store of its own in release-dir, written through sudo -n, and rolls back from it', async () => {
    const STORE2 = '/var/lib/zerodown/custom-store'
    const before = liveSha()
    const up = await deploy('v3', { version: '3.0.0', sudo: 'true', 'release-dir': STORE2 })
    expectOk(up)
    const path = sb.hostPath(h, `${STORE2}/state.json`)
    const s2 = JSON.parse(readFileSync(path, 'utf8')) as StoredState
    expect(s2.releases.map(x => x.sha256)).toEqual([before, builds.v3!.sha])
    expect(s2.live).toBe(builds.v3!.sha)
    // Written by root through sudo: the deploy user could not have made these files root-owned.
    expect(statSync(path).uid).toBe(0)
    expect(statSync(sb.hostPath(h, `${STORE2}/releases/${builds.v3!.sha}/nginx`)).uid).toBe(0)

    const back = await run({ mode: 'rollback', sudo: 'true', 'release-dir': STORE2 })
    expectOk(back)
    expect(liveSha()).toBe(before)
    expect(back.outputs['previous-version']).toBe('3.0.0')
  })
})

describe('a fleet: each host rolls back from its own store', () => {
  let fleet: Sandbox
  let a: SandboxHost
  let b: SandboxHost
  beforeAll(() => {
    fleet = sandboxUp({ first: 32, count: 2 })
    ;[a, b] = fleet.hosts as [SandboxHost, SandboxHost]
  })
  afterAll(() => fleet?.down())

  const onFleet = (hosts: SandboxHost[], inputs: Record<string, string>) =>
    runAction({ ...sandboxInputs(fleet, hosts), ...inputs }, { timeoutMs: 120_000 })
  const shaOn = (x: SandboxHost) => sha256(fleet.hostPath(x, LIVE))
  const stateOn = (x: SandboxHost) =>
    JSON.parse(readFileSync(fleet.hostPath(x, `${STORE}/state.json`), 'utf8')) as StoredState

  it('a host that lacks the version fails the rollback, and the host parked on it goes back', async () => {
    // a has v1 and v2; b only v2.
    expectOk(await onFleet([a], { binary: builds.v4!.path, version: '2.1.0' }))
    expectOk(await onFleet([a, b], { binary: builds.v2!.path, version: '2.2.0' }))
    const before = stateOn(a)
    const r = await onFleet([a, b], { mode: 'rollback', 'rollback-to': '2.1.0' })
    expect(r.code).not.toBe(0)
    expect(r.log).toMatch(
      new RegExp(
        `has no release with version 2\\.1\\.0\\. It has: ${BASE_VERSION} \\(sha256 \\w{12}\\), 2\\.2\\.0 \\(sha256 \\w{12}, live\\)`
      )
    )
    // a went to 2.1.0 first (the canary), then came back to 2.2.0 when b failed: its store still says 2.2.0.
    expect(shaOn(a)).toBe(builds.v2!.sha)
    expect(shaOn(b)).toBe(builds.v2!.sha)
    expect(stateOn(a).live).toBe(before.live)
    expect(stateOn(a).lineage).toEqual(before.lineage)
  })

  it('mode: rollback takes each host to the release before its own live one', async () => {
    const r = await onFleet([a, b], { mode: 'rollback' })
    expectOk(r)
    expect(shaOn(a)).toBe(builds.v4!.sha)
    expect(stateOn(a).releases.find(x => x.sha256 === stateOn(a).live)?.version).toBe('2.1.0')
    expect(stateOn(b).releases.find(x => x.sha256 === stateOn(b).live)?.version).toBe(BASE_VERSION)
    expect(r.outputs.version!.split(',').sort()).toEqual([BASE_VERSION, '2.1.0'].sort())
  })
})
