/**
 * Strategy upstream when the run does not end by itself, on real parts (the upstream sandbox on
 * 127.0.6.2-5: an nginx load balancer and three backends behind real sshd), the bundle run as
 * GitHub runs it, connection-per-request load through the load balancer all along:
 *
 * - the action SIGKILLed while a host is out of the block (no post step): the load balancer's
 *   watchdog puts the block back at its lease's end; no request fails;
 * - the same with the host's backend dead by then: the watchdog leaves that server down (it does
 *   not answer from the load balancer) and puts the rest back; the post step, once the backend is
 *   healthy again, puts it back in;
 * - the same with the load balancer's configuration broken meanwhile: the watchdog's nginx -t
 *   fails, it puts back what it replaced and reloads nothing;
 * - the post step alone (the watchdog not expired yet): it disarms the watchdog, puts the healthy
 *   server back in, and leaves nothing of ours behind;
 * - mode: rollback with strategy upstream: a deployed release goes back through the drain.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
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
import { LB_WATCHDOG_SCRIPTS, probeLines } from '../src/strategies/upstream/lb-watchdog.js'
import { parseManagedFile, withServerState } from '../src/strategies/upstream/managed-file.js'
import { runAction, sandboxInputs } from './helpers/action.js'
import { processesOf, runMain, runPost, stateFile } from './helpers/safety.js'
import { until } from './helpers/ssh.js'

const STATE = '/var/lib/zerodown/upstream/app'
const WATCHDOG = `${STATE}/watchdog`

describe('the load balancer watchdog: its pieces', () => {
  it.each(Object.entries(LB_WATCHDOG_SCRIPTS))('%s is valid POSIX sh (dash -n)', (_name, script) => {
    const r = spawnSync('dash', ['-n'], { input: script, encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('lists the lines of every server that differs from the original, and only those', () => {
    const text =
      'upstream app {\n    server a:80 weight=3;\n    server b:80\n        weight=3;\n    server c:80;\n}\n'
    const original = parseManagedFile(text, 'app')
    expect(probeLines(original, text, 'app')).toBe('')
    let now = withServerState(original, 'a:80', { down: true, weight: 3 })
    now = withServerState(parseManagedFile(now, 'app'), 'b:80', { down: false, weight: 1 })
    // b's weight sits on its second line; c did not change.
    expect(probeLines(original, now, 'app')).toBe('2 a:80\n4 b:80\n')
  })
})

let u: UpstreamSandbox
let v1: string

function inputs(binary: string, over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(u.sb, u.backends),
    strategy: 'upstream',
    binary,
    'binary-path': APP_PATH,
    'restart-command': RESTART,
    'upstream-host': `${u.sb.user}@${u.lb.address}:${u.lb.sshPort}`,
    'upstream-file': UPSTREAM_FILE,
    'upstream-name': 'app',
    'upstream-server': `{host}:${APP_PORT}`,
    'health-url': `http://{host}:${APP_PORT}/health`,
    ...over
  }
}

/** Bounded connection-per-request load through the load balancer. */
function load(): RunningLoad {
  return startLoad({
    host: u.lb.address,
    port: u.lb.httpPort,
    path: '/',
    concurrency: 4,
    maxRequests: 100_000,
    maxMs: 120_000
  })
}

const lbFile = (p: string) => u.sb.hostPath(u.lb, p)
const watchdogs = () => processesOf(u.sb, u.lb, /zerodown-lb-watchdog/)
const server = (i: number) => `${u.backends[i]!.address}:${APP_PORT}`
/** Leftovers of ours beside the managed file (temporary files of a write). */
const besideFile = () => fs.readdirSync(lbFile('/srv/app/conf')).filter(f => f.includes('zerodown'))

