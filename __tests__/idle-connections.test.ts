/**
 * idle-connections against real sshd + nginx (sandbox hosts 127.0.13.2-4): a detached SshHost
 * closes its connection between uses and logs in again for each; through the bundle, parked and
 * pre-staged hosts beyond the budget wait with no connection, and log in again to commit, to
 * go back to their original masters (no failed request under load), or to be left held.
 * rollout.test.ts has the same through a bastion (one bastion login for all).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { readFileSync, rmSync } from 'node:fs'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { SshHost } from '../src/host/ssh-host.js'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { hostOptions, sshdSessions, until } from './helpers/ssh.js'
import { confWith, health, hostState, sha256, writeHostFile } from './helpers/upgrade-host.js'

let sb: Sandbox
let dir: string
let build: string
let newSha: string
let oldSha: string

beforeAll(() => {
  sb = sandboxUp({ first: 2, count: 3, net: '127.0.13' })
  dir = scratchDir('zerodown-idle-')
  build = nginxBuild(dir, 'idle-v2')
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
    // A held record a failed hold case left would make the next deploy refuse the host.
    rmSync(sb.hostPath(h, '/var/lib/zerodown/nginx/held'), { force: true })
  }
})

/** Successful logins recorded by the host's sshd (LogLevel VERBOSE). */
const logins = (h: SandboxHost) =>
  [...readFileSync(`${h.root}/sshd.log`, 'utf8').matchAll(/^Accepted publickey for /gm)].length

function inputs(over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb, sb.hosts),
    binary: build,
    'health-interval': '100ms',
    'health-checks': '2',
    'health-timeout': '1s',
    'idle-connections': '0',
    ...over
  }
}

function results(run: ActionRun): HostResult[] {
  expect(run.outputs.report).toBeDefined()
  return (JSON.parse(run.outputs.report!) as { hosts: HostReport[] }).hosts.map(h => h.result)
}

/** Runs the action while every host serves a bounded load; expects no failed request anywhere. */
async function underLoad(name: string, fn: () => Promise<void>): Promise<void> {
  const loads = sb.hosts.map(h =>
    // Pages, not /health: the failing host's new master answers 503 on /health alone.
    startLoad({
      host: h.address,
      port: h.httpPort,
      path: '/',
      concurrency: 2,
      maxRequests: 100_000,
      maxMs: 120_000
    })
  )
  try {
    await fn()
  } finally {
    const done = await Promise.all(loads.map(l => l.stop()))
    done.forEach((r, i) => {
      console.log(describeLoad(`${name}, host ${i + 1}`, r))
      expect([sb.hosts[i]!.address, r.failed]).toEqual([sb.hosts[i]!.address, 0])
      expect(r.ok).toBeGreaterThan(0)
    })
  }
}

describe('a detached SshHost', () => {
  it('closes its connection when nothing uses it, logs in again for each use, and stays open once attached', async () => {
    const h = sb.hosts[0]!
    const host = await SshHost.connect(hostOptions(sb, h))
    try {
      const first = logins(h)
      // The sandbox's own check of sshd may still be closing: wait for ours alone.
      expect(await until(() => sshdSessions(h).length === 1)).toBe(true)
      host.detach(true)
      expect(await until(() => sshdSessions(h).length === 0)).toBe(true)

      // A use logs in again (the host key checked again), answers, and the connection closes again.
      expect((await host.run(['echo', 'one'])).stdout).toBe('one\n')
      expect(await until(() => sshdSessions(h).length === 0)).toBe(true)
      // Commands sent together share one login; a gate set by the first is seen by the second.
      const [a, b] = await Promise.all([
        host.run(['true'], { gate: { set: 'g' } }),
        host.run(['echo', 'two'], { gate: { need: 'g' } })
      ])
      expect([a.code, b.stdout]).toEqual([0, 'two\n'])
      expect(logins(h) - first).toBe(2)
      expect(await until(() => sshdSessions(h).length === 0)).toBe(true)

      host.detach(false)
      expect((await host.run(['echo', 'three'])).stdout).toBe('three\n')
      await new Promise(r => setTimeout(r, 300))
      expect(sshdSessions(h)).toHaveLength(1)
      expect(logins(h) - first).toBe(3)
    } finally {
      await host.close()
    }
  })
})

