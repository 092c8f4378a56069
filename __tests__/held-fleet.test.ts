/**
 * A fleet sharded over a matrix, run as GitHub would: each phase a separate run of the bundle
 * (runAction) against four real sandbox hosts (sshd + nginx on 127.0.5.11-14), two shards of two.
 * hold: true leaves each shard's old masters parked with a held-state record; mode: abort returns
 * every held host to its original master and binary; mode: commit retires the old masters; both
 * are idempotent; a held host nobody finishes is rolled back by its watchdog at hold-timeout.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { processesOf } from './helpers/safety.js'
import { health, hostState, sha256 } from './helpers/upgrade-host.js'

let sb: Sandbox
let dir: string
let build: string
let newSha: string
let oldSha: string

const HELD = '/var/lib/zerodown/nginx/held'

beforeAll(() => {
  sb = sandboxUp({ first: 11, count: 4, net: '127.0.5' })
  dir = scratchDir('zerodown-held-')
  build = nginxBuild(dir, 'held-v2')
  newSha = sha256(build)
  oldSha = sha256('/usr/sbin/nginx')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  for (const h of sb.hosts) {
    sb.nginxStart(h, { reset: true })
    rmSync(sb.hostPath(h, HELD), { force: true })
  }
})

const label = (h: SandboxHost) => `${sb.user}@${h.address}:${h.sshPort}`

function inputs(over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb),
    binary: build,
    canary: '0',
    'max-parallel': '2',
    'health-interval': '100ms',
    'health-checks': '2',
    'health-timeout': '3s',
    ...over
  }
}

const finish = (mode: 'commit' | 'abort') => {
  const i = inputs({ mode })
  delete i.binary
  return i
}

function results(run: ActionRun): Record<string, HostResult> {
  expect(run.outputs.report).toBeDefined()
  const r = JSON.parse(run.outputs.report!) as { hosts: HostReport[] }
  return Object.fromEntries(r.hosts.map(h => [h.host, h.result]))
}

const byHost = (hosts: SandboxHost[], result: HostResult) =>
  Object.fromEntries(hosts.map(h => [label(h), result]))

const watchdogs = (h: SandboxHost) => processesOf(sb, h, /zerodown-watchdog/)

/** A host left held: two masters, the new one in the pid file, the record naming both. */
function expectHeld(h: SandboxHost, oldPid: number): void {
  const s = hostState(sb, h)
  expect([h.address, s.oldbin, s.liveSha256, s.masters.length]).toEqual([h.address, true, newSha, 2])
  const rec = JSON.parse(readFileSync(sb.hostPath(h, HELD), 'utf8')) as {
    kind: string
    old: { pid: number; sha256: string }
    new: { pid: number; sha256: string }
  }
  expect([rec.kind, rec.old.pid, rec.old.sha256, rec.new.pid, rec.new.sha256]).toEqual([
    'zerodown-held',
    oldPid,
    oldSha,
    s.pid,
    newSha
  ])
  expect(watchdogs(h)).toHaveLength(1)
}

/** Back on the original master and binary, nothing of the hold left. */
function expectOriginal(h: SandboxHost, pid: number): void {
  const s = hostState(sb, h)
  expect([h.address, s.pid, s.pidAlive, s.masters, s.liveSha256, s.oldbin]).toEqual([
    h.address,
    pid,
    true,
    [pid],
    oldSha,
    false
  ])
  expect([h.address, existsSync(sb.hostPath(h, HELD)), watchdogs(h)]).toEqual([h.address, false, []])
}

