/**
 * hold: true on HAProxy master-worker, which cannot park its old process (the master re-executes
 * itself under its pid and the old workers soft-stop), run as GitHub would (runAction, one run of
 * the bundle per phase) against two real sandbox hosts (sshd + Debian's HAProxy on
 * 127.0.7.50-51). The hold run completes each reload and drain, keeps the previous binary beside
 * the live one and the watchdog armed, and writes a version 2 held record whose old and new
 * process share the master's pid. mode: abort reloads back to the previous binary with no failed
 * request; mode: commit keeps the new one; a held host nobody finishes goes back at hold-timeout.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { sidePaths } from '../src/strategies/hot-upgrade/install.js'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { HAPROXY, HAPROXY_PID_FILE, LIVE_HAPROXY, haproxyBuild } from './helpers/haproxy.js'
import { processesOf } from './helpers/safety.js'
import { sleep, until } from './helpers/ssh.js'

const STORE = '/var/lib/zerodown/haproxy'
const HELD = `${STORE}/held`
const KEPT = sidePaths(LIVE_HAPROXY).previous
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

let sb: Sandbox
let dir: string
let build: string
let v1: string
let v2: string

beforeAll(() => {
  sb = sandboxUp({ first: 50, count: 2, net: '127.0.7', server: 'haproxy' })
  dir = scratchDir('zerodown-held-haproxy-')
  build = haproxyBuild(dir, 'held-v2')
  v1 = sha(HAPROXY)
  v2 = sha(build)
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const masters = new Map<string, number>()
beforeEach(() => {
  for (const h of sb.hosts) {
    masters.set(h.address, sb.serverStart(h, { reset: true }))
    rmSync(sb.hostPath(h, HELD), { force: true })
  }
})

const label = (h: SandboxHost) => `${sb.user}@${h.address}:${h.sshPort}`

function inputs(over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb),
    supervisor: 'haproxy',
    'pid-file': HAPROXY_PID_FILE,
    'health-interval': '100ms',
    'health-checks': '2',
    'health-timeout': '3s',
    'start-timeout': '10s',
    'max-parallel': '2',
    binary: build,
    hold: 'true',
    ...over
  }
}

const finish = (mode: 'commit' | 'abort') => {
  const i = inputs({ mode })
  delete i.binary
  delete i.hold
  return i
}

function results(run: ActionRun): Record<string, HostResult> {
  expect(run.outputs.report).toBeDefined()
  const r = JSON.parse(run.outputs.report!) as { hosts: HostReport[] }
  return Object.fromEntries(r.hosts.map(h => [h.host, h.result]))
}

const byHost = (result: HostResult) => Object.fromEntries(sb.hosts.map(h => [label(h), result]))
const watchdogs = (h: SandboxHost) => processesOf(sb, h, /zerodown-watchdog/)

/** The master's pid, the sha256 of what it and its workers run, and of the live file. */
function serving(h: SandboxHost): { master: number | null; runs: string[]; live: string } {
  const master = sb.readPid(h)
  const r = sb.exec(h, [
    'sh',
    '-c',
    'sha256sum /proc/$1/exe; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do sha256sum /proc/$c/exe; done',
    'sh',
    String(master ?? 0)
  ])
  const runs = [
    ...new Set(
      r.stdout
        .trim()
        .split('\n')
        .map(l => l.split(/\s+/)[0]!)
    )
  ]
  return { master, runs, live: sha(sb.hostPath(h, LIVE_HAPROXY)) }
}

function show(run: ActionRun): void {
  if (process.env.ZD_SHOW_LOG || run.code !== 0) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
}

async function holdBoth(over: Record<string, string> = {}): Promise<void> {
  const run = await runAction(inputs(over))
  show(run)
  expect([run.code, run.outputs.result]).toEqual([0, 'parked'])
  expect(results(run)).toEqual(byHost('parked'))
}

