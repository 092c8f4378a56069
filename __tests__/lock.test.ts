/**
 * The deploy lock of a host, against a real sandbox host (sshd + its own /var/lib/zerodown):
 * atomic mkdir, the holder named to a second deploy, idempotent for its own run, released only by
 * its holder, an expired lease taken over with a warning, a race of many deploys won by exactly
 * one, and paths with shell metacharacters taken literally.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import {
  describeHolder,
  HostLock,
  LockHeldError,
  lockOwnerFromEnv,
  lockPath,
  newToken,
  readLock,
  releaseLock,
  type LockOwner
} from '../src/safety/lock.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { hostOptions, sleep } from './helpers/ssh.js'

const alice: LockOwner = {
  repository: 'octo/shop',
  runId: '4242',
  runAttempt: '2',
  workflow: 'deploy',
  commit: '0123456789abcdef0123456789abcdef01234567',
  actor: 'alice',
  runUrl: 'https://github.com/octo/shop/actions/runs/4242'
}
const bob: LockOwner = { repository: 'octo/shop', runId: '4343', commit: 'fedcba9876543210' }

describe('lock: pure parts', () => {
  it('lives in the release store', () => {
    expect(lockPath('/var/lib/zerodown/nginx')).toBe('/var/lib/zerodown/nginx/lock')
    expect(lockPath('/srv/releases/')).toBe('/srv/releases/lock')
  })
  it('makes a token of the run that no shell or file name can misread', () => {
    const t = newToken({ runId: '12;rm -rf /', runAttempt: '$(id)' })
    expect(t).toMatch(/^[A-Za-z0-9.-]+$/)
    expect(t.startsWith('12rm-rf.id-')).toBe(true)
    expect(newToken({})).toMatch(/^local-[0-9a-f]{12}$/)
    expect(newToken(alice)).not.toBe(newToken(alice))
  })
  it('reads the owner from GitHub variables, or user@machine from a terminal', () => {
    const o = lockOwnerFromEnv({
      GITHUB_REPOSITORY: 'octo/shop',
      GITHUB_RUN_ID: '7',
      GITHUB_RUN_ATTEMPT: '1',
      GITHUB_SHA: 'abc',
      GITHUB_SERVER_URL: 'https://ghe.example.com'
    })
    expect(o).toMatchObject({ repository: 'octo/shop', runId: '7', commit: 'abc' })
    expect(o.runUrl).toBe('https://ghe.example.com/octo/shop/actions/runs/7')
    expect(lockOwnerFromEnv({}).runner).toMatch(/.+@.+/)
  })
  it('describes a holder with its repository, run, commit and start', () => {
    const text = describeHolder({ ...alice, token: 't', since: '2030-01-02T03:04:05Z', leaseMs: 1, ageMs: 0 })
    expect(text).toContain('octo/shop run 4242.2')
    expect(text).toContain('commit 0123456789ab')
    expect(text).toContain('since 2030-01-02T03:04:05Z')
    expect(text).toContain('by alice')
  })
})

describe('lock: on a real host', () => {
  let sb: Sandbox
  let h: SandboxHost
  const open: SshHost[] = []
  const connect = async () => {
    const host = await SshHost.connect(hostOptions(sb, h))
    open.push(host)
    return host
  }
  const real = (p: string) => sb.hostPath(h, p)

  beforeAll(() => {
    sb = sandboxUp({ first: 61, count: 1 })
    h = sb.hosts[0]!
  })
  afterAll(async () => {
    await Promise.all(open.map(o => o.close()))
    sb?.down()
  })

  it('a second deploy fails fast, naming who holds the lock; the holder releases it', async () => {
    const a = await connect()
    const b = await connect()
    const path = '/var/lib/zerodown/nginx/lock'
    const lock = await HostLock.acquire(a, { path, token: 'run-a', leaseMs: 60_000, owner: alice })
    const owner = readFileSync(real(`${path}/owner`), 'utf8')
    expect(owner).toContain('token=run-a\n')
    expect(owner).toContain('repository=octo/shop\n')
    expect(owner).toMatch(/since=\d{4}-\d\d-\d\dT/)

    const t0 = Date.now()
    const err = await HostLock.acquire(b, { path, token: 'run-b', leaseMs: 60_000, owner: bob }).catch(e => e)
    expect(Date.now() - t0).toBeLessThan(10_000)
    expect(err).toBeInstanceOf(LockHeldError)
    const held = err as LockHeldError
    expect(held.holder).toMatchObject({
      repository: 'octo/shop',
      runId: '4242',
      token: 'run-a',
      leaseMs: 60_000
    })
    expect(held.message).toContain('another deploy holds the lock /var/lib/zerodown/nginx/lock')
    expect(held.message).toContain('octo/shop run 4242.2')
    expect(held.message).toContain('commit 0123456789ab')
    expect(held.message).toMatch(/since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/)
    expect(held.message).toContain("rm -r -- '/var/lib/zerodown/nginx/lock'")

    // The same run again (a pre-flight retried after a lost connection): it is its own lock.
    const again = await HostLock.acquire(b, { path, token: 'run-a', leaseMs: 60_000, owner: alice })
    expect(existsSync(real(`${path}/owner`))).toBe(true)
    expect(await lock.release()).toBe('released')
    expect(existsSync(real(path))).toBe(false)
    expect(await readLock(b, path)).toBeNull()
    expect(await again.release()).toBe('absent')
  })

  it('only its holder can release it', async () => {
    const a = await connect()
    const path = '/var/lib/zerodown/only-holder/lock'
    const lock = await HostLock.acquire(a, { path, token: 'holder', leaseMs: 60_000, owner: alice })
    expect(await releaseLock(a, path, 'someone-else')).toBe('not-ours')
    expect(existsSync(real(`${path}/owner`))).toBe(true)
    expect((await readLock(a, path))?.token).toBe('holder')
    expect(await lock.release()).toBe('released')
    expect(await releaseLock(a, path, 'holder')).toBe('absent')
  })

  it('renews its lease while held; a lock whose lease ran out is taken over with a warning', async () => {
    const a = await connect()
    const b = await connect()
    const path = '/var/lib/zerodown/lease/lock'
    const warnings: string[] = []
    // renewEveryMs 700: the lease (2 s) stays fresh as long as the holder lives.
    const held = await HostLock.acquire(a, {
      path,
      token: 'alive',
      leaseMs: 2000,
      owner: alice,
      renewEveryMs: 700
    })
    const m0 = statSync(real(`${path}/owner`)).mtimeMs
    await sleep(3500)
    expect(statSync(real(`${path}/owner`)).mtimeMs).toBeGreaterThan(m0)
    await expect(
      HostLock.acquire(b, { path, token: 'late', leaseMs: 2000, owner: bob })
    ).rejects.toBeInstanceOf(LockHeldError)
    await held.release()

    // A holder that vanished: no renewal (the lock of a killed run).
    const gone = await HostLock.acquire(a, {
      path,
      token: 'gone',
      leaseMs: 1000,
      owner: alice,
      renewEveryMs: 3_600_000
    })
    await sleep(2600)
    const taker = await HostLock.acquire(b, {
      path,
      token: 'taker',
      leaseMs: 60_000,
      owner: bob,
      warn: m => warnings.push(m)
    })
    expect(taker.tookOverFrom).toMatchObject({ token: 'gone', runId: '4242' })
    expect(warnings.join('\n')).toMatch(
      /took over the deploy lock .*octo\/shop run 4242\.2.*had not renewed it for/
    )
    expect((await readLock(a, path))?.token).toBe('taker')
    // The vanished run, if it comes back, finds that it lost the lock and says so.
    const lostWarnings: string[] = []
    ;(gone as unknown as { options: { warn?: (m: string) => void } }).options.warn = m => lostWarnings.push(m)
    expect(await gone.renew()).toBe('lost')
    expect(lostWarnings.join('')).toContain('is no longer held by this run')
    expect(await gone.release()).toBe('not-ours')
    expect((await readLock(a, path))?.token).toBe('taker')
    await taker.release()
  })

  it('of many deploys racing for one host, exactly one gets the lock', async () => {
    const hosts = await Promise.all(Array.from({ length: 8 }, () => connect()))
    const path = '/var/lib/zerodown/race/lock'
    const results = await Promise.allSettled(
      hosts.map((host, i) =>
        HostLock.acquire(host, {
          path,
          token: `racer-${i}`,
          leaseMs: 60_000,
          owner: { ...bob, runId: String(i) }
        })
      )
    )
    const won = results.filter(r => r.status === 'fulfilled')
    const lost = results.filter(r => r.status === 'rejected')
    expect(won).toHaveLength(1)
    expect(lost).toHaveLength(7)
    for (const r of lost) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(LockHeldError)
    const winner = (won[0] as PromiseFulfilledResult<HostLock>).value
    expect((await readLock(hosts[0]!, path))?.token).toBe(winner.options.token)
    await winner.release()
  })

  it('also races for an expired lock: one run takes it over, never two', async () => {
    const hosts = await Promise.all(Array.from({ length: 6 }, () => connect()))
    const path = '/var/lib/zerodown/stale-race/lock'
    await HostLock.acquire(hosts[0]!, {
      path,
      token: 'dead',
      leaseMs: 1000,
      owner: alice,
      renewEveryMs: 3_600_000
    })
    await sleep(2600)
    const results = await Promise.allSettled(
      hosts.map((host, i) =>
        HostLock.acquire(host, { path, token: `heir-${i}`, leaseMs: 60_000, owner: bob })
      )
    )
    const won = results.filter(r => r.status === 'fulfilled')
    expect(won).toHaveLength(1)
    const winner = (won[0] as PromiseFulfilledResult<HostLock>).value
    expect(winner.tookOverFrom?.token).toBe('dead')
    expect((await readLock(hosts[1]!, path))?.token).toBe(winner.options.token)
    expect(existsSync(real(`${path}.takeover`))).toBe(false)
    await winner.release()
  })

  it('takes paths and owner values with shell metacharacters literally', async () => {
    const a = await connect()
    const dir = `/var/lib/zerodown/we ird'$(touch /tmp/pwned-lock)\`touch /tmp/pwned-lock2\`;x*`
    const path = lockPath(dir)
    const owner: LockOwner = { repository: "o/r'; touch /tmp/pwned-owner #", runId: '1\n2', commit: '$(id)' }
    const lock = await HostLock.acquire(a, { path, token: 'meta', leaseMs: 60_000, owner })
    expect(existsSync(real(`${path}/owner`))).toBe(true)
    const text = readFileSync(real(`${path}/owner`), 'utf8')
    expect(text).toContain("repository=o/r'; touch /tmp/pwned-owner #\n")
    expect(text).toContain('run_id=1 2\n') // a line break in a value cannot forge another key
    expect(text).toContain('commit=$(id)\n')
    for (const f of ['/tmp/pwned-lock', '/tmp/pwned-lock2', '/tmp/pwned-owner'])
      expect(existsSync(real(f))).toBe(false)
    const err = await HostLock.acquire(a, { path, token: 'other', leaseMs: 60_000, owner: bob }).catch(e => e)
    expect((err as LockHeldError).holder.repository).toBe("o/r'; touch /tmp/pwned-owner #")
    expect(await lock.release()).toBe('released')
    expect(existsSync(real(path))).toBe(false)
    expect(existsSync(real(dir))).toBe(true)
  })

  it('says why when the lock cannot be created', async () => {
    const a = await connect()
    // /proc is not writable: the message names the lock and the fix.
    const err = await HostLock.acquire(a, {
      path: '/proc/zerodown/lock',
      token: 't',
      leaseMs: 60_000,
      owner: alice
    }).catch(e => e as Error)
    expect((err as Error).message).toMatch(
      /cannot take the deploy lock \/proc\/zerodown\/lock: cannot create \/proc\/zerodown.*release-dir.*sudo: true/
    )
  })
})
