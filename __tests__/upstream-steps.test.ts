/**
 * The order of the upstream strategy's steps and undos, through the real engine, with a fake host
 * (files by sha256, a server that runs the live file) and a fake load balancer (server states).
 * The real thing is proven in upstream-rollout.test.ts.
 */
import { describe, expect, it } from '@jest/globals'
import { HostRun } from '../src/engine/engine.js'
import type { ExecResult, Host } from '../src/host/host.js'
import { SWAP } from '../src/strategies/hot-upgrade/install.js'
import { upstreamStrategy } from '../src/strategies/upstream/index.js'
import type { LoadBalancer } from '../src/strategies/upstream/load-balancer.js'
import type { ServerState } from '../src/strategies/upstream/managed-file.js'
import type { CanaryPlan } from '../src/strategies/upstream/parts.js'
import { recordingLogger, upstreamPlan } from './helpers/upstream.js'

const OLD = 'a'.repeat(64)
const NEW = 'b'.repeat(64)
const LIVE = '/srv/app/bin/app'

function fakeHost(healthy: (sha: string) => boolean) {
  const files = new Map<string, string>([[LIVE, OLD]])
  const events: string[] = []
  let running = OLD
  const ok = (stdout = ''): ExecResult => ({ stdout, stderr: '', code: 0 })
  const host: Host = {
    name: 'web1',
    address: 'web1',
    sudo: false,
    async run(argv) {
      const [cmd, ...args] = argv
      const paths = args.filter(a => a.startsWith('/'))
      if (cmd === 'sha256sum') {
        const sha = files.get(paths[0]!)
        return sha ? ok(`${sha}  ${paths[0]}`) : { stdout: '', stderr: 'No such file', code: 1 }
      }
      if (cmd === 'ln') files.set(paths[1]!, files.get(paths[0]!)!)
      if (cmd === 'mv') {
        files.set(paths[1]!, files.get(paths[0]!)!)
        files.delete(paths[0]!)
        events.push(`live ${files.get(LIVE) === NEW ? 'new' : 'old'}`)
      }
      if (cmd === 'rm') files.delete(paths[0]!)
      if (cmd === 'sh' && argv[2] === SWAP) {
        // The swap script: the staged file checked, the live one kept, the staged one renamed in.
        const [staging, sha, live, kept] = argv.slice(4) as [string, string, string, string]
        if (files.get(staging) !== sha) return { stdout: files.get(staging) ?? 'none', stderr: '', code: 3 }
        files.set(kept, files.get(live)!)
        files.set(live, sha)
        files.delete(staging)
        events.push(`live ${files.get(LIVE) === NEW ? 'new' : 'old'}`)
        return ok()
      }
      if (cmd === 'sh') {
        running = files.get(LIVE)!
        events.push(`restart ${running === NEW ? 'new' : 'old'}`)
      }
      return ok()
    },
    async upload(_local, remote) {
      files.set(remote, NEW)
      return null // a host that does not say the sha256: the steps read it
    },
    async readFile() {
      return null
    },
    async http() {
      return healthy(running) ? { status: 200, body: 'ok' } : { status: 503, body: 'no' }
    },
    async close() {}
  }
  return { host, events, files }
}

function fakeLb(events: string[], canaryFails = false): LoadBalancer {
  let state: ServerState = { down: false, weight: 3 }
  const fake = {
    o: { name: 'app', file: '/etc/nginx/app.conf' },
    host: { name: 'lb1' },
    master: { exe: '/usr/sbin/nginx', configArgs: [], pid: 1 },
    stateNow: () => state,
    fullState: () => ({ down: false, weight: 3 }),
    async setServer(_a: string, to: ServerState) {
      state = to
      events.push(to.down ? 'lb down' : `lb weight ${to.weight}`)
      return [11, 12]
    },
    traffic: {
      async waitDrained() {
        events.push('drained')
        return true
      },
      logAddresses: async () => ['10.0.0.1:80'],
      logMarks: async () => new Map([['/log', 0]]),
      async tallySince(_m: unknown, _b: unknown, into: { tries: number; failed: number }) {
        into.tries += 10
        into.failed += canaryFails ? 5 : 0
        return into
      }
    }
  }
  return fake as unknown as LoadBalancer
}

