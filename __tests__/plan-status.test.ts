/**
 * mode plan and mode status against real sandbox hosts (sshd + nginx on 127.0.4.2 and 127.0.4.3),
 * through the bundle as GitHub runs it, and through the command line. One story, in order:
 * status of fresh hosts; a plan (would upgrade); a real deploy; status again (live, rollback
 * target); plans that are unchanged, refused (downgrade, a held lock, a failing config test) and
 * allowed. After every plan and status, each host is what it was before, file for file: the
 * binary's folder, the release store, /run and /tmp (names, kinds and sha256 of every file), the
 * master and its workers.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import {
  NODE24,
  ROOT,
  nginxBuild,
  runAction,
  sandboxInputs,
  scratchDir,
  type ActionRun
} from './helpers/action.js'
import { APP, appBinary, appPid, appStart } from '../test/sandbox/tableflip.js'
import { HAPROXY, HAPROXY_PID_FILE, LIVE_HAPROXY, haproxyBuild } from './helpers/haproxy.js'

const STORE = '/var/lib/zerodown/nginx'
const LIVE = '/srv/app/sbin/nginx'
const BASE_VERSION = /nginx\/(\d+\.\d+\.\d+)/.exec(
  execFileSync('sh', ['-c', '/usr/sbin/nginx -v 2>&1'], { encoding: 'utf8' })
)![1]!

let sb: Sandbox
let dir: string
const builds: Record<string, { path: string; sha: string }> = {}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

beforeAll(() => {
  sb = sandboxUp({ first: 2, count: 2, net: '127.0.4' })
  dir = scratchDir('zerodown-plan-')
  for (const label of ['v1', 'v2']) {
    const path = nginxBuild(dir, label)
    builds[label] = { path, sha: sha256(path) }
  }
  // A "binary" whose config test fails: a deploy stops at verify.
  const bad = join(dir, 'nginx-bad')
  writeFileSync(bad, '#!/bin/sh\necho "nginx: [emerg] unknown directive \\"bogus\\"" >&2\nexit 1\n', {
    mode: 0o755
  })
  builds.bad = { path: bad, sha: sha256(bad) }
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Every entry under a host's folder: path, kind, and the sha256 of files (no times). */
function listing(s: Sandbox, h: SandboxHost, remote: string): string[] {
  const root = s.hostPath(h, remote)
  const out: string[] = []
  const walk = (rel: string) => {
    const p = join(root, rel)
    const st = lstatSync(p, { throwIfNoEntry: false })
    if (!st) return
    if (st.isSymbolicLink()) out.push(`${rel} link`)
    else if (st.isDirectory()) {
      out.push(`${rel}/`)
      for (const e of readdirSync(p).sort()) walk(rel ? `${rel}/${e}` : e)
    } else if (st.isFile()) out.push(`${rel} ${sha256(p)}`)
    else out.push(`${rel} other`)
  }
  walk('')
  return out
}

/** The children of a process (its workers), from /proc. */
function children(pid: number | null): number[] {
  if (pid === null) return []
  const tasks = readdirSync(`/proc/${pid}/task`)
  return tasks
    .flatMap(t => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/))
    .filter(x => x !== '')
    .map(Number)
    .sort((a, b) => a - b)
}

/** What a host is: its files where a deploy writes, its master and workers. */
function snapshot(s: Sandbox, h: SandboxHost, pidOf = (x: SandboxHost) => s.readPid(x)) {
  const master = pidOf(h)
  return {
    sbin: listing(s, h, '/srv/app/sbin'),
    store: listing(s, h, '/var/lib/zerodown'),
    // The sandbox's own sshd writes its log there: not the action's.
    run: listing(s, h, '/run').filter(e => !e.startsWith('zerodown-sandbox/sshd.log ')),
    tmp: listing(s, h, '/tmp'),
    master,
    workers: children(master)
  }
}
const snapshots = (s: Sandbox = sb, pidOf?: (h: SandboxHost) => number | null) =>
  s.hosts.map(h => snapshot(s, h, pidOf))

