/**
 * hold: true on tableflip, which cannot park its old process, run as GitHub would (runAction: a
 * separate run of the bundle per phase) against two real sandbox hosts (sshd + the Go test
 * server on 127.0.7.10-11). The hold run completes each hand-over (the old process drains and
 * exits), keeps the previous binary beside the live one, leaves the watchdog armed until
 * hold-timeout and writes a version 2 held-state record. mode: abort hands over back to the
 * previous binary with no failed request; mode: commit keeps the new release; a held host nobody
 * finishes is handed back by its watchdog at hold-timeout. Each of them twice is harmless.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { sidePaths } from '../src/strategies/hot-upgrade/install.js'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { APP, appBinary, appPid, appProcesses, appStart } from '../test/sandbox/tableflip.js'
import { runAction, sandboxInputs, type ActionRun } from './helpers/action.js'
import { processesOf } from './helpers/safety.js'
import { sleep, until } from './helpers/ssh.js'

let sb: Sandbox
let v1: string
let v2: string

const STORE = '/var/lib/zerodown/app'
const HELD = `${STORE}/held`
const KEPT = sidePaths(APP.binaryPath).previous
const FAIL_FILE = '/srv/app/health-fail'

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

beforeAll(() => {
  sb = sandboxUp({ first: 10, count: 2, net: '127.0.7' })
  v1 = sha(appBinary('1.0.0'))
  v2 = sha(appBinary('2.0.0'))
})
afterAll(() => sb?.down())

const originals = new Map<string, number>()
beforeEach(() => {
  for (const h of sb.hosts) {
    originals.set(h.address, appStart(sb, h, { variant: '1.0.0', reset: true }))
    rmSync(sb.hostPath(h, HELD), { force: true })
  }
})

const label = (h: SandboxHost) => `${sb.user}@${h.address}:${h.sshPort}`

function inputs(over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb),
    supervisor: 'tableflip',
    'pid-file': APP.pidFile,
    'health-url': `http://{host}:${sb.hosts[0]!.httpPort}/health`,
    'health-interval': '100ms',
    'health-checks': '2',
    'health-timeout': '3s',
    'max-parallel': '2',
    binary: appBinary('2.0.0'),
    version: '2.0.0',
    hold: 'true',
    ...over
  }
}

const finish = (mode: 'commit' | 'abort') => {
  const i = inputs({ mode })
  delete i.binary
  delete i.version
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
/** sha256 of what the process in the pid file runs (the kernel's file), and of the live file. */
const runs = (h: SandboxHost) => [sha(`/proc/${appPid(sb, h)}/exe`), sha(sb.hostPath(h, APP.binaryPath))]

function show(run: ActionRun): void {
  if (process.env.ZD_SHOW_LOG || run.code !== 0) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
}

async function holdBoth(over: Record<string, string> = {}): Promise<void> {
  const run = await runAction(inputs(over))
  show(run)
  expect([run.code, run.outputs.result]).toEqual([0, 'parked'])
  expect(results(run)).toEqual(byHost('parked'))
}

/** Held: the new process alone serves the new binary, the old one kept, the watchdog armed, the record names both. */
async function expectHeld(h: SandboxHost): Promise<void> {
  const newPid = appPid(sb, h)
  // The old process exits by itself after its drain; the hold run waited for it.
  expect([h.address, appProcesses(h), ...runs(h), sha(sb.hostPath(h, KEPT))]).toEqual([
    h.address,
    [newPid],
    v2,
    v2,
    v1
  ])
  const rec = JSON.parse(readFileSync(sb.hostPath(h, HELD), 'utf8')) as {
    kind: string
    version: number
    revert: string
    previousPath: string
    old: { pid: number; sha256: string }
    new: { pid: number; sha256: string }
  }
  expect([rec.kind, rec.version, rec.revert, rec.previousPath]).toEqual(['zerodown-held', 2, 'handoff', KEPT])
  expect([rec.old.pid, rec.old.sha256, rec.new.pid, rec.new.sha256]).toEqual([
    originals.get(h.address),
    v1,
    newPid,
    v2
  ])
  expect(watchdogs(h)).toHaveLength(1)
}

/** One process serves, running what `want` names, with nothing of the hold left. */
async function expectSettled(h: SandboxHost, want: string): Promise<void> {
  // The process handed over from drains and exits by itself: bounded wait for it.
  await until(() => appProcesses(h).length === 1, 20_000)
  expect([h.address, appProcesses(h), ...runs(h)]).toEqual([h.address, [appPid(sb, h)], want, want])
  expect([
    h.address,
    existsSync(sb.hostPath(h, HELD)),
    existsSync(sb.hostPath(h, KEPT)),
    watchdogs(h)
  ]).toEqual([h.address, false, false, []])
}

