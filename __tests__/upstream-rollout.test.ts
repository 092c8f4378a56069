/**
 * Strategy upstream on real parts: an nginx load balancer (127.0.0.140) and three backends
 * (127.0.0.141-143) running a plain server that cannot hand over its sockets, restarted by a
 * restart-command, all behind real sshd. Connection-per-request load goes THROUGH the load
 * balancer while the rollout runs; the load balancer's own log must show that no request was
 * retried on another server (a drain that works, not retries hiding a missing one).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import * as fs from 'node:fs'
import { sandboxUp } from '../test/sandbox/sandbox.js'
import {
  APP_PATH,
  APP_PORT,
  RESTART,
  UPSTREAM_FILE,
  upstreamSandbox,
  type UpstreamSandbox
} from '../test/sandbox/upstream.js'
import { describeLoad, startLoad, type RunningLoad } from '../test/load.js'
import { SshHost } from '../src/host/ssh-host.js'
import { LoadBalancer } from '../src/strategies/upstream/load-balancer.js'
import { runUpstream } from './helpers/upstream.js'
import { runAction, sandboxInputs } from './helpers/action.js'
import { hostOptions } from './helpers/ssh.js'

let u: UpstreamSandbox
let v1: string

beforeAll(async () => {
  u = await upstreamSandbox({ sandboxUp, first: 140, backends: 3 })
  v1 = u.build('1.0.0')
}, 120_000)

afterAll(() => u?.down())

beforeEach(async () => {
  for (const b of u.backends) await u.install(b, v1)
  u.resetLoadBalancer()
})

/** Connection-per-request load through the load balancer, plus slow requests (1 s each) in flight. */
function load(): { fast: RunningLoad; slow: RunningLoad; logFrom: number } {
  const logFrom = u.accessLog().length
  const lb = { host: u.lb.address, port: u.lb.httpPort }
  return {
    logFrom,
    fast: startLoad({ ...lb, path: '/', concurrency: 4, maxRequests: 200_000, maxMs: 120_000 }),
    slow: startLoad({ ...lb, path: '/slow', concurrency: 2, maxRequests: 1000, maxMs: 120_000 })
  }
}

/** Lines of the load balancer's log since `from` in which nginx tried more than one server. */
function retried(from: number): string[] {
  return u
    .accessLog()
    .slice(from)
    .split('\n')
    .filter(l => l.split('\t')[2]?.includes(','))
}

