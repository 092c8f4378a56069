/**
 * The deploy lock is never lost to a run that lives, and a run that lost it stops, against real
 * sandbox hosts on 127.0.2.2-3 (sshd + nginx), the bundle run as GitHub runs it:
 *
 * - renewals do not wait behind a long command: a host busy for longer than the lease keeps its
 *   lock (before, they queued in the host's one shell and a second run took the lock over);
 * - health checks that hang for longer than lock-lease in all: every attempt of a second run to
 *   take the lock is refused, and the first run finishes its upgrade;
 * - a lock rewritten by another owner mid-upgrade: the run stops at its next step and rolls back,
 *   naming the host and the new owner, with no failed request for the old nginx;
 * - a lock renewed "in the future" (the host's clock set back): the message says what is seen,
 *   and the lock is dated to the host's clock so that it runs out once its holder is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import { HostLock, LockHeldError, readLock, type LockOwner } from '../src/safety/lock.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, sandboxInputs, scratchDir } from './helpers/action.js'
import { hostFiles, loadGenerator, runMain, stateFile } from './helpers/safety.js'
import { hostOptions, sleep, until } from './helpers/ssh.js'

const LOCK = '/var/lib/zerodown/nginx/lock'
const alice: LockOwner = { repository: 'octo/shop', runId: '4242', commit: '0123456789abcdef' }
const bob: LockOwner = { repository: 'octo/shop', runId: '4343', commit: 'fedcba9876543210' }
const github = (run: string) => ({
  GITHUB_REPOSITORY: 'octo/shop',
  GITHUB_RUN_ID: run,
  GITHUB_RUN_ATTEMPT: '1',
  GITHUB_SHA: 'c0ffee0123456789c0ffee0123456789c0ffee01',
  GITHUB_WORKFLOW: 'deploy'
})

describe('lock: never lost by a run that lives; a run that lost it stops', () => {
  let sb: Sandbox
  let dir: string
  const open: SshHost[] = []
  const connect = async (h: SandboxHost) => {
    const host = await SshHost.connect(hostOptions(sb, h))
    open.push(host)
    return host
  }
  const real = (h: SandboxHost, p: string) => sb.hostPath(h, p)

  beforeAll(() => {
    sb = sandboxUp({ first: 2, count: 2, net: '127.0.2' })
    dir = scratchDir()
  })
  afterAll(async () => {
    await Promise.all(open.map(o => o.close()))
    sb?.down()
  })

  /** Tries to take the lock while `busy()` holds, once every 500 ms; returns how each attempt ended. */
  async function contend(h: SandboxHost, path: string, busy: () => boolean): Promise<string[]> {
    const b = await connect(h)
    const seen: string[] = []
    while (busy()) {
      const r = await HostLock.acquire(b, { path, token: 'intruder', leaseMs: 60_000, owner: bob }).then(
        async lock => {
          await lock.release()
          return 'taken'
        },
        (e: Error) => (e instanceof LockHeldError ? 'refused' : `error: ${e.message}`)
      )
      seen.push(r)
      await sleep(500)
    }
    return seen
  }

  it('renewals do not wait behind a command longer than the lease: a second run is refused throughout', async () => {
    const h = sb.hosts[0]!
    const a = await connect(h)
    const path = '/var/lib/zerodown/starve/lock'
    const lock = await HostLock.acquire(a, {
      path,
      token: 'busy',
      leaseMs: 5000,
      owner: alice,
      renewEveryMs: 1000
    })
    let busy = true
    // The holder's shell is busy for 12 s, more than twice the lease.
    const long = a.run(['sleep', '12']).finally(() => (busy = false))
    const seen = await contend(h, path, () => busy)
    expect((await long).code).toBe(0)
    expect(seen.length).toBeGreaterThan(5)
    expect(seen.filter(s => s !== 'refused')).toEqual([])
    expect((await readLock(a, path))?.token).toBe('busy')
    expect(await lock.release()).toBe('released')
  })

  it('health checks that take longer than lock-lease: a second run cannot take the lock over; the first finishes', async () => {
    const h = sb.hosts[0]!
    sb.nginxStart(h, { reset: true })
    const [running, passed] = ['/tmp/zd-health-running', '/tmp/zd-health-passed']
    sb.exec(h, ['rm', '-f', '--', running, passed, '/tmp/zd-health-count'])
    let done = false
    const run = runMain(
      {
        ...sandboxInputs(sb, [h]),
        binary: nginxBuild(dir, 'slow-health'),
        'health-url': '',
        // The first two checks hang until their timeout (10 s each), the third passes: the host's
        // shell is busy for 20 s, twice lock-lease (10 s, its least). Before, the renewals waited
        // behind the checks and the lease ran out in the middle of the gate.
        'health-command':
          `n=$(cat /tmp/zd-health-count 2>/dev/null || echo 0); echo $((n + 1)) > /tmp/zd-health-count; ` +
          `if [ "$n" -lt 2 ]; then touch ${running}; sleep 14; fi; touch ${passed}`,
        'health-checks': '1',
        'health-interval': '100ms',
        'health-timeout': '60s',
        'lock-lease': '10s'
      },
      stateFile(),
      { env: github('7001'), timeoutMs: 120_000 }
    ).finally(() => (done = true))
    await until(() => existsSync(real(h, running)) || done, 60_000)
    const seen = await contend(h, LOCK, () => !existsSync(real(h, passed)) && !done)
    const result = await run
    expect(seen.length).toBeGreaterThan(10)
    expect(seen.filter(s => s !== 'refused')).toEqual([])
    // Two checks hung until their timeout (exit -1), the third passed.
    expect(result.log).toMatch(/\[health\] check 1: FAIL \(health-command exited -1: /)
    expect(result.log).toMatch(/\[health\] check 3: pass 1\/1/)
    expect(result.log).not.toMatch(/took over the deploy lock|lost the deploy lock/)
    expect(result.outputs.result).toBe('upgraded')
    expect(result.code).toBe(0)
    expect(existsSync(real(h, LOCK))).toBe(false)
  })

  it('a lock rewritten by another owner mid-upgrade: the run stops, rolls back, names the new owner; no request fails', async () => {
    const h = sb.hosts[1]!
    sb.nginxStart(h, { reset: true })
    const before = hostFiles(sb, h)
    const marker = '/tmp/zd-health-running'
    const load = loadGenerator(h.address, h.httpPort, { maxMs: 90_000 })
    let done = false
    const run = runMain(
      {
        ...sandboxInputs(sb, [h]),
        binary: nginxBuild(dir, 'lock-stolen'),
        'health-url': '',
        'health-command': `touch ${marker}; sleep 4; rm -f ${marker}`,
        'health-checks': '1',
        'lock-lease': '10s'
      },
      stateFile(),
      { env: github('7002'), timeoutMs: 120_000 }
    ).finally(() => (done = true))
    try {
      // Past the cut-over (USR2), in the health gate: another owner writes the lock.
      await until(() => existsSync(real(h, marker)) || done, 60_000)
      expect(done).toBe(false)
      const owner = 'token=someone-else\nlease=900\nrepository=octo/other\nrun_id=777\nactor=mallory\n'
      const w = sb.exec(h, ['sh', '-c', 'printf "%s" "$1" > "$2/owner"', 'sh', owner, LOCK])
      expect(w.status).toBe(0)
      const result = await run
      const traffic = await load.stop()
      expect(traffic.failed).toBe(0)
      expect(traffic.ok).toBeGreaterThan(0)
      expect(result.outputs.result).toBe('rolled-back')
      expect(result.code).not.toBe(0)
      expect(result.log).toContain(`${h.address}:${h.sshPort}: this run lost the deploy lock ${LOCK}`)
      expect(result.log).toContain('another run holds it now: octo/other run 777')
      expect(result.log).toContain('by mallory')
      expect(result.log).toMatch(/Stopping here and rolling back/)
      // The old master serves with the old binary; the other owner's lock is left to it.
      const after = hostFiles(sb, h)
      expect(after.pid).toBe(before.pid)
      expect(after.binary.equals(before.binary)).toBe(true)
      expect(readFileSync(real(h, `${LOCK}/owner`), 'utf8')).toContain('token=someone-else')
    } finally {
      await load.stop()
      await run
      sb.exec(h, ['rm', '-rf', '--', LOCK])
    }
  })

  it('a lock renewed in the future (clock set back): the message says so; it runs out once dated to the clock', async () => {
    const h = sb.hosts[1]!
    const a = await connect(h)
    const b = await connect(h)
    const path = '/var/lib/zerodown/future/lock'
    await HostLock.acquire(a, { path, token: 'gone', leaseMs: 1000, owner: alice, renewEveryMs: 3_600_000 })
    // The host's clock was set back an hour after the holder's last renewal.
    expect(sb.exec(h, ['touch', '-d', '+1 hour', '--', `${path}/owner`]).status).toBe(0)
    const err = (await HostLock.acquire(b, { path, token: 'next', leaseMs: 60_000, owner: bob }).catch(
      (e: Error) => e
    )) as LockHeldError
    expect(err).toBeInstanceOf(LockHeldError)
    expect(err.holder.futureMs).toBeGreaterThan(50 * 60_000)
    expect(err.holder.redated).toBe(true)
    expect(err.message).toMatch(/its lease was renewed at a time (59m\d\ds|60m00s) ahead of the host's clock/)
    expect(err.message).toContain('This run dated the lease to the host')
    expect(err.message).not.toContain('its lease was renewed 0')
    // Dated to the host's clock: the holder is gone, so one lease (1 s) later it is taken over.
    await sleep(2600)
    const taker = await HostLock.acquire(b, { path, token: 'next', leaseMs: 60_000, owner: bob })
    expect(taker.tookOverFrom?.token).toBe('gone')
    expect(await taker.release()).toBe('released')
  })
})