describe('strategy upstream, interrupted (real load balancer, bundle run as GitHub runs it)', () => {
  beforeAll(async () => {
    u = await upstreamSandbox({ sandboxUp, first: 2, backends: 3, net: '127.0.6' })
    v1 = u.build('1.0.0')
  }, 120_000)

  afterAll(() => u?.down())

  beforeEach(async () => {
    for (const b of u.backends) {
      // Locks and release stores of a killed run are not the next test's business.
      fs.rmSync(u.sb.hostPath(b, '/var/lib/zerodown/app'), { recursive: true, force: true })
      await u.install(b, v1)
    }
    u.resetLoadBalancer()
  })

  it('SIGKILL while a host is out: the watchdog puts the block back at its lease end; no request fails', async () => {
    const state = stateFile()
    const i = inputs(u.build('2.0.0'), { 'upstream-watchdog-lease': '5s' })
    const l = load()
    const run = await runMain(i, state, { kill: { when: /restart-command returned/, signal: 'SIGKILL' } })
    expect(run.signal).toBe('SIGKILL')
    expect(run.log).toMatch(/watchdog \d+ armed on the load balancer: if this run vanishes, it puts .* back/)
    expect(u.upstreamFile()).toContain(`server ${server(0)} weight=3 max_fails=3 fail_timeout=15s down;`)
    const result = await until(
      () =>
        fs.existsSync(lbFile(`${WATCHDOG}/result`)) && fs.readFileSync(lbFile(`${WATCHDOG}/result`), 'utf8'),
      30_000,
      200
    )
    if (result !== 'restored\n') console.log(fs.readFileSync(lbFile(`${WATCHDOG}/log`), 'utf8'))
    expect(result).toBe('restored\n')
    // A few more requests through the block as it is now, then the load stops.
    await new Promise(r => setTimeout(r, 1000))
    const traffic = await l.stop()
    console.log(describeLoad('connection per request (SIGKILL, watchdog)', traffic))
    expect(u.upstreamFile()).toBe(u.initialFile)
    expect(traffic.requests).toBeGreaterThan(50)
    expect(traffic.failed).toBe(0)
    expect(await until(() => watchdogs().length === 0, 5000)).toBe(true)
    // Its note stays (who decided, what it did, its log); its other files, and the copy of the file as found, are gone.
    expect(fs.readdirSync(lbFile(WATCHDOG)).sort()).toEqual(['decided', 'log', 'result', 'token', 'verdict'])
    expect(fs.readFileSync(lbFile(`${WATCHDOG}/log`), 'utf8')).toMatch(/nginx -t passed; reloaded/)
    expect(fs.existsSync(lbFile(`${STATE}/original`))).toBe(false)
    expect(fs.readFileSync(lbFile(`${STATE}/written`), 'utf8')).toBe(u.initialFile)
    expect(besideFile()).toEqual([])
    // The post step (post-if: always()) finds the block restored and releases the locks.
    const post = await runPost(i, state)
    expect(post.code).toBe(0)
    expect(post.log).toMatch(
      /the run's watchdog on the load balancer: it reached its deadline first and acted: restored/
    )
    expect(fs.existsSync(lbFile(`${STATE}/lock`))).toBe(false)
    expect(u.upstreamFile()).toBe(u.initialFile)
    // The next run accepts the file the watchdog wrote as the action's own, says what the watchdog did, and finishes the rollout.
    const next = await runAction(i)
    expect(next.log).toContain("the load balancer's watchdog of an earlier run ended: restored")
    expect(next.outputs.result).toBe('upgraded')
    for (const b of u.backends) expect(await u.version(b)).toBe('2.0.0')
    expect(u.upstreamFile()).toBe(u.initialFile)
  })

  it('SIGKILL, then the host dies: the watchdog keeps it down and puts nothing unhealthy in; post puts it back once healthy', async () => {
    const state = stateFile()
    const i = inputs(u.build('2.0.0'), { 'upstream-watchdog-lease': '5s' })
    const l = load()
    const run = await runMain(i, state, { kill: { when: /restart-command returned/, signal: 'SIGKILL' } })
    expect(run.signal).toBe('SIGKILL')
    // The backend that was out dies before the lease ends: it refuses connections.
    u.sb.nginxStop(u.backends[0]!)
    const result = await until(
      () =>
        fs.existsSync(lbFile(`${WATCHDOG}/result`)) && fs.readFileSync(lbFile(`${WATCHDOG}/result`), 'utf8'),
      30_000,
      200
    )
    expect(result).toBe(`restored-partly: ${server(0)}\n`)
    expect(u.upstreamFile()).toBe(
      u.initialFile.replace(
        `${server(0)} weight=3 max_fails=3 fail_timeout=15s;`,
        `${server(0)} weight=3 max_fails=3 fail_timeout=15s down;`
      )
    )
    // The file as found stays for the post step (or the next run).
    expect(fs.readFileSync(lbFile(`${STATE}/original`), 'utf8')).toBe(u.initialFile)
    await u.install(u.backends[0]!, v1)
    const post = await runPost(i, state)
    const traffic = await l.stop()
    console.log(describeLoad('connection per request (dead backend, watchdog, post)', traffic))
    expect(post.code).toBe(0)
    expect(post.log).toContain(`zerodown post: ${server(0)} is back in upstream app`)
    expect(u.upstreamFile()).toBe(u.initialFile)
    expect(fs.existsSync(lbFile(`${STATE}/original`))).toBe(false)
    expect(traffic.failed).toBe(0)
  })

  it('SIGKILL, then the configuration breaks: the watchdog puts back what it replaced, reloads nothing, leaves a note', async () => {
    const state = stateFile()
    const i = inputs(u.build('2.0.0'), { 'upstream-watchdog-lease': '5s' })
    const conf = lbFile('/srv/app/conf/nginx.conf')
    const good = fs.readFileSync(conf, 'utf8')
    try {
      const run = await runMain(i, state, { kill: { when: /restart-command returned/, signal: 'SIGKILL' } })
      expect(run.signal).toBe('SIGKILL')
      const left = u.upstreamFile()
      fs.writeFileSync(conf, good.replace('access_log off;', 'access_log off; no_such_directive on;'))
      const workers = u.sb.nginxWorkers(u.lb, u.sb.readPid(u.lb)!)
      const result = await until(
        () =>
          fs.existsSync(lbFile(`${WATCHDOG}/result`)) &&
          fs.readFileSync(lbFile(`${WATCHDOG}/result`), 'utf8'),
        30_000,
        200
      )
      expect(result).toBe('not-done: nginx -t failed\n')
      expect(fs.readFileSync(lbFile(`${WATCHDOG}/log`), 'utf8')).toMatch(
        /nginx -t failed with the restored file, so what it replaced is back and nothing was reloaded: .*unknown directive "no_such_directive"/
      )
      expect(u.upstreamFile()).toBe(left)
      // Nothing reloaded: no new worker (the old workers of the run's own reload may still be
      // finishing their connections when `workers` is read, and leave meanwhile).
      const after = u.sb.nginxWorkers(u.lb, u.sb.readPid(u.lb)!)
      expect(after.length).toBeGreaterThan(0)
      expect(after.filter(pid => !workers.includes(pid))).toEqual([])
      expect(besideFile()).toEqual([])
      // Once the configuration is fixed, the post step puts the server back.
      fs.writeFileSync(conf, good)
      const post = await runPost(i, state)
      expect(post.code).toBe(0)
      expect(post.log).toContain(`zerodown post: ${server(0)} is back in upstream app`)
      expect(u.upstreamFile()).toBe(u.initialFile)
    } finally {
      fs.writeFileSync(conf, good)
    }
  })

  it('the post step alone: disarms the watchdog, puts the healthy server back, leaves nothing of ours', async () => {
    const state = stateFile()
    const i = inputs(u.build('2.0.0'))
    const l = load()
    const run = await runMain(i, state, { kill: { when: /restart-command returned/, signal: 'SIGKILL' } })
    expect(run.signal).toBe('SIGKILL')
    expect(u.upstreamFile()).not.toBe(u.initialFile)
    expect(watchdogs()).toHaveLength(1)
    const post = await runPost(i, state)
    const traffic = await l.stop()
    console.log(describeLoad('connection per request (SIGKILL, post step)', traffic))
    expect(post.code).toBe(0)
    expect(post.log).toContain("the run's watchdog on the load balancer: disarmed")
    expect(post.log).toContain(`zerodown post: ${server(0)} is back in upstream app`)
    expect(u.upstreamFile()).toBe(u.initialFile)
    expect(traffic.failed).toBe(0)
    // Nothing of ours: no watchdog (process or files), no copy of the file as found, no lock, no temp file.
    expect(await until(() => watchdogs().length === 0, 5000)).toBe(true)
    expect(fs.readdirSync(lbFile(STATE)).sort()).toEqual(['written'])
    expect(besideFile()).toEqual([])
    for (const b of u.backends)
      expect(fs.existsSync(u.sb.hostPath(b, '/var/lib/zerodown/app/lock'))).toBe(false)
  })

  it('mode: rollback with strategy upstream: the deployed release goes back through the drain, zero failed requests', async () => {
    const deployed = await runAction(inputs(u.build('2.0.0')))
    expect(deployed.outputs.result).toBe('upgraded')
    for (const b of u.backends) expect(await u.version(b)).toBe('2.0.0')
    const l = load()
    const r = await runAction({ ...inputs(''), mode: 'rollback' })
    const traffic = await l.stop()
    console.log(describeLoad('connection per request (mode: rollback)', traffic))
    expect(r.outputs.result).toBe('upgraded')
    for (const b of u.backends) expect(await u.version(b)).toBe('1.0.0')
    // Each host went out, was drained, and came back.
    expect(r.log).toMatch(/down \(out for the upgrade\); nginx -t passed, reloaded/)
    expect((r.log.match(/connection\(s\) from the load balancer to/g) ?? []).length).toBeGreaterThanOrEqual(3)
    expect(traffic.requests).toBeGreaterThan(50)
    expect(traffic.failed).toBe(0)
    expect(u.upstreamFile()).toBe(u.initialFile)
    expect(watchdogs()).toEqual([])
    expect(fs.existsSync(lbFile(WATCHDOG))).toBe(false)
  })
})