function expectHeld(h: SandboxHost): void {
  const master = masters.get(h.address)!
  expect([h.address, serving(h), sha(sb.hostPath(h, KEPT))]).toEqual([
    h.address,
    { master, runs: [v2], live: v2 },
    v1
  ])
  const rec = JSON.parse(readFileSync(sb.hostPath(h, HELD), 'utf8')) as {
    version: number
    revert: string
    old: { pid: number; sha256: string }
    new: { pid: number; sha256: string }
  }
  expect([rec.version, rec.revert, rec.old.pid, rec.old.sha256, rec.new.pid, rec.new.sha256]).toEqual([
    2,
    'handoff',
    master,
    v1,
    master,
    v2
  ])
  expect(watchdogs(h)).toHaveLength(1)
}

/** The same master, it and its workers on `want` (old workers gone), nothing of the hold left. */
async function expectSettled(h: SandboxHost, want: string): Promise<void> {
  await until(() => serving(h).runs.length === 1, 20_000)
  expect([h.address, serving(h)]).toEqual([
    h.address,
    { master: masters.get(h.address), runs: [want], live: want }
  ])
  expect([existsSync(sb.hostPath(h, HELD)), existsSync(sb.hostPath(h, KEPT)), watchdogs(h)]).toEqual([
    false,
    false,
    []
  ])
}

describe('held HAProxy fleet', () => {
  it('hold, then abort: both masters reload back to the previous binary; no failed request', async () => {
    const [a] = sb.hosts as [SandboxHost]
    const load = startLoad({
      host: a.address,
      port: a.httpPort,
      path: '/pid',
      concurrency: 4,
      maxRequests: 300_000,
      maxMs: 240_000
    })
    try {
      while (load.count() < 100) await sleep(10)
      await holdBoth()
      for (const h of sb.hosts) expectHeld(h)
      const abort = await runAction(finish('abort'))
      show(abort)
      expect([abort.code, abort.outputs.result]).toEqual([0, 'rolled-back'])
      expect(results(abort)).toEqual(byHost('rolled-back'))
      for (const h of sb.hosts) await expectSettled(h, v1)
      const again = await runAction(finish('abort'))
      expect([again.code, again.outputs.result]).toEqual([0, 'unchanged'])
    } finally {
      await sleep(300)
      const traffic = await load.stop()
      console.log(describeLoad('held HAProxy: hold then abort, host 1, connection per request', traffic))
      expect([describeLoad('load', traffic), traffic.failed]).toEqual([describeLoad('load', traffic), 0])
      expect(traffic.ok).toBeGreaterThan(0)
    }
  })

  it('hold, then commit: the new binary stays; commit twice is harmless', async () => {
    await holdBoth()
    for (const h of sb.hosts) expectHeld(h)
    const commit = await runAction(finish('commit'))
    show(commit)
    expect([commit.code, commit.outputs.result]).toEqual([0, 'upgraded'])
    expect(results(commit)).toEqual(byHost('upgraded'))
    for (const h of sb.hosts) await expectSettled(h, v2)
    const again = await runAction(finish('commit'))
    expect([again.code, again.outputs.result]).toEqual([0, 'unchanged'])
  })

  it('a held host nobody finishes reloads back by its watchdog at hold-timeout', async () => {
    await holdBoth({ 'hold-timeout': '3s' })
    await until(() => sb.hosts.every(h => watchdogs(h).length === 0), 90_000, 100)
    for (const h of sb.hosts) {
      await until(() => serving(h).runs.length === 1, 20_000)
      expect([h.address, serving(h), watchdogs(h)]).toEqual([
        h.address,
        { master: masters.get(h.address), runs: [v1], live: v1 },
        []
      ])
    }
    const abort = await runAction(finish('abort'))
    show(abort)
    expect([abort.code, abort.outputs.result]).toEqual([0, 'rolled-back'])
    expect(abort.log).toMatch(/watchdog already handed it back to the previous binary/)
    for (const h of sb.hosts) await expectSettled(h, v1)
  })
})
