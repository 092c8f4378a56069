/**
 * Strategy upstream when another run takes over, on real parts (the upstream sandbox on
 * 127.0.8.2-4: an nginx load balancer and two backends behind real sshd), the bundle run as
 * GitHub runs it, connection-per-request load through the load balancer:
 *
 * - the load balancer's deploy lock rewritten by another owner mid-rollout: the run stops before
 *   its next step and rolls back, naming the load balancer and the new owner; the file comes back
 *   as found, and the copy of the file as found is left to the new owner;
 * - a backend's own deploy lock taken the same way: the same, naming that backend;
 * - a run that takes over from a vanished run stands the vanished run's load-balancer watchdog
 *   down when it opens the load balancer: the old watchdog, past its deadline, never puts its file
 *   over the newer run's (with the newer run's own watchdog, and with watchdog: false).
 *
 * Each run's health gate on the backends waits for a file the test creates, so that what the test
 * does happens while a host is out of the block, never by timing.
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
import { sandboxInputs, type ActionRun } from './helpers/action.js'
import { processesOf, runMain, stateFile } from './helpers/safety.js'
import { until } from './helpers/ssh.js'

const STATE = '/var/lib/zerodown/upstream/app'
const LB_LOCK = `${STATE}/lock`
const WATCHDOG = `${STATE}/watchdog`
const HOST_LOCK = '/var/lib/zerodown/app/lock'
/** The health gate on each backend: it passes once `go` exists (`a-`: run A's, which never passes). */
const WAITING = '/srv/app/zd-gate-waiting'
const GO = '/srv/app/zd-gate-go'
const GO_A = '/srv/app/zd-gate-a-go'
const gate = (waiting: string, go: string) =>
  `touch ${waiting}; i=0; while [ ! -e ${go} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done; [ -e ${go} ]`
const GATE = gate(WAITING, GO)
const GATE_A = gate('/srv/app/zd-gate-a-waiting', GO_A)
const OTHER_OWNER = 'token=someone-else\nlease=900\nrepository=octo/other\nrun_id=777\nactor=mallory\n'

let u: UpstreamSandbox
let v1: string

const github = (run: string) => ({
  GITHUB_REPOSITORY: 'octo/shop',
  GITHUB_RUN_ID: run,
  GITHUB_RUN_ATTEMPT: '1',
  GITHUB_SHA: 'c0ffee0123456789c0ffee0123456789c0ffee01',
  GITHUB_WORKFLOW: 'deploy'
})

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
    'health-url': '',
    'health-command': GATE,
    'health-checks': '1',
    'health-timeout': '150s',
    'lock-lease': '10s',
    ...over
  }
}

function load(): RunningLoad {
  return startLoad({
    host: u.lb.address,
    port: u.lb.httpPort,
    path: '/',
    concurrency: 4,
    maxRequests: 100_000,
    maxMs: 150_000
  })
}

const lbFile = (p: string) => u.sb.hostPath(u.lb, p)
const onBackend = (i: number, p: string) => u.sb.hostPath(u.backends[i]!, p)
const server = (i: number) => `${u.backends[i]!.address}:${APP_PORT}`
const lbName = () => `${u.lb.address}:${u.lb.sshPort}`
const hostName = (i: number) => `${u.backends[i]!.address}:${u.backends[i]!.sshPort}`
const watchdogs = () => processesOf(u.sb, u.lb, /zerodown-lb-watchdog/)
const isDown = (text: string, i: number) =>
  text.includes(`server ${server(i)} weight=3 max_fails=3 fail_timeout=15s down;`)

/** Lets every backend's health gate pass from now on. */
function go(): void {
  for (const [i] of u.backends.entries()) fs.writeFileSync(onBackend(i, GO), '')
}

/** Runs the main step, keeping its log readable while it runs. */
function start(i: Record<string, string>, run: string) {
  let log = ''
  let done = false
  const result = runMain(i, stateFile(), {
    env: github(run),
    timeoutMs: 240_000,
    onLog: c => void (log += c)
  }).finally(() => (done = true))
  return { result, log: () => log, done: () => done }
}