function action(inputs: Record<string, string>): Promise<ActionRun> {
  return runAction({ ...sandboxInputs(sb), ...inputs }, { timeoutMs: 90_000 })
}

interface ReportHost {
  host: string
  version?: string
  previousVersion?: string
  plan?: { verdict: string; change?: string; downgrade?: string; message?: string; step?: string }
  status?: {
    pid: number
    livePath: string
    runningSha256: string
    version: string | null
    rollbackTarget: { version: string | null; sha256: string } | null
    lock: string | null
  }
  releases?: { sha256: string; version: string | null; live: boolean; rollbackTarget?: boolean }[]
}
const hostsOf = (r: ActionRun) => (JSON.parse(r.outputs.report!) as { hosts: ReportHost[] }).hosts

function expectCode(r: ActionRun, code: number) {
  if (r.code !== code) console.log(r.log)
  expect(r.code).toBe(code)
}

/** Runs a read-only mode and checks that no host changed. */
async function unchanged(inputs: Record<string, string>): Promise<ActionRun> {
  const before = snapshots()
  const r = await action(inputs)
  expect(snapshots()).toEqual(before)
  return r
}

describe('status and plan change nothing and say what a deploy would do', () => {
  it('status of fresh hosts: what runs, an empty store, nothing created', async () => {
    const r = await unchanged({ mode: 'status' })
    expectCode(r, 0)
    expect(r.outputs.result).toBe('listed')
    expect(r.outputs.version).toBe(BASE_VERSION)
    for (const [i, h] of hostsOf(r).entries()) {
      const host = sb.hosts[i]!
      expect(h.status!.pid).toBe(sb.readPid(host))
      expect(h.status!.livePath).toBe(LIVE)
      expect(h.status!.runningSha256).toBe(sha256(sb.hostPath(host, LIVE)))
      expect(h.status!.version).toBe(BASE_VERSION)
      expect(h.status!.rollbackTarget).toBeNull()
      expect(h.releases).toEqual([])
    }
    expect(existsSync(sb.hostPath(sb.hosts[0]!, STORE))).toBe(false)
    expect(r.summary).toContain('## zerodown status: ✅ 2 hosts read')
  })

  it('a plan stages, config-tests and removes the new binary: every host would upgrade', async () => {
    const r = await unchanged({ mode: 'plan', binary: builds.v1!.path, version: '2.0.0' })
    expectCode(r, 0)
    expect(r.outputs.result).toBe('planned')
    expect(r.outputs.version).toBe('2.0.0')
    expect(r.outputs['previous-version']).toBe(BASE_VERSION)
    for (const h of hostsOf(r)) {
      expect(h.plan).toMatchObject({ verdict: 'upgrade' })
      expect(h.plan!.change).toContain(`${BASE_VERSION} → 2.0.0 (higher`)
    }
    // It did stage and test: the config test ran on the staged file, which is gone again.
    expect(r.log).toMatch(/config test passed/)
    expect(r.log).toMatch(/undid upload/)
    expect(r.summary).toContain('a deploy would go through on every host')
  })

  it('after a deploy, status shows the live release and the rollback target', async () => {
    // What a plan killed outright left an hour ago goes with the deploy; a plan's fresh file stays.
    const h0 = sb.hosts[0]!
    const stale = sb.hostPath(h0, '/srv/app/sbin/.nginx.zerodown-plan-killed01')
    const fresh = sb.hostPath(h0, '/srv/app/sbin/.nginx.zerodown-plan-running1')
    writeFileSync(stale, 'a plan killed outright')
    writeFileSync(fresh, 'a plan at work')
    execFileSync('touch', ['-d', '2 hours ago', stale])
    const d = await action({ binary: builds.v1!.path, version: '2.0.0' })
    expectCode(d, 0)
    expect(existsSync(stale)).toBe(false)
    expect(d.log).toContain('.nginx.zerodown-plan-killed01, left by a plan that stopped an hour ago or more')
    expect(existsSync(fresh)).toBe(true)
    rmSync(fresh)
    const r = await unchanged({ mode: 'status' })
    expectCode(r, 0)
    expect(r.outputs.version).toBe('2.0.0')
    for (const h of hostsOf(r)) {
      expect(h.status!.runningSha256).toBe(builds.v1!.sha)
      expect(h.status!.rollbackTarget).toMatchObject({ version: BASE_VERSION })
      expect(h.releases!.find(x => x.live)).toMatchObject({ sha256: builds.v1!.sha, version: '2.0.0' })
      expect(h.releases!.find(x => x.rollbackTarget)).toMatchObject({ version: BASE_VERSION })
    }
    expect(r.summary).toContain('rollback target')
  })

  it('the live binary again: unchanged; a lower version: refused as a deploy refuses it, or allowed', async () => {
    const same = await unchanged({ mode: 'plan', binary: builds.v1!.path })
    expectCode(same, 0)
    expect(hostsOf(same).map(h => h.plan!.verdict)).toEqual(['unchanged', 'unchanged'])

    const lower = await unchanged({ mode: 'plan', binary: builds.v2!.path, version: '1.0.0' })
    expectCode(lower, 1)
    expect(lower.outputs.result).toBe('refused')
    for (const h of hostsOf(lower)) {
      expect(h.plan).toMatchObject({ verdict: 'refused', downgrade: 'refused', step: 'preflight' })
      expect(h.plan!.message).toMatch(/a downgrade is refused/)
    }
    expect(lower.log).toMatch(/a deploy would be refused on 2 of 2 host\(s\)/)

    const allowed = await unchanged({
      mode: 'plan',
      binary: builds.v2!.path,
      version: '1.0.0',
      'allow-downgrade': 'true'
    })
    expectCode(allowed, 0)
    for (const h of hostsOf(allowed))
      expect(h.plan).toMatchObject({ verdict: 'upgrade', downgrade: 'allowed' })
  })

  it('one host locked by a running deploy, and a binary that fails its config test', async () => {
    const locked = sb.hosts[1]!
    const lock = sb.hostPath(locked, `${STORE}/lock`)
    mkdirSync(lock)
    writeFileSync(join(lock, 'owner'), 'token=run-77-abc\nlease=600\nrepository=acme/other\nrun_id=77\n')
    try {
      const r = await unchanged({ mode: 'plan', binary: builds.v2!.path, version: '2.1.0' })
      expectCode(r, 1)
      const [free, held] = hostsOf(r)
      expect(free!.plan!.verdict).toBe('upgrade')
      expect(held!.plan).toMatchObject({ verdict: 'refused', step: 'preflight' })
      expect(held!.plan!.message).toMatch(/another deploy holds the lock .*acme\/other run 77/)
      // status shows who holds it, and is not refused for it.
      const s = await unchanged({ mode: 'status' })
      expectCode(s, 0)
      expect(hostsOf(s)[1]!.status!.lock).toMatch(/acme\/other run 77/)
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
    const bad = await unchanged({ mode: 'plan', binary: builds.bad!.path })
    expectCode(bad, 1)
    for (const h of hostsOf(bad)) {
      expect(h.plan).toMatchObject({ verdict: 'refused', step: 'verify' })
      expect(h.plan!.message).toMatch(/fails its config test.*unknown directive/)
    }
  })

  it('the command line: zerodown plan and zerodown status, with --json and --summary', () => {
    const keyFile = join(dir, 'key')
    writeFileSync(keyFile, sb.privateKey(), { mode: 0o600 })
    const khFile = join(dir, 'known_hosts')
    writeFileSync(khFile, sb.knownHosts())
    const common = [
      '--hosts',
      sb.hosts.map(h => `${sb.user}@${h.address}:${h.sshPort}`).join(','),
      '--private-key-file',
      keyFile,
      '--known-hosts-file',
      khFile
    ]
    const cli = (...args: string[]) =>
      spawnSync(NODE24, [join(ROOT, 'dist/index.js'), ...args], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
        timeout: 90_000
      })
    const before = snapshots()
    const summary = join(dir, 'plan.md')
    const plan = cli(
      'plan',
      '--binary',
      builds.v2!.path,
      '--version',
      '2.1.0',
      ...common,
      '--summary',
      summary
    )
    expect(plan.status).toBe(0)
    expect(plan.stdout).toMatch(/would upgrade 2\.0\.0 → 2\.1\.0/)
    expect(readFileSync(summary, 'utf8')).toContain('| Host | A deploy would |')
    const status = cli('status', ...common, '--json')
    expect(status.status).toBe(0)
    const report = JSON.parse(status.stdout) as { mode: string; hosts: ReportHost[] }
    expect(report.mode).toBe('status')
    expect(report.hosts.map(h => h.status!.version)).toEqual(['2.0.0', '2.0.0'])
    expect(snapshots()).toEqual(before)
    // --binary is not a flag of status.
    const wrong = cli('status', '--binary', builds.v2!.path, ...common)
    expect(wrong.status).toBe(2)
    expect(wrong.stderr).toMatch(/Input 'binary': is set but mode is status/)
  })
})