describe('held fleet', () => {
  it('a failed shard, then abort: every host of every shard is back on its original master, no failed request', async () => {
    const [a, b, c, d] = sb.hosts as [SandboxHost, SandboxHost, SandboxHost, SandboxHost]
    const before = new Map(sb.hosts.map(h => [h.address, hostState(sb, h).pid!]))
    const loads = sb.hosts.map(h =>
      startLoad({ host: h.address, port: h.httpPort, concurrency: 2, maxRequests: 200_000, maxMs: 300_000 })
    )
    try {
      const one = await runAction(inputs({ shard: '1/2', hold: 'true' }))
      expect([one.code, one.outputs.result]).toEqual([0, 'parked'])
      expect(results(one)).toEqual(byHost([a, b], 'parked'))
      for (const h of [a, b]) expectHeld(h, before.get(h.address)!)
      // The second shard's new binary never passes its health gate: that shard rolls itself back.
      const two = await runAction(
        inputs({ shard: '2/2', hold: 'true', 'health-url': 'http://{host}:8080/no-such-page' })
      )
      expect(two.code).toBe(1)
      expect(results(two)).toEqual(byHost([c, d], 'rolled-back'))
      for (const h of [c, d]) expectOriginal(h, before.get(h.address)!)
      const abort = await runAction(finish('abort'))
      expect([abort.code, abort.outputs.result]).toEqual([0, 'rolled-back'])
      expect(results(abort)).toEqual({ ...byHost([a, b], 'rolled-back'), ...byHost([c, d], 'unchanged') })
      for (const h of sb.hosts) expectOriginal(h, before.get(h.address)!)
      const again = await runAction(finish('abort'))
      expect([again.code, again.outputs.result]).toEqual([0, 'unchanged'])
      expect(again.log).toMatch(/nothing held here/)
      for (const h of sb.hosts) expectOriginal(h, before.get(h.address)!)
    } finally {
      const done = await Promise.all(loads.map(l => l.stop()))
      done.forEach((r, i) =>
        console.log(describeLoad(`held fleet: a failed shard, then abort, host ${i + 1}`, r))
      )
      done.forEach((r, i) => {
        expect([sb.hosts[i]!.address, describeLoad('load', r), r.failed]).toEqual([
          sb.hosts[i]!.address,
          describeLoad('load', r),
          0
        ])
        expect(r.ok).toBeGreaterThan(0)
      })
    }
  })

  it('hold then commit leaves every host on the new master; commit twice is harmless', async () => {
    const before = new Map(sb.hosts.map(h => [h.address, hostState(sb, h).pid!]))
    for (const shard of ['1/2', '2/2']) {
      const run = await runAction(inputs({ shard, hold: 'true' }))
      if (process.env.ZD_SHOW_LOG) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
      expect([shard, run.code, run.outputs.result]).toEqual([shard, 0, 'parked'])
    }
    for (const h of sb.hosts) expectHeld(h, before.get(h.address)!)
    const newPids = new Map(sb.hosts.map(h => [h.address, hostState(sb, h).pid!]))
    const commit = await runAction(finish('commit'))
    if (process.env.ZD_SHOW_LOG) console.log(commit.log.replace(/^::add-mask::.*\n/gm, ''))
    expect([commit.code, commit.outputs.result]).toEqual([0, 'upgraded'])
    expect(results(commit)).toEqual(byHost(sb.hosts, 'upgraded'))
    for (const h of sb.hosts) {
      const s = hostState(sb, h)
      const pid = newPids.get(h.address)!
      expect([h.address, s.pid, s.masters, s.liveSha256, s.oldbin]).toEqual([
        h.address,
        pid,
        [pid],
        newSha,
        false
      ])
      expect([h.address, existsSync(sb.hostPath(h, HELD)), watchdogs(h)]).toEqual([h.address, false, []])
      expect(await health(h)).toBe('200 ok')
    }
    const again = await runAction(finish('commit'))
    expect([again.code, again.outputs.result]).toEqual([0, 'unchanged'])
    for (const h of sb.hosts) expect(hostState(sb, h).pid).toBe(newPids.get(h.address))
  })

  it('a held host nobody finishes is rolled back by its watchdog at hold-timeout; abort then reports it', async () => {
    const [a, b] = sb.hosts as [SandboxHost, SandboxHost]
    const before = new Map([a, b].map(h => [h.address, hostState(sb, h).pid!]))
    const run = await runAction(inputs({ shard: '1/2', hold: 'true', 'hold-timeout': '2s' }))
    expect([run.code, run.outputs.result]).toEqual([0, 'parked'])
    // Bounded wait for the watchdogs (they check their deadline every second).
    for (let i = 0; i < 300 && [a, b].some(h => watchdogs(h).length > 0); i++)
      await new Promise(r => setTimeout(r, 100))
    for (const h of [a, b]) {
      const s = hostState(sb, h)
      expect([h.address, s.pid, s.masters, s.liveSha256]).toEqual([
        h.address,
        before.get(h.address),
        [before.get(h.address)],
        oldSha
      ])
    }
    const abort = await runAction(finish('abort'))
    expect([abort.code, abort.outputs.result]).toEqual([0, 'rolled-back'])
    expect(abort.log).toMatch(/watchdog already returned it/)
    for (const h of [a, b]) expectOriginal(h, before.get(h.address)!)
  })

  it('refuses a record whose old process is not the one it names, and signals nothing', async () => {
    const [a] = sb.hosts as [SandboxHost]
    const old = hostState(sb, a).pid!
    const run = await runAction(inputs({ shard: '1/4', hold: 'true' }))
    expect([run.code, run.outputs.result]).toEqual([0, 'parked'])
    const path = sb.hostPath(a, HELD)
    const rec = JSON.parse(readFileSync(path, 'utf8')) as { old: { startTime: string } }
    rec.old.startTime = String(Number(rec.old.startTime) + 1)
    writeFileSync(path, JSON.stringify(rec))
    const held = hostState(sb, a)
    const abort = await runAction(finish('abort'))
    expect(abort.code).toBe(1)
    expect(abort.log).toMatch(/no longer the old process the hold run recorded/)
    const now = hostState(sb, a)
    expect([now.pid, now.masters, now.liveSha256]).toEqual([held.pid, held.masters, newSha])
    expect(now.masters).toContain(old)
    // Refused before its watchdog was told: it still guards the host, and returns it at hold-timeout.
    expect(watchdogs(a)).toHaveLength(1)
  })

  it("commit keeps only its own workflow run's hosts", async () => {
    const [a] = sb.hosts as [SandboxHost]
    const old = hostState(sb, a).pid!
    const run = await runAction(inputs({ shard: '1/4', hold: 'true' }), { env: { GITHUB_RUN_ID: '111' } })
    expect([run.code, run.outputs.result]).toEqual([0, 'parked'])
    expectHeld(a, old)
    const other = await runAction(finish('commit'), { env: { GITHUB_RUN_ID: '222' } })
    expect(other.code).toBe(1)
    expect(other.log).toContain("a commit keeps only its own run's hosts")
    expectHeld(a, old)
    const own = await runAction(finish('commit'), { env: { GITHUB_RUN_ID: '111' } })
    expect([own.code, own.outputs.result]).toEqual([0, 'upgraded'])
    expect(hostState(sb, a).masters).toEqual([hostState(sb, a).pid])
  })
})