/** Rewrites the owner of a lock on a sandbox host, as another run that took it would. */
function steal(h: (typeof u.backends)[number], lock: string): void {
  const w = u.sb.exec(h, ['sh', '-c', 'printf "%s" "$1" > "$2/owner"', 'sh', OTHER_OWNER, lock])
  expect(w.status).toBe(0)
}

beforeAll(async () => {
  u = await upstreamSandbox({ sandboxUp, first: 2, backends: 2, net: '127.0.8' })
  v1 = u.build('1.0.0')
}, 120_000)

afterAll(() => u?.down())

beforeEach(async () => {
  for (const [i, b] of u.backends.entries()) {
    fs.rmSync(onBackend(i, '/var/lib/zerodown/app'), { recursive: true, force: true })
    fs.rmSync(onBackend(i, WAITING), { force: true })
    fs.rmSync(onBackend(i, GO), { force: true })
    fs.rmSync(onBackend(i, GO_A), { force: true })
    await u.install(b, v1)
  }
  fs.rmSync(lbFile(STATE), { recursive: true, force: true })
  u.resetLoadBalancer()
})

describe('strategy upstream: a lock taken over mid-rollout stops the run, which rolls back', () => {
  /** Rewrites `lock` while host 0 waits in its health gate (out of the block), then lets the gate pass. */
  async function stolenMidRollout(owner: (typeof u.backends)[number], lock: string): Promise<ActionRun> {
    const l = load()
    const run = start(inputs(u.build('2.0.0')), '8101')
    try {
      expect(await until(() => fs.existsSync(onBackend(0, WAITING)) || run.done(), 90_000)).toBe(true)
      expect(run.done()).toBe(false)
      expect(isDown(u.upstreamFile(), 0)).toBe(true)
      steal(owner, lock)
      // The renewal that finds the lock in other hands says so; then the gate passes.
      await until(
        () => run.log().includes(`the deploy lock ${lock} is no longer held by this run`) || run.done(),
        60_000
      )
      go()
      const result = await run.result
      const traffic = await l.stop()
      console.log(describeLoad(`connection per request (${lock} taken over)`, traffic))
      expect(traffic.failed).toBe(0)
      expect(traffic.requests).toBeGreaterThan(20)
      return result
    } finally {
      go()
      await run.result
      await l.stop()
    }
  }

  it("the load balancer's lock: stops before back-in, rolls back, names the load balancer and the new owner", async () => {
    const result = await stolenMidRollout(u.lb, LB_LOCK)
    expect(result.log).toContain(
      `${lbName()}: this run lost the load balancer's deploy lock ${LB_LOCK} while it worked on the hosts behind it: another run holds it now: octo/other run 777`
    )
    expect(result.log).toContain('by mallory')
    expect(result.log).toMatch(
      /Stopping here and rolling back, so that two runs never change the load balancer at once/
    )
    expect(result.outputs.result).toBe('rolled-back')
    expect(result.code).not.toBe(0)
    // Host 0 never went back in with the new version; the second host was never touched.
    expect(result.log).not.toMatch(/back in at weight 3 \(.*new version/)
    for (const b of u.backends) expect(await u.version(b)).toBe('1.0.0')
    expect(u.upstreamFile()).toBe(u.initialFile)
    // The lock stays its new owner's, and so does the copy of the file as this run found it.
    expect(fs.readFileSync(lbFile(`${LB_LOCK}/owner`), 'utf8')).toContain('token=someone-else')
    expect(fs.readFileSync(lbFile(`${STATE}/original`), 'utf8')).toBe(u.initialFile)
    expect(await until(() => watchdogs().length === 0, 10_000)).toBe(true)
  })

  it("a backend's own lock: stops before back-in, rolls back, names that backend and the new owner", async () => {
    const result = await stolenMidRollout(u.backends[0]!, HOST_LOCK)
    expect(result.log).toContain(
      `${hostName(0)}: this run lost the deploy lock ${HOST_LOCK} while it worked on the host: another run holds it now: octo/other run 777`
    )
    expect(result.log).toContain('by mallory')
    expect(result.outputs.result).toBe('rolled-back')
    expect(result.code).not.toBe(0)
    for (const b of u.backends) expect(await u.version(b)).toBe('1.0.0')
    expect(u.upstreamFile()).toBe(u.initialFile)
    expect(fs.readFileSync(onBackend(0, `${HOST_LOCK}/owner`), 'utf8')).toContain('token=someone-else')
    // The load balancer's lock was this run's all along: released.
    expect(fs.existsSync(lbFile(LB_LOCK))).toBe(false)
  })
})

describe("strategy upstream: a run that takes over stands the vanished run's load-balancer watchdog down", () => {
  /** Seconds since the epoch of a file's last change on the host (the same clock as the sandbox hosts'). */
  const changedAt = (path: string) => fs.statSync(path).mtimeMs / 1000

  it.each(['true', 'false'])(
    'watchdog: %s: the old watchdog, past its deadline, never puts its file over the new run; the new run finishes',
    async watchdog => {
      // Run A is killed while host 0 is out of the block; its watchdog waits for a deadline 40 s on.
      // Its health gate never passes: a kill that lands late still finds host 0 out.
      const a = await runMain(
        inputs(u.build('2.0.0'), { 'upstream-watchdog-lease': '40s', 'health-command': GATE_A }),
        stateFile(),
        {
          env: github('8201'),
          kill: { when: /restart-command returned/, signal: 'SIGKILL' }
        }
      )
      expect(a.signal).toBe('SIGKILL')
      const [old] = watchdogs()
      expect(old).toBeDefined()
      const deadline = Number(fs.readFileSync(lbFile(`${WATCHDOG}/deadline`), 'utf8'))
      const tokenA = fs.readFileSync(lbFile(`${WATCHDOG}/token`), 'utf8').trim()
      expect(tokenA).toMatch(/^8201\.1-/)
      expect(isDown(u.upstreamFile(), 0)).toBe(true)
      // Run A's locks (lock-lease 10s) run out; run B takes them over.
      const stale = () =>
        Date.now() / 1000 > changedAt(lbFile(`${LB_LOCK}/owner`)) + 11 &&
        Date.now() / 1000 > changedAt(onBackend(0, `${HOST_LOCK}/owner`)) + 11
      expect(await until(stale, 30_000, 200)).toBe(true)
      const l = load()
      const b = start(inputs(u.build('3.0.0'), { watchdog }), '8202')
      try {
        // B has host 0 out of the block and waits in its health gate, before any other write.
        expect(await until(() => fs.existsSync(onBackend(0, WAITING)) || b.done(), 90_000)).toBe(true)
        expect(b.done()).toBe(false)
        // A's watchdog is gone, and its deadline has passed: it did not act, and never will.
        expect(
          await until(() => !watchdogs().includes(old!) && Date.now() / 1000 > deadline + 1, 60_000, 200)
        ).toBe(true)
        expect(isDown(u.upstreamFile(), 0)).toBe(true)
        expect(fs.readFileSync(lbFile(`${WATCHDOG}/result`), 'utf8')).toBe('superseded\n')
        expect(fs.readFileSync(lbFile(`${WATCHDOG}/log`), 'utf8')).toContain('decided by another: superseded')
        expect(b.log()).toContain(
          `stood down the load balancer's watchdog of an earlier run (${tokenA}) before reading the file`
        )
        go()
        const result = await b.result
        const traffic = await l.stop()
        console.log(describeLoad(`connection per request (takeover, watchdog: ${watchdog})`, traffic))
        expect(result.log).toContain('took over the deploy lock')
        expect(result.log).not.toContain("the load balancer's watchdog of an earlier run ended")
        expect(result.outputs.result).toBe('upgraded')
        expect(result.code).toBe(0)
        for (const x of u.backends) expect(await u.version(x)).toBe('3.0.0')
        expect(u.upstreamFile()).toBe(u.initialFile)
        expect(traffic.failed).toBe(0)
        // B's own watchdog (watchdog: true) was armed and disarmed; nothing waits on the load balancer.
        expect(await until(() => watchdogs().length === 0, 10_000)).toBe(true)
        expect(fs.existsSync(lbFile(LB_LOCK))).toBe(false)
        expect(fs.existsSync(lbFile(`${STATE}/original`))).toBe(false)
      } finally {
        // Load first: a rollback of B drains host 0, which waits for the load's connections.
        await l.stop()
        go()
        await b.result
        // Run A's gate, if it started before the kill, ends.
        fs.writeFileSync(onBackend(0, GO_A), '')
      }
    },
    180_000
  )
})
