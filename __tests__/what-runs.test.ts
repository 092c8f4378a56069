/**
 * What runs, and what stays beside it, on a real sandbox host (127.0.0.215): nothing of the action
 * is left next to the live binary after success; a binary replaced on disk under the running
 * master (as a package manager does) is reported and recorded by what the master runs
 * (/proc/<pid>/exe); after an automatic rollback the master's exe reads "(deleted)", and the next
 * deploy still records the running release, so it can be rolled back to.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { copyFileSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'

const LIVE = '/srv/app/sbin/nginx'
let sb: Sandbox
let h: SandboxHost
let dir: string
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')
const builds: Record<string, { path: string; sha: string }> = {}

beforeAll(() => {
  sb = sandboxUp({ first: 215, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-what-runs-')
  for (const label of ['a', 'b', 'c', 'd', 'e']) {
    const path = nginxBuild(dir, label)
    builds[label] = { path, sha: sha256(path) }
  }
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const deploy = (label: string, over: Record<string, string> = {}): Promise<ActionRun> =>
  runAction({ ...sandboxInputs(sb, [h]), binary: builds[label]!.path, ...over }, { timeoutMs: 90_000 })

interface HostJson {
  result: string
  sha256?: string
  previousSha256?: string
}
const hostReport = (r: ActionRun) => (JSON.parse(r.outputs.report!) as { hosts: HostJson[] }).hosts[0]!
const storeOf = (store: string) =>
  JSON.parse(readFileSync(sb.hostPath(h, `${store}/state.json`), 'utf8')) as {
    live: string
    releases: { sha256: string; origin: string }[]
  }
const beside = () => readdirSync(sb.hostPath(h, '/srv/app/sbin')).sort()

function expectResult(r: ActionRun, result: string) {
  if (r.outputs.result !== result) console.log(r.log)
  expect(r.outputs.result).toBe(result)
}

describe('what runs', () => {
  it('after success nothing of the action stays beside the live binary', async () => {
    expectResult(await deploy('a'), 'upgraded')
    expect(beside()).toEqual(['nginx'])
    expect(sha256(sb.hostPath(h, LIVE))).toBe(builds.a!.sha)
  })

  it('a binary replaced on disk under the master: reported and recorded by what runs', async () => {
    // As dpkg does: the new file is written beside, then renamed over the live path.
    copyFileSync(builds.b!.path, sb.hostPath(h, '/srv/app/sbin/nginx.dpkg-new'))
    // Owned by the deploy user, as the sandbox's binary is (a hard link needs that: protected_hardlinks).
    sb.exec(h, ['chown', 'zd:zd', '/srv/app/sbin/nginx.dpkg-new'])
    sb.exec(h, ['mv', '-f', '/srv/app/sbin/nginx.dpkg-new', LIVE])
    expect(readlinkSync(`/proc/${sb.readPid(h)}/exe`)).toBe(`${LIVE} (deleted)`)
    const store = '/var/lib/zerodown/fresh-1'
    const r = await deploy('c', { 'release-dir': store })
    expectResult(r, 'upgraded')
    expect(hostReport(r).previousSha256).toBe(builds.a!.sha)
    expect(r.log).toContain(
      `the file there was replaced since it started: it runs sha256 ${builds.a!.sha.slice(0, 12)}, the file on disk is ${builds.b!.sha.slice(0, 12)}`
    )
    const s = storeOf(store)
    expect(s.releases.map(x => [x.sha256, x.origin])).toEqual([
      [builds.a!.sha, 'found'],
      [builds.c!.sha, 'deploy']
    ])
    expect(sha256(sb.hostPath(h, `${store}/releases/${builds.a!.sha}/nginx`))).toBe(builds.a!.sha)
    expect(beside()).toEqual(['nginx'])
  })

  it('after an automatic rollback ("(deleted)" exe) the next deploy records the running release', async () => {
    const failed = await deploy('d', {
      'health-url': '',
      'health-command': 'exit 1',
      'health-timeout': '2s'
    })
    expectResult(failed, 'rolled-back')
    const pid = sb.readPid(h)!
    // The same file is back under its path, but the master's link names the dentry it started from.
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe(`${LIVE} (deleted)`)
    expect(sha256(sb.hostPath(h, LIVE))).toBe(builds.c!.sha)
    expect(beside()).toEqual(['nginx'])

    const store = '/var/lib/zerodown/fresh-2'
    const r = await deploy('e', { 'release-dir': store })
    expectResult(r, 'upgraded')
    expect(r.log).toContain('/exe reads "(deleted)": the same build was put back under its path')
    expect(hostReport(r).previousSha256).toBe(builds.c!.sha)
    expect(storeOf(store).releases.map(x => x.sha256)).toEqual([builds.c!.sha, builds.e!.sha])
    // And so it can be rolled back to.
    const back = await runAction({ ...sandboxInputs(sb, [h]), mode: 'rollback', 'release-dir': store })
    expectResult(back, 'upgraded')
    expect(sha256(sb.hostPath(h, LIVE))).toBe(builds.c!.sha)
    expect(beside()).toEqual(['nginx'])
  })
})