describe('held tableflip fleet', () => {
  it('hold, then abort: both hosts hand over back to their original binary; no failed request', async () => {
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
      for (const h of sb.hosts) await expectHeld(h)
      const abort = await runAction(finish('abort'))
      show(abort)
      expect([abort.code, abort.outputs.result]).toEqual([0, 'rolled-back'])
      expect(results(abort)).toEqual(byHost('rolled-back'))
      for (const h of sb.hosts) {
        await expectSettled(h, v1)
        expect(appPid(sb, h)).not.toBe(originals.get(h.address))
      }
      const again = await runAction(finish('abort'))
      expect([again.code, again.outputs.result]).toEqual([0, 'unchanged'])
      expect(again.log).toMatch(/nothing held here/)
    } finally {
      await sleep(300)
      const traffic = await load.stop()
      console.log(describeLoad('held tableflip: hold then abort, host 1, connection per request', traffic))
      expect([describeLoad('load', traffic), traffic.failed, traffic.failures]).toEqual([
        describeLoad('load', traffic),
        0,
        {}
      ])
      expect(traffic.ok).toBeGreaterThan(0)
    }
  })

  it('hold, then commit: the new release stays and the store records it; commit twice is harmless', async () => {
    await holdBoth()
    const held = new Map(sb.hosts.map(h => [h.address, appPid(sb, h)]))
    for (const h of sb.hosts) await expectHeld(h)
    const commit = await runAction(finish('commit'))
    show(commit)
    expect([commit.code, commit.outputs.result]).toEqual([0, 'upgraded'])
    expect(results(commit)).toEqual(byHost('upgraded'))
    for (const h of sb.hosts) {
      await expectSettled(h, v2)
      expect(appPid(sb, h)).toBe(held.get(h.address))
      const state = JSON.parse(readFileSync(sb.hostPath(h, `${STORE}/state.json`), 'utf8')) as {
        live?: string
      }
      expect(state.live).toBe(v2)
    }
    const again = await runAction(finish('commit'))
    expect([again.code, again.outputs.result]).toEqual([0, 'unchanged'])
    for (const h of sb.hosts) expect(appPid(sb, h)).toBe(held.get(h.address))
  })

  it('a held host nobody finishes is handed back by its watchdog at hold-timeout; abort then reports it', async () => {
    await holdBoth({ 'hold-timeout': '3s' })
    // Bounded wait for the watchdogs (they check their deadline every second, then hand over).
    await until(() => sb.hosts.every(h => watchdogs(h).length === 0), 90_000, 100)
    for (const h of sb.hosts) {
      await until(() => appProcesses(h).length === 1, 20_000)
      expect([h.address, appProcesses(h), ...runs(h), watchdogs(h)]).toEqual([
        h.address,
        [appPid(sb, h)],
        v1,
        v1,
        []
      ])
    }
    const abort = await runAction(finish('abort'))
    show(abort)
    expect([abort.code, abort.outputs.result]).toEqual([0, 'rolled-back'])
    expect(abort.log).toMatch(/watchdog already handed it back to the previous binary/)
    for (const h of sb.hosts) await expectSettled(h, v1)
  })

  it('a host of the shard fails its health gate: the one already handed over hands back in the same run', async () => {
    const [a, b] = sb.hosts as [SandboxHost, SandboxHost]
    for (const h of sb.hosts) {
      writeFileSync(sb.hostPath(h, FAIL_FILE), '')
      originals.set(
        h.address,
        appStart(sb, h, { variant: '1.0.0', reset: true, args: ['-health-fail-file', FAIL_FILE] })
      )
    }
    // Only b's new version fails its health checks; a passes and waits for the shard.
    writeFileSync(sb.hostPath(b, FAIL_FILE), '2.0.0\n')
    const run = await runAction(inputs())
    expect(run.code).toBe(1)
    expect(results(run)).toEqual(byHost('rolled-back'))
    for (const h of [a, b]) await expectSettled(h, v1)
    expect(appPid(sb, a)).not.toBe(originals.get(a.address))
    const abort = await runAction(finish('abort'))
    expect([abort.code, abort.outputs.result]).toEqual([0, 'unchanged'])
  })

  it('refuses a record whose new process is not the one it names, signals nothing, and finishes once it is right', async () => {
    const [a, b] = sb.hosts as [SandboxHost, SandboxHost]
    await holdBoth()
    const path = sb.hostPath(a, HELD)
    const text = readFileSync(path, 'utf8')
    const rec = JSON.parse(text) as { new: { startTime: string } }
    rec.new.startTime = String(Number(rec.new.startTime) + 1)
    writeFileSync(path, JSON.stringify(rec))
    const pid = appPid(sb, a)
    const refused = await runAction(finish('abort'))
    expect(refused.code).toBe(1)
    expect(refused.log).toMatch(/no longer the new process the hold run recorded/)
    expect(results(refused)).toEqual({ [label(a)]: 'failed', [label(b)]: 'rolled-back' })
    // Refused before its watchdog was told: it still guards the host, which still serves the new binary.
    expect([appPid(sb, a), ...runs(a), watchdogs(a).length]).toEqual([pid, v2, v2, 1])
    await expectSettled(b, v1)
    writeFileSync(path, text)
    const abort = await runAction(finish('abort'))
    expect([abort.code, results(abort)]).toEqual([0, { [label(a)]: 'rolled-back', [label(b)]: 'unchanged' }])
    await expectSettled(a, v1)
  })
})
