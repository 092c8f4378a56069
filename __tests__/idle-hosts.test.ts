/**
 * idle-connections (src/fleet/idle.ts): hosts that wait in a rollout keep their connection up to
 * a budget, the longest waiting detached first; a detached host's lock and watchdog are renewed
 * a third of their lease apart (each renewal is a login), an attached one's as before. Pure logic
 * and timers with fakes; idle-connections.test.ts shows it on sshd through the bundle.
 */
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals'
import { silentLogger } from '../src/engine/types.js'
import type { ExecResult, Host } from '../src/host/host.js'
import { IdleHosts } from '../src/fleet/idle.js'
import { ACQUIRE, RENEW } from '../src/safety/lock-scripts.js'
import { HostLock } from '../src/safety/lock.js'
import { EXTEND_SCRIPT } from '../src/safety/watchdog-scripts.js'
import { holdObserver } from '../src/safety/watchdog-steps.js'
import type { HostSafety, SafetyOptions } from '../src/safety/guard.js'

/** A host that counts the scripts it ran and can be detached. */
function fakeHost(name: string) {
  const ran: string[] = []
  const host = {
    name,
    address: name,
    sudo: false,
    detached: false,
    detach(on: boolean) {
      this.detached = on
    },
    run(argv: readonly string[]): Promise<ExecResult> {
      const script = argv[2]
      if (script === ACQUIRE) return Promise.resolve({ stdout: 'acquired\n', stderr: '', code: 0 })
      if (script === RENEW) ran.push('renew')
      if (script === EXTEND_SCRIPT) ran.push('extend')
      const stdout = script === RENEW ? 'renewed\n' : script === EXTEND_SCRIPT ? 'extended\n' : ''
      return Promise.resolve({ stdout, stderr: '', code: 0 })
    }
  }
  return { host: host as unknown as Host & { detached: boolean }, ran }
}

describe('IdleHosts: a budget of open connections for waiting hosts', () => {
  it('detaches the longest waiting hosts beyond the budget, and attaches a host that goes on', () => {
    const idle = new IdleHosts(2)
    const hosts = ['a', 'b', 'c', 'd'].map(n => fakeHost(n).host)
    hosts.forEach(h => idle.rest(h))
    expect(hosts.map(h => h.detached)).toEqual([true, true, false, false])
    expect(idle.detached).toBe(2)

    idle.wake(hosts[0])
    expect(hosts[0]!.detached).toBe(false)
    expect(idle.detached).toBe(1)
    // One more waits: the longest waiting of the connected ones (c) is detached.
    const e = fakeHost('e').host
    idle.rest(e)
    expect([...hosts, e].map(h => h.detached)).toEqual([false, true, true, false, false])
  })

  it('with a budget of 0 detaches every waiting host; a host that cannot detach is left alone', () => {
    const idle = new IdleHosts(0)
    const { host } = fakeHost('a')
    idle.rest(host)
    expect(host.detached).toBe(true)
    const plain = { name: 'p' } as Host
    expect(() => idle.rest(plain)).not.toThrow()
    expect(() => idle.wake(plain)).not.toThrow()
    expect(idle.detached).toBe(1)
  })

  it('counts a host once when it rests twice', () => {
    const idle = new IdleHosts(1)
    const a = fakeHost('a').host
    const b = fakeHost('b').host
    idle.rest(a)
    idle.rest(a)
    expect(a.detached).toBe(false)
    idle.rest(b)
    expect([a.detached, b.detached]).toEqual([true, false])
  })
})

describe('renewals of a detached host: a third of the lease apart', () => {
  beforeEach(() => {
    jest.useFakeTimers()
  })
  afterEach(() => {
    jest.useRealTimers()
  })

  const TEN_MINUTES = 10 * 60_000

  async function lockRenewals(detached: boolean): Promise<number> {
    const { host, ran } = fakeHost('web1')
    host.detached = detached
    // A 15-minute lease: renewed every minute while attached, every 5 minutes detached.
    const lock = await HostLock.acquire(host, {
      path: '/var/lib/zerodown/nginx/lock',
      token: 't',
      leaseMs: 15 * 60_000,
      owner: {} as never
    })
    await jest.advanceTimersByTimeAsync(TEN_MINUTES)
    await lock.release()
    return ran.filter(r => r === 'renew').length
  }

  it('the deploy lock: 10 renewals in 10 minutes attached, 2 detached', async () => {
    expect(await lockRenewals(false)).toBe(10)
    expect(await lockRenewals(true)).toBe(2)
  })

  async function watchdogExtensions(detached: boolean): Promise<number> {
    const { host, ran } = fakeHost('web1')
    host.detached = detached
    const s: HostSafety = { host, armed: true, releaseDir: '/var/lib/zerodown/nginx' }
    const o = { watchdogLeaseMs: 60_000, token: 't', log: silentLogger } as unknown as SafetyOptions
    const journal = { update: () => undefined } as never
    // Parked: a 10-minute lease, extended every 30 s attached; every 200 s or more detached.
    holdObserver(s, o, journal)('held', {} as never)
    await jest.advanceTimersByTimeAsync(TEN_MINUTES)
    clearInterval(s.heartbeat)
    return ran.filter(r => r === 'extend').length
  }

  it("the parked host's watchdog: 21 extensions in 10 minutes attached, 3 detached", async () => {
    expect(await watchdogExtensions(false)).toBe(21)
    expect(await watchdogExtensions(true)).toBe(3)
  })
})
