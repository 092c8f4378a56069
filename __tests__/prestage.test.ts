/**
 * prestage: true, through the bundle (runAction, as GitHub runs it) against three real sandbox
 * hosts (sshd + nginx on 127.0.0.231-233): the new binary is uploaded and verified on every host
 * before any host is signalled, and a host that fails pre-staging stops the run before any host
 * changes, leaving nothing of ours on any host; when a later host fails its health gate, the
 * pre-staged hosts whose batch never came keep nothing of ours either.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { confWith, health, hostState, sha256, writeHostFile } from './helpers/upgrade-host.js'

let sb: Sandbox
let dir: string
let build: string
let newSha: string
let oldSha: string

beforeAll(() => {
  sb = sandboxUp({ first: 231, count: 3 })
  dir = scratchDir('zerodown-prestage-')
  build = nginxBuild(dir, 'prestage-v2')
  newSha = sha256(build)
  oldSha = sha256('/usr/sbin/nginx')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  for (const h of sb.hosts) sb.nginxStart(h, { reset: true })
})

const label = (h: SandboxHost) => `${sb.user}@${h.address}:${h.sshPort}`

function inputs(over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb),
    binary: build,
    prestage: 'true',
    // One host at a time after the canary: without pre-staging, a later host's upload would
    // come after an earlier host's USR2.
    'max-parallel': '1',
    'health-interval': '100ms',
    'health-checks': '2',
    'health-timeout': '2s',
    ...over
  }
}

interface Report {
  result: HostResult
  hosts: HostReport[]
}

function reportOf(run: ActionRun): Report {
  expect(run.outputs.report).toBeDefined()
  return JSON.parse(run.outputs.report!) as Report
}

const at = (r: HostReport, name: string, edge: 'startedAt' | 'endedAt'): number => {
  const s = r.steps.find(x => x.name === name)
  expect([r.host, name, s !== undefined]).toEqual([r.host, name, true])
  return Date.parse(s![edge])
}

/** Files of ours beside the live binary, and the deploy lock, on a host. */
function ours(h: SandboxHost): string[] {
  const sbin = readdirSync(sb.hostPath(h, '/srv/app/sbin')).filter(f => f.includes('zerodown'))
  const lock = existsSync(sb.hostPath(h, '/var/lib/zerodown/nginx/lock')) ? ['lock'] : []
  return [...sbin, ...lock]
}

describe('prestage', () => {
  it('uploads and verifies on every host before any host is signalled, then upgrades them all', async () => {
    const run = await runAction(inputs())
    expect([run.code, run.outputs.result]).toEqual([0, 'upgraded'])
    const report = reportOf(run)
    expect(report.hosts.map(r => r.result)).toEqual(['upgraded', 'upgraded', 'upgraded'])
    const lastVerify = Math.max(...report.hosts.map(r => at(r, 'verify', 'endedAt')))
    const firstSignal = Math.min(...report.hosts.map(r => at(r, 'usr2', 'startedAt')))
    expect(lastVerify).toBeLessThanOrEqual(firstSignal)
    // Each host uploaded once: the batch went on from its verified staging file.
    for (const r of report.hosts) expect(r.steps.filter(s => s.name === 'upload')).toHaveLength(1)
    expect(run.log).toMatch(/pre-stag/i)
    for (const h of sb.hosts) {
      const s = hostState(sb, h)
      expect([h.address, s.liveSha256, s.pidAlive, s.oldbin]).toEqual([h.address, newSha, true, false])
      expect(await health(h)).toBe('200 ok')
    }
  })

  it('a host that fails pre-staging stops the run before any host changes, and nothing of ours is left', async () => {
    const [a, b, c] = sb.hosts as [SandboxHost, SandboxHost, SandboxHost]
    // The running master keeps its config; the new binary's config test on c fails.
    writeHostFile(
      sb,
      c,
      c.confPath,
      confWith(sb, c, 'worker_processes', 'no_such_directive on;\nworker_processes')
    )
    const before = sb.hosts.map(h => hostState(sb, h))
    // The first case's upgrade kept its previous binary beside the live one: the run adds nothing.
    const oursBefore = sb.hosts.map(h => ours(h))
    const run = await runAction(inputs())
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    const report = reportOf(run)
    const byHost = new Map(report.hosts.map(r => [r.host, r]))
    expect(byHost.get(label(c))).toMatchObject({ result: 'failed', failedStep: 'verify' })
    for (const h of [a, b]) expect([label(h), byHost.get(label(h))?.result]).toEqual([label(h), 'untouched'])
    for (const r of report.hosts)
      expect([r.host, r.steps.map(s => s.name).filter(n => ['swap', 'usr2', 'winch'].includes(n))]).toEqual([
        r.host,
        []
      ])
    expect(run.log).toContain(label(c))
    sb.hosts.forEach((h, i) => {
      const s = hostState(sb, h)
      expect([h.address, s.pid, s.liveSha256, s.oldbin, s.masters]).toEqual([
        h.address,
        before[i]!.pid,
        oldSha,
        false,
        before[i]!.masters
      ])
      expect([h.address, ours(h)]).toEqual([h.address, oursBefore[i]])
      expect(ours(h)).not.toContain('.nginx.zerodown-new')
      expect(ours(h)).not.toContain('lock')
    })
    for (const h of sb.hosts) expect(await health(h)).toBe('200 ok')
  })
})

describe('pre-staged hosts a stopped run never reaches', () => {
  it('a later host fails its health gate: the hosts that never ran keep nothing of ours, the others go back', async () => {
    const [a, b, c] = sb.hosts as [SandboxHost, SandboxHost, SandboxHost]
    // b's new master answers 503 on /health (its running master keeps the old config).
    writeHostFile(sb, b, b.confPath, confWith(sb, b, 'return 200 "ok\\n";', 'return 503 "broken\\n";'))
    const before = sb.hosts.map(h => hostState(sb, h))
    const oursBefore = sb.hosts.map(h => ours(h))
    const run = await runAction(inputs())
    expect(run.code).toBe(1)
    const byHost = new Map(reportOf(run).hosts.map(r => [r.host, r]))
    expect([a, b, c].map(h => byHost.get(label(h))?.result)).toEqual([
      'rolled-back',
      'rolled-back',
      'untouched'
    ])
    expect(byHost.get(label(b))?.failedStep).toBe('health')
    sb.hosts.forEach((h, i) => {
      const s = hostState(sb, h)
      expect([h.address, s.pid, s.masters, s.liveSha256]).toEqual([
        h.address,
        before[i]!.pid,
        before[i]!.masters,
        oldSha
      ])
      // c was pre-staged and never ran: its staged file and its lock are gone too.
      expect([h.address, ours(h)]).toEqual([h.address, oursBefore[i]])
    })
    for (const h of [a, c]) expect(await health(h)).toBe('200 ok')
  })
})
