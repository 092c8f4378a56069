/**
 * The dead man's switch, against a real sandbox host: an upgrade left half-done by hand (swap,
 * USR2, maybe WINCH), then the watchdog alone, with the SSH connection gone. At its deadline it
 * brings the old master back (HUP when its workers were told to stop), stops the new master, and
 * puts the old binary back, while connection-per-request clients see no failure. Confirmed or
 * cancelled in time, it does nothing. Every script is POSIX sh.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import {
  decideWatchdog,
  extendWatchdog,
  inspectWatchdog,
  startWatchdog,
  waitForWatchdog,
  WATCHDOG_SCRIPTS,
  watchdogScript,
  WatchdogBusyError,
  watchdogLeaseMs,
  type WatchdogPlan
} from '../src/safety/watchdog.js'
import { nginx } from '../src/supervisors/nginx/index.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { hostOptions, sleep, sshdSessions, until } from './helpers/ssh.js'
import { loadGenerator, processesOf } from './helpers/safety.js'

const LIVE = '/srv/app/sbin/nginx'
const PREV = '/srv/app/sbin/.nginx.zerodown-prev'
const DIR = '/var/lib/zerodown/nginx/watchdog'
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('watchdog: the scripts', () => {
  it.each(Object.entries({ ...WATCHDOG_SCRIPTS, watchdog: watchdogScript(nginx.watchdog) }))(
    '%s is valid POSIX sh (dash -n)',
    (_name, script) => {
      const r = spawnSync('dash', ['-n'], { input: script, encoding: 'utf8' })
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
    }
  )
  it('takes every value as a positional parameter: no script holds a path, pid or token', () => {
    for (const script of Object.values({ ...WATCHDOG_SCRIPTS, watchdog: watchdogScript(nginx.watchdog) })) {
      expect(script).not.toMatch(/\/srv\/|\/run\/nginx|\/var\/lib\/zerodown/)
      expect(script).not.toContain('@{')
    }
  })
  it('gives the upgrade its start, health and drain timeouts plus a margin', () => {
    expect(
      watchdogLeaseMs({ startTimeoutMs: 30_000, healthTimeoutMs: 60_000, drainTimeoutMs: 300_000 })
    ).toBe(439_000)
    expect(watchdogLeaseMs({ startTimeoutMs: 2000, healthTimeoutMs: 3000, drainTimeoutMs: 2000 })).toBe(
      17_700
    )
  })
})

describe('watchdog: on a real host', () => {
  let sb: Sandbox
  let h: SandboxHost
  let oldBinary: Buffer
  const open: SshHost[] = []
  const connect = async () => {
    const host = await SshHost.connect(hostOptions(sb, h))
    open.push(host)
    return host
  }
  const real = (p: string) => sb.hostPath(h, p)
  const watchdogs = () => processesOf(sb, h, /zerodown-watchdog/)

  /** What the action does up to USR2 (and WINCH), by hand; returns the old and new master pids. */
  async function halfUpgrade(
    host: SshHost,
    o: { winch: boolean }
  ): Promise<{ oldPid: number; newPid: number }> {
    const oldPid = sb.readPid(h)!
    const steps = [
      ['cp', '--', LIVE, '/srv/app/sbin/.nginx.zerodown-new'],
      [
        'sh',
        '-c',
        'printf "\\nwatchdog test build %s\\n" "$1" >> "$2"',
        'sh',
        String(Date.now()),
        '/srv/app/sbin/.nginx.zerodown-new'
      ],
      ['ln', '-f', '--', LIVE, PREV],
      ['mv', '-f', '--', '/srv/app/sbin/.nginx.zerodown-new', LIVE],
      ['kill', '-s', 'USR2', String(oldPid)]
    ]
    for (const argv of steps) expect((await host.run(argv)).code).toBe(0)
    const newPid = await until(() => {
      const p = sb.readPid(h)
      return p !== oldPid && p !== null && sb.nginxWorkers(h, p).length > 0 ? p : 0
    }, 10_000)
    expect(newPid).toBeGreaterThan(0)
    if (o.winch) {
      expect((await host.run(['kill', '-s', 'WINCH', String(oldPid)])).code).toBe(0)
      expect(await until(() => sb.nginxWorkers(h, oldPid).length === 0, 10_000)).toBe(true)
    }
    expect(readFileSync(real(LIVE)).equals(oldBinary)).toBe(false)
    return { oldPid, newPid }
  }

  const plan = (oldPid: number, over: Partial<WatchdogPlan> = {}): WatchdogPlan => ({
    dir: DIR,
    token: 'run-1',
    pidFile: '/run/nginx.pid',
    oldPid,
    livePath: LIVE,
    previousPath: PREV,
    oldSha256: sha(oldBinary),
    leaseMs: 2000,
    part: nginx.watchdog,
    ...over
  })

  beforeAll(() => {
    sb = sandboxUp({ first: 62, count: 1 })
    h = sb.hosts[0]!
    oldBinary = readFileSync(real(LIVE))
  })
  beforeEach(() => {
    sb.nginxStart(h, { reset: true }) // also ends any watchdog left by a failed test
  })
  afterAll(async () => {
    await Promise.all(open.map(o => o.close()))
    sb?.down()
  })

  it.each([
    ['after WINCH (no old worker accepts): HUP first', true],
    ['right after USR2 (old workers still accept)', false]
  ])(
    'alone, with the connection gone, rolls the host back at its deadline %s; clients see no failure',
    async (_what, winch) => {
      const host = await connect()
      const { oldPid, newPid } = await halfUpgrade(host, { winch })
      const load = loadGenerator(h.address, h.httpPort, { concurrency: 4, maxMs: 60_000 })
      let result: string | false
      try {
        const wd = await startWatchdog(host, plan(oldPid))
        expect(watchdogs()).toContain(wd.pid)
        // The runner vanishes: its connection and its sshd session are gone; the watchdog is not.
        await host.close()
        for (const pid of sshdSessions(h)) process.kill(pid, 'SIGKILL')
        const resultFile = real(`${DIR}/result`)
        result = await until(() => existsSync(resultFile) && readFileSync(resultFile, 'utf8'), 20_000)
        await sleep(300)
      } finally {
        await load.stop()
      }
      const traffic = await load.stop()

      expect(result).toBe('rolled-back\n')
      expect(sb.readPid(h)).toBe(oldPid)
      expect(existsSync(real('/run/nginx.pid.oldbin'))).toBe(false)
      expect(sb.nginxMasters(h)).toEqual([oldPid])
      expect(sb.isAlive(newPid)).toBe(false)
      expect(sb.nginxWorkers(h, oldPid).length).toBeGreaterThan(0)
      expect(readFileSync(real(LIVE)).equals(oldBinary)).toBe(true)
      expect(await until(() => watchdogs().length === 0, 5000)).toBe(true)
      const log = readFileSync(real(`${DIR}/log`), 'utf8')
      expect(log).toContain('no word from the action by the deadline: rolling back')
      expect(log.includes(`sent HUP to the old master ${oldPid}`)).toBe(winch)
      expect(log).toContain(`sent QUIT to the new master ${newPid}`)
      expect(log).toContain(`put the old binary back at ${LIVE}`)
      expect(traffic.ok).toBeGreaterThan(20)
      expect(traffic).toMatchObject({ failed: 0, errors: [] })
    }
  )

  it('confirmed before its deadline, exits at once and changes nothing', async () => {
    const host = await connect()
    const { oldPid, newPid } = await halfUpgrade(host, { winch: true })
    const wd = await startWatchdog(host, plan(oldPid, { leaseMs: 3000 }))
    const t0 = Date.now()
    expect(await decideWatchdog(host, DIR, 'run-1', 'confirm')).toEqual({ decided: true, verdict: 'confirm' })
    expect(Date.now() - t0).toBeLessThan(3000)
    expect(sb.isAlive(wd.pid)).toBe(false)
    await sleep(4000) // past the deadline
    expect(sb.readPid(h)).toBe(newPid)
    expect(sb.isAlive(oldPid)).toBe(true)
    expect(readFileSync(real(LIVE)).equals(oldBinary)).toBe(false)
    const state = await inspectWatchdog(host, DIR)
    expect(state).toMatchObject({ running: false, verdict: 'confirm', result: 'confirm' })
    // A second word from the action (the settle after the confirm) is its own decision again.
    expect(await decideWatchdog(host, DIR, 'run-1', 'confirm')).toMatchObject({
      decided: false,
      verdict: 'confirm'
    })
  })

  it('is started once per run, refuses a second run while armed, and obeys cancel', async () => {
    const host = await connect()
    const oldPid = sb.readPid(h)!
    const a = await startWatchdog(host, plan(oldPid, { leaseMs: 60_000 }))
    // The same run again (a swap step retried after a lost connection): the same watchdog.
    expect((await startWatchdog(host, plan(oldPid, { leaseMs: 60_000 }))).pid).toBe(a.pid)
    const busy = await startWatchdog(host, plan(oldPid, { token: 'run-2' })).catch(e => e as Error)
    expect(busy).toBeInstanceOf(WatchdogBusyError)
    expect((busy as Error).message).toContain(
      `a watchdog of another run (run-1) is still armed (pid ${a.pid}`
    )
    expect(await decideWatchdog(host, DIR, 'run-2', 'cancel')).toMatchObject({
      decided: false,
      verdict: 'not-ours'
    })
    expect(sb.isAlive(a.pid)).toBe(true)
    expect(await decideWatchdog(host, DIR, 'run-1', 'cancel')).toEqual({ decided: true, verdict: 'cancel' })
    expect(watchdogs()).toEqual([])
    expect((await inspectWatchdog(host, DIR))?.result).toBe('cancel')
  })

  it('moves its deadline when extended, and tells a late action what it did', async () => {
    const host = await connect()
    const { oldPid } = await halfUpgrade(host, { winch: false })
    await startWatchdog(host, plan(oldPid, { leaseMs: 2000 }))
    expect(await extendWatchdog(host, DIR, 'run-1', 6000)).toBe(true)
    expect((await inspectWatchdog(host, DIR))?.deadlineInMs).toBeGreaterThan(4000)
    await sleep(3000)
    expect(sb.readPid(h)).not.toBe(oldPid) // still mid-upgrade: the deadline moved
    const end = await waitForWatchdog(host, DIR, 15_000)
    expect(end).toMatchObject({ running: false, verdict: 'rollback', result: 'rolled-back' })
    expect(sb.readPid(h)).toBe(oldPid)
    // The action comes back too late: it learns that the watchdog acted, and what came of it.
    expect(await decideWatchdog(host, DIR, 'run-1', 'confirm')).toEqual({
      decided: false,
      verdict: 'rollback',
      result: 'rolled-back'
    })
    expect(await extendWatchdog(host, DIR, 'run-1', 6000)).toBe(false)
  })

  it('leaves a host alone whose old master is gone (the upgrade went through)', async () => {
    const host = await connect()
    const { oldPid, newPid } = await halfUpgrade(host, { winch: true })
    await startWatchdog(host, plan(oldPid, { leaseMs: 1000 }))
    expect((await host.run(['kill', '-s', 'QUIT', String(oldPid)])).code).toBe(0)
    const end = await waitForWatchdog(host, DIR, 15_000)
    expect(end?.result).toBe('nothing')
    expect(sb.readPid(h)).toBe(newPid)
    expect(readFileSync(real(LIVE)).equals(oldBinary)).toBe(false)
  })

  it('takes a state dir with shell metacharacters literally', async () => {
    const host = await connect()
    const dir = `/var/lib/zerodown/x'$(touch /tmp/pwned-wd)\`touch /tmp/pwned-wd2\`;y/watchdog`
    const oldPid = sb.readPid(h)!
    const wd = await startWatchdog(host, plan(oldPid, { dir, leaseMs: 60_000 }))
    expect(existsSync(real(`${dir}/pid`))).toBe(true)
    expect(await decideWatchdog(host, dir, 'run-1', 'cancel')).toEqual({ decided: true, verdict: 'cancel' })
    expect(sb.isAlive(wd.pid)).toBe(false)
    expect(existsSync(real('/tmp/pwned-wd'))).toBe(false)
    expect(existsSync(real('/tmp/pwned-wd2'))).toBe(false)
  })
})