async function run(o: { healthy: (sha: string) => boolean; canary?: CanaryPlan; canaryFails?: boolean }) {
  const { host, events, files } = fakeHost(o.healthy)
  const lb = fakeLb(events, o.canaryFails)
  const strategy = upstreamStrategy({
    lb,
    plan: upstreamPlan({ health: { url: 'http://{host}/health', checks: 2, intervalMs: 1, timeoutMs: 200 } }),
    addressOf: () => 'web1:80',
    canaryOf: () => o.canary ?? null
  })
  const lines: string[] = []
  const plan = strategy.plan(host, { sha256: NEW, localPath: '/dev/null' }, recordingLogger(lines))
  const report = await new HostRun(
    host,
    { steps: plan.steps, repair: plan.repair },
    { log: recordingLogger(lines) }
  ).run()
  return { report, events, files, lines }
}

describe('strategy upstream: steps and undos in order', () => {
  it('out, drained, swapped, restarted, healthy, back at its weight', async () => {
    const r = await run({ healthy: () => true })
    expect(r.report.result).toBe('upgraded')
    expect(r.report.steps.map(s => s.name)).toEqual([
      'preflight',
      'upload',
      'down',
      'drain',
      'swap',
      'restart',
      'health',
      'back-in'
    ])
    expect(r.events).toEqual(['lb down', 'drained', 'live new', 'restart new', 'lb weight 3'])
    expect(r.report.weights?.map(w => w.weight)).toEqual([3, 'down', 3])
  })

  it('a new version that never becomes healthy: the previous one back, restarted, checked, then back in', async () => {
    const r = await run({ healthy: sha => sha === OLD })
    expect(r.report.result).toBe('rolled-back')
    expect(r.report.failedStep).toBe('health')
    expect(r.events).toEqual([
      'lb down',
      'drained',
      'live new',
      'restart new',
      'live old',
      'restart old',
      'lb weight 3'
    ])
    expect(r.files.get(LIVE)).toBe(OLD)
  })

  it('a canary above max-error-rate: out again and drained before the previous version comes back', async () => {
    const r = await run({
      healthy: () => true,
      canary: { weight: 1, durationMs: 10, maxErrorRate: 0.01 },
      canaryFails: true
    })
    expect(r.report.result).toBe('rolled-back')
    expect(r.report.failedStep).toBe('back-in')
    expect(r.report.error).toMatch(/the canary failed: 5 of 10 tries failed \(50\.0%\)/)
    expect(r.events).toEqual([
      'lb down',
      'drained',
      'live new',
      'restart new',
      'lb weight 1',
      'lb down',
      'drained',
      'live old',
      'restart old',
      'lb weight 3'
    ])
  })

  it('a canary within max-error-rate gets its full weight', async () => {
    const r = await run({ healthy: () => true, canary: { weight: 1, durationMs: 10, maxErrorRate: 0.01 } })
    expect(r.report.result).toBe('upgraded')
    expect(r.report.weights?.map(w => w.weight)).toEqual([3, 'down', 1, 3])
    expect(r.report.steps.find(s => s.name === 'back-in')!.observations.join('\n')).toContain(
      'the canary passed: 0 of 10 tries failed'
    )
  })

  it('never puts back a server whose previous version does not answer either: it stays down, with repair advice', async () => {
    const r = await run({ healthy: () => false })
    expect(r.report.result).toBe('failed')
    expect(r.report.rollbackError).toContain('web1:80 stays down in upstream app')
    expect(r.events.at(-1)).toBe('restart old')
    expect(r.events).not.toContain('lb weight 3')
    expect(r.report.repair?.[0]).toMatch(/^# state: server web1:80 is down in upstream app on lb1/)
  })
})