describe('strategy upstream through a real nginx load balancer', () => {
  it('rolls out three backends with zero failed and zero retried requests; the file comes back byte for byte', async () => {
    const v2 = u.build('2.0.0')
    const l = load()
    const run = await runUpstream(u, v2)
    const fast = await l.fast.stop()
    const slow = await l.slow.stop()
    console.log(describeLoad('connection per request', fast))
    console.log(describeLoad('slow requests', slow))
    expect(run.error).toBeUndefined()
    expect(run.reports.map(r => r.result)).toEqual(['upgraded', 'upgraded', 'upgraded'])
    for (const b of u.backends) expect(await u.version(b)).toBe('2.0.0')
    expect(fast.requests).toBeGreaterThan(100)
    expect(fast.failed).toBe(0)
    expect(slow.requests).toBeGreaterThan(3)
    expect(slow.failed).toBe(0)
    const again = retried(l.logFrom)
    console.log(`requests nginx retried on another server: ${again.length}`)
    expect(again).toEqual([])
    expect(u.upstreamFile()).toBe(u.initialFile)
    // Each host: out, then back at its weight (3); every drain ended with no connection left.
    for (const r of run.reports) {
      expect(r.weights?.map(w => w.weight)).toEqual([3, 'down', 3])
      expect(r.drain.at(-1)?.oldWorkers).toBe(0)
    }
    // The load balancer no longer keeps the file as the run found it (the run finished).
    expect(fs.existsSync(u.sb.hostPath(u.lb, '/var/lib/zerodown/upstream/app/original'))).toBe(false)
  })

  it('rolls back a canary that answers 500 to a third of its requests (max-error-rate); clients see no failure', async () => {
    const flaky = u.build('2.0.0-flaky', { failEvery: 3 })
    const l = load()
    const run = await runUpstream(u, flaky, { canary: { weight: 1, durationMs: 3000, maxErrorRate: 0.01 } })
    const fast = await l.fast.stop()
    await l.slow.stop()
    console.log(describeLoad('connection per request', fast))
    expect(run.error).toBeUndefined()
    expect(run.reports).toHaveLength(1)
    const [canary] = run.reports
    expect(canary!.result).toBe('rolled-back')
    expect(canary!.failedStep).toBe('back-in')
    expect(canary!.error).toMatch(/the canary failed: \d+ of \d+ tries failed .* above max-error-rate 1%/)
    // down, canary at 1, out again for the rollback, back at 3 with the previous version
    expect(canary!.weights?.map(w => w.weight)).toEqual([3, 'down', 1, 'down', 3])
    for (const b of u.backends) expect(await u.version(b)).toBe('1.0.0')
    // nginx passed each 500 on to another server (proxy_next_upstream http_500): no client saw one.
    expect(fast.failed).toBe(0)
    expect(u.upstreamFile()).toBe(u.initialFile)
  })

  it('rolls back a host whose new version never becomes healthy, and the host before it (rollback-fleet)', async () => {
    // The first host takes the good build; the second gets a build that never answers 200 on /health.
    const good = u.build('2.0.0')
    const sick = u.build('2.0.0-sick', { healthy: false })
    const l = load()
    const run = await runUpstream(u, [good, sick, good])
    const fast = await l.fast.stop()
    await l.slow.stop()
    console.log(describeLoad('connection per request', fast))
    expect(run.reports.map(r => r.result)).toEqual(['rolled-back', 'rolled-back'])
    expect(run.reports[1]!.failedStep).toBe('health')
    expect(run.reports[1]!.error).toMatch(/did not pass 3 health checks in a row/)
    expect(run.reports[1]!.weights?.map(w => w.weight)).toEqual([3, 'down', 3])
    // The first host passed, then went out again, back to 1.0.0, and in.
    expect(run.reports[0]!.weights?.map(w => w.weight)).toEqual([3, 'down', 3, 'down', 3])
    for (const b of u.backends) expect(await u.version(b)).toBe('1.0.0')
    expect(fast.failed).toBe(0)
    expect(u.upstreamFile()).toBe(u.initialFile)
  })

  it('refuses a file changed by someone else since its last write, showing the difference', async () => {
    const v2 = u.build('2.0.0')
    // A run writes the file (and keeps what it wrote); then someone edits it by hand.
    expect((await runUpstream(u, v2)).reports.map(r => r.result)).toEqual([
      'upgraded',
      'upgraded',
      'upgraded'
    ])
    const edited = u.initialFile.replace('keepalive 8;', 'keepalive 16;')
    fs.writeFileSync(u.sb.hostPath(u.lb, UPSTREAM_FILE), edited)
    const run = await runUpstream(u, u.build('3.0.0'))
    expect(run.error).toContain('was changed by someone else since this action last wrote it')
    expect(run.error).toContain('-    keepalive 8;')
    expect(run.error).toContain('+    keepalive 16;')
    expect(u.upstreamFile()).toBe(edited)
    for (const b of u.backends) expect(await u.version(b)).toBe('2.0.0')
  })

  it('stops before taking a host out when the SSH user may not write beside its binary, naming the folder and the fix', async () => {
    const b = u.backends[0]!
    const bin = u.sb.hostPath(b, '/srv/app/bin')
    const owner = fs.statSync(bin)
    const before = fs.readdirSync(bin)
    fs.chownSync(bin, 0, 0)
    try {
      const run = await runUpstream(u, u.build('2.0.0'))
      expect(run.error).toBeUndefined()
      expect(run.reports).toHaveLength(1)
      const [r] = run.reports
      expect(r!.result).toBe('failed')
      expect(r!.failedStep).toBe('upload')
      expect(r!.error).toMatch(
        /cannot write the staging file \/srv\/app\/bin\/\.app\.zerodown-new: the SSH user may not write in \/srv\/app\/bin, .* Give the folder to the deploy user \(chown\), or set sudo: true/
      )
      // Never taken out of the block; nothing new beside the binary; still the old version.
      expect(r!.weights?.map(w => w.weight)).toEqual([3])
      expect(u.upstreamFile()).toBe(u.initialFile)
      expect(fs.readdirSync(bin)).toEqual(before)
      for (const x of u.backends) expect(await u.version(x)).toBe('1.0.0')
    } finally {
      fs.chownSync(bin, owner.uid, owner.gid)
    }
  })

  it('puts the previous file back when nginx -t fails, and reloads nothing', async () => {
    const lbHost = await SshHost.connect(hostOptions(u.sb, u.lb))
    const conf = u.sb.hostPath(u.lb, '/srv/app/conf/nginx.conf')
    const good = fs.readFileSync(conf, 'utf8')
    try {
      const lb = await LoadBalancer.open(lbHost, {
        file: UPSTREAM_FILE,
        name: 'app',
        pidFile: '/run/nginx.pid',
        stateDir: '/var/lib/zerodown/upstream/app',
        pollMs: 100,
        reloadTimeoutMs: 10_000,
        needLog: false,
        note: () => undefined
      })
      // Another part of the configuration breaks after the run read it.
      fs.writeFileSync(conf, good.replace('access_log off;', 'access_log off; no_such_directive on;'))
      const workers = u.sb.nginxWorkers(u.lb, u.sb.readPid(u.lb)!)
      const address = `${u.backends[0]!.address}:${APP_PORT}`
      await expect(lb.setServer(address, { down: true, weight: 3 }, 'test')).rejects.toThrow(
        /nginx -t failed after setting .* to down, so the previous .* was put back and nothing was reloaded: .*unknown directive "no_such_directive"/
      )
      expect(u.upstreamFile()).toBe(u.initialFile)
      // Nothing reloaded: no new worker. (Old workers of an earlier test's reload may still be
      // finishing their connections when `workers` is read, and leave meanwhile.)
      const after = u.sb.nginxWorkers(u.lb, u.sb.readPid(u.lb)!)
      expect(after.length).toBeGreaterThan(0)
      expect(after.filter(pid => !workers.includes(pid))).toEqual([])
      expect(
        fs.readdirSync(u.sb.hostPath(u.lb, '/srv/app/conf')).filter(f => f.includes('zerodown'))
      ).toEqual([])
    } finally {
      fs.writeFileSync(conf, good)
      await lbHost.close()
    }
  })

  it('through the action (dist/index.js): strategy upstream rolls out the backends, the summary shows the weights', async () => {
    const v3 = u.build('3.0.0')
    const l = load()
    const r = await runAction({
      ...sandboxInputs(u.sb, u.backends),
      strategy: 'upstream',
      binary: v3,
      'binary-path': APP_PATH,
      'restart-command': RESTART,
      'upstream-host': `${u.sb.user}@${u.lb.address}:${u.lb.sshPort}`,
      'upstream-file': UPSTREAM_FILE,
      'upstream-name': 'app',
      'upstream-server': `{host}:${APP_PORT}`,
      'health-url': `http://{host}:${APP_PORT}/health`,
      'canary-duration': '2s'
    })
    const fast = await l.fast.stop()
    await l.slow.stop()
    console.log(describeLoad('connection per request (action)', fast))
    expect(r.outputs.result).toBe('upgraded')
    for (const b of u.backends) expect(await u.version(b)).toBe('3.0.0')
    expect(fast.failed).toBe(0)
    expect(u.upstreamFile()).toBe(u.initialFile)
    expect(r.summary).toContain('### Weights in the load balancer')
  })
})