describe('plan and status with another supervisor: HAProxy in master-worker mode (127.0.4.10)', () => {
  let hb: Sandbox
  const inputs = (over: Record<string, string>) =>
    runAction(
      {
        ...sandboxInputs(hb),
        supervisor: 'haproxy',
        'pid-file': HAPROXY_PID_FILE,
        ...over
      },
      { timeoutMs: 90_000 }
    )
  beforeAll(() => {
    hb = sandboxUp({ first: 10, count: 1, net: '127.0.4', server: 'haproxy' })
  })
  afterAll(() => hb?.down())

  it('status reads the master; a plan checks the new build with haproxy -c and changes nothing', async () => {
    const before = snapshots(hb)
    const status = await inputs({ mode: 'status' })
    expectCode(status, 0)
    const h = hostsOf(status)[0]!
    expect(h.status!.pid).toBe(hb.readPid(hb.hosts[0]!))
    expect(h.status!.livePath).toBe(LIVE_HAPROXY)
    expect(h.status!.runningSha256).toBe(sha256(HAPROXY))
    const plan = await inputs({ mode: 'plan', binary: haproxyBuild(dir, 'plan') })
    expectCode(plan, 0)
    expect(hostsOf(plan)[0]!.plan!.verdict).toBe('upgrade')
    expect(plan.log).toMatch(/undid upload/)
    expect(snapshots(hb)).toEqual(before)
  })
})

