/**
 * Distribution versions on a real sandbox host (sshd + nginx on 127.0.0.210), through the bundle
 * as GitHub runs it: Debian security updates of one upstream version are kept as written, told
 * apart and ordered as dpkg orders them; rollback-to names exactly one release; a rollback that
 * changes nothing says so. One story, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'

const STORE = '/var/lib/zerodown/nginx'
const LIVE = '/srv/app/sbin/nginx'
/** The sandbox's binary is a copy of the machine's nginx; `-v` prints its upstream version. */
const BASE = /nginx\/(\S+)/.exec(
  execFileSync('sh', ['-c', '/usr/sbin/nginx -v 2>&1'], { encoding: 'utf8' })
)![1]!
const U9 = `${BASE}-9+deb12u9`
const U11 = `${BASE}-9+deb12u11`

let sb: Sandbox
let h: SandboxHost
let dir: string
const builds: Record<string, { path: string; sha: string }> = {}
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')
const liveSha = () => sha256(sb.hostPath(h, LIVE))
const stored = () =>
  JSON.parse(readFileSync(sb.hostPath(h, `${STORE}/state.json`), 'utf8')) as {
    live: string
    releases: { sha256: string; version: string | null }[]
  }

beforeAll(() => {
  sb = sandboxUp({ first: 210, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-distro-')
  for (const label of ['u9', 'u11']) {
    const path = nginxBuild(dir, label)
    builds[label] = { path, sha: sha256(path) }
  }
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const run = (inputs: Record<string, string>): Promise<ActionRun> =>
  runAction({ ...sandboxInputs(sb, [h]), ...inputs }, { timeoutMs: 90_000 })

function expectResult(r: ActionRun, result: string, code = 0) {
  if (r.outputs.result !== result || r.code !== code) console.log(r.log)
  expect(r.outputs.result).toBe(result)
  expect(r.code).toBe(code)
}

describe('Debian versions', () => {
  it('a security update of the live upstream version is an upgrade, kept as written', async () => {
    const r = await run({ binary: builds.u9!.path, version: U9 })
    expectResult(r, 'upgraded')
    expect(r.outputs.version).toBe(U9)
    expect(r.outputs['previous-version']).toBe(BASE)
    expect(r.log).toContain(`version ${BASE} → ${U9} (higher by Debian's version ordering)`)
    expect(liveSha()).toBe(builds.u9!.sha)
  })

  it('two builds of one upstream version are told apart: u9 → u11', async () => {
    const r = await run({ binary: builds.u11!.path, version: U11 })
    expectResult(r, 'upgraded')
    expect(r.outputs.version).toBe(U11)
    expect(r.outputs['previous-version']).toBe(U9)
    expect(stored().releases.map(x => x.version)).toEqual([BASE, U9, U11])
    expect(r.summary).toContain(`| **live** | ${U11} |`)
  })

  it('deploying the older build over the newer one is refused as a downgrade', async () => {
    const before = sb.readPid(h)
    const r = await run({ binary: builds.u9!.path, version: U9 })
    expectResult(r, 'failed', 1)
    expect(r.log).toContain(
      `the new binary is version ${U9}, lower than the live version ${U11} (compared by Debian's version ordering)`
    )
    expect(sb.readPid(h)).toBe(before)
    expect(liveSha()).toBe(builds.u11!.sha)
  })

  it('rollback-to names the u9 build exactly, and goes back to it', async () => {
    const r = await run({ mode: 'rollback', 'rollback-to': U9 })
    expectResult(r, 'upgraded')
    expect(r.outputs.version).toBe(U9)
    expect(r.outputs['previous-version']).toBe(U11)
    expect(liveSha()).toBe(builds.u9!.sha)
    expect(stored().live).toBe(builds.u9!.sha)
  })

  it('a rollback to the live release changes nothing, and says so', async () => {
    const r = await run({ mode: 'rollback', 'rollback-to': U9 })
    expectResult(r, 'unchanged')
    expect(r.log).toMatch(/::warning.*rollback-to .* names the live release .*nothing was rolled back/)
    expect(liveSha()).toBe(builds.u9!.sha)
  })

  it('rollback-to a build the host does not have fails with the list of releases', async () => {
    const r = await run({ mode: 'rollback', 'rollback-to': `${BASE}-9+deb12u7` })
    expectResult(r, 'failed', 1)
    expect(r.log).toContain(`has no release with version ${BASE}-9+deb12u7`)
    expect(r.log).toContain(`${U11} (sha256 ${builds.u11!.sha.slice(0, 12)})`)
    expect(r.log).toContain(`${U9} (sha256 ${builds.u9!.sha.slice(0, 12)}, live)`)
    expect(liveSha()).toBe(builds.u9!.sha)
  })

  it('rollback-to by sha256 prefix names one build', async () => {
    const r = await run({ mode: 'rollback', 'rollback-to': builds.u11!.sha.slice(0, 12) })
    expectResult(r, 'upgraded')
    expect(r.outputs.version).toBe(U11)
    expect(liveSha()).toBe(builds.u11!.sha)
  })
})