describe('idle-connections through the bundle', () => {
  it('parked hosts wait with their connection closed, log in again, and commit: every host upgraded', async () => {
    const before = sb.hosts.map(logins)
    await underLoad('idle-connections 0, commit', async () => {
      const run = await runAction(inputs())
      expect([run.code, run.outputs.result]).toEqual([0, 'upgraded'])
      expect(results(run)).toEqual(['upgraded', 'upgraded', 'upgraded'])
      expect(run.log).toContain('2 parked host(s) waited with their connection closed (idle-connections)')
    })
    // One login to upgrade, one to commit (the lock and watchdog renewals were minutes away); the
    // last batch's host waited through no batch: it kept its connection.
    expect(sb.hosts.map((h, i) => logins(h) - before[i]!)).toEqual([2, 2, 1])
    for (const h of sb.hosts) {
      const st = hostState(sb, h)
      expect([h.address, st.masters.length, st.liveSha256, st.oldbin]).toEqual([h.address, 1, newSha, false])
      expect(await health(h)).toBe('200 ok')
    }
  })

  it('when a later host fails, the detached parked hosts log in again and go back to their original masters', async () => {
    const [, , bad] = sb.hosts as [SandboxHost, SandboxHost, SandboxHost]
    writeHostFile(sb, bad, bad.confPath, confWith(sb, bad, 'return 200 "ok\\n";', 'return 503 "broken\\n";'))
    const pids = sb.hosts.map(h => hostState(sb, h).pid)
    const before = sb.hosts.map(logins)
    await underLoad('idle-connections 0, fleet rollback', async () => {
      const run = await runAction(inputs())
      expect([run.code, run.outputs.result]).toEqual([1, 'rolled-back'])
      expect(results(run)).toEqual(['rolled-back', 'rolled-back', 'rolled-back'])
      expect(run.log).toContain('2 parked host(s) waited with their connection closed (idle-connections)')
    })
    expect(sb.hosts.map((h, i) => logins(h) - before[i]!)).toEqual([2, 2, 1])
    for (const [i, h] of sb.hosts.entries()) {
      const st = hostState(sb, h)
      expect([h.address, st.pid, st.masters, st.liveSha256]).toEqual([h.address, pids[i], [pids[i]], oldSha])
      expect(await health(h)).toBe('200 ok')
    }
  })

  it('with hold: true, the detached hosts log in again to be left held; mode: commit then finishes them', async () => {
    const before = sb.hosts.map(logins)
    const pids = sb.hosts.map(h => hostState(sb, h).pid)
    const run = await runAction(inputs({ hold: 'true' }))
    expect([run.code, run.outputs.result]).toEqual([0, 'parked'])
    expect(results(run)).toEqual(['parked', 'parked', 'parked'])
    expect(sb.hosts.map((h, i) => logins(h) - before[i]!)).toEqual([2, 2, 1])
    // Held: the original master still holds its sockets beside the new one.
    sb.hosts.forEach((h, i) =>
      expect([h.address, hostState(sb, h).masters.includes(pids[i]!)]).toEqual([h.address, true])
    )
    const commitInputs: Record<string, string> = { ...inputs({ mode: 'commit' }) }
    delete commitInputs.binary
    const commit = await runAction(commitInputs)
    expect([commit.code, commit.outputs.result]).toEqual([0, 'upgraded'])
    for (const h of sb.hosts) {
      const st = hostState(sb, h)
      expect([h.address, st.masters.length, st.liveSha256]).toEqual([h.address, 1, newSha])
      expect(st.masters).not.toContain(pids[sb.hosts.indexOf(h)])
    }
  })

  it('pre-staged hosts wait for their batch detached too, and go on from their staged file', async () => {
    const before = sb.hosts.map(logins)
    const run = await runAction(inputs({ prestage: 'true' }))
    expect([run.code, run.outputs.result]).toEqual([0, 'upgraded'])
    expect(results(run)).toEqual(['upgraded', 'upgraded', 'upgraded'])
    // A login again after each batch a host waited through: the canary waited parked through two
    // (one login to commit), the second host pre-staged through the canary's batch and parked
    // through the last (two), the last pre-staged through two batches (one).
    expect(sb.hosts.map((h, i) => logins(h) - before[i]!)).toEqual([2, 3, 2])
    for (const h of sb.hosts) expect(hostState(sb, h).liveSha256).toBe(newSha)
  })
})