describe('plan and status with another supervisor: a Go server on tableflip (127.0.4.11)', () => {
  let tb: Sandbox
  const inputs = (over: Record<string, string>) =>
    runAction(
      {
        ...sandboxInputs(tb),
        supervisor: 'tableflip',
        'pid-file': APP.pidFile,
        ...over
      },
      { timeoutMs: 90_000 }
    )
  beforeAll(() => {
    tb = sandboxUp({ first: 11, count: 1, net: '127.0.4' })
    appStart(tb, tb.hosts[0]!, { variant: '1.0.0', reset: true })
  })
  afterAll(() => tb?.down())

  it('status reads the serving process; a plan of 2.0.0 would upgrade, of 1.0.0 is unchanged', async () => {
    const pidOf = (h: SandboxHost) => appPid(tb, h)
    const before = snapshots(tb, pidOf)
    const status = await inputs({ mode: 'status' })
    expectCode(status, 0)
    expect(hostsOf(status)[0]!.status).toMatchObject({
      pid: appPid(tb, tb.hosts[0]!),
      livePath: APP.binaryPath
    })
    const plan = await inputs({ mode: 'plan', binary: appBinary('2.0.0'), version: '2.0.0' })
    expectCode(plan, 0)
    expect(hostsOf(plan)[0]!.plan).toMatchObject({ verdict: 'upgrade' })
    expect(hostsOf(plan)[0]!.plan!.change).toMatch(/→ 2\.0\.0/)
    const same = await inputs({ mode: 'plan', binary: appBinary('1.0.0') })
    expectCode(same, 0)
    expect(hostsOf(same)[0]!.plan!.verdict).toBe('unchanged')
    expect(snapshots(tb, pidOf)).toEqual(before)
  })
})
