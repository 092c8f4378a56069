/** shard: i/n slicing, the held-state record's parser, and the refusals of shard, hold and the modes commit and abort. */
import { describe, expect, it } from '@jest/globals'
import { checkPairings, supervisorOf } from '../src/app.js'
import { parseShard, shardOf, shardRange } from '../src/fleet/shard.js'
import { overall, succeeded, type RolloutResult } from '../src/fleet/tally.js'
import { parseHeld } from '../src/safety/held.js'
import { parkedLease, PARKED_LEASE_MS } from '../src/safety/watchdog-steps.js'
import { SettingsError } from '../src/settings.js'
import { checkHoldPairing } from '../src/settings/hold.js'
import type { HostReport, HostResult } from '../src/engine/types.js'
import { settingsWith } from './helpers/inputs.js'

function errorOf(over: Record<string, string>): SettingsError {
  try {
    checkPairings(settingsWith(over), supervisorOf(settingsWith(over)))
  } catch (e) {
    expect(e).toBeInstanceOf(SettingsError)
    return e as SettingsError
  }
  throw new Error(`expected a SettingsError for ${JSON.stringify(over)}`)
}

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `web${i + 1}`)

describe('shard slicing', () => {
  it.each([
    [
      10,
      3,
      [
        ['web1', 'web2', 'web3', 'web4'],
        ['web5', 'web6', 'web7'],
        ['web8', 'web9', 'web10']
      ]
    ],
    [
      4,
      2,
      [
        ['web1', 'web2'],
        ['web3', 'web4']
      ]
    ],
    [5, 5, [['web1'], ['web2'], ['web3'], ['web4'], ['web5']]],
    [3, 1, [['web1', 'web2', 'web3']]]
  ])('%d hosts in %d shards: contiguous slices in the order given', (n, count, want) => {
    const got = Array.from({ length: count }, (_, k) => shardOf(hosts(n), { index: k + 1, count }))
    expect(got).toEqual(want)
  })

  it('every host is in exactly one shard, and sizes differ by one at most', () => {
    for (let total = 1; total <= 40; total++)
      for (let count = 1; count <= total; count++) {
        const ranges = Array.from({ length: count }, (_, k) => shardRange(total, { index: k + 1, count }))
        expect(ranges[0]!.from).toBe(0)
        expect(ranges.at(-1)!.to).toBe(total)
        ranges.slice(1).forEach((r, k) => expect(r.from).toBe(ranges[k]!.to))
        const sizes = ranges.map(r => r.to - r.from)
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
        expect(Math.min(...sizes)).toBeGreaterThan(0)
      }
  })

  it('parses i/n with spaces, and says what is wrong otherwise', () => {
    expect(parseShard(' 2 / 3 ', 5)).toEqual({ index: 2, count: 3 })
    expect(parseShard('2', 5)).toMatchObject({ problem: "'2' is not i/n" })
    expect(parseShard('0/3', 5)).toMatchObject({ problem: expect.stringContaining('from 1 to 3') })
    expect(parseShard('4/3', 5)).toMatchObject({ problem: expect.stringContaining('from 1 to 3') })
    expect(parseShard('1/6', 5)).toMatchObject({ problem: expect.stringContaining('a shard would be empty') })
  })

  it('hosts becomes the shard through the input', () => {
    const s = settingsWith({ hosts: hosts(5).join('\n'), shard: '2/2' })
    expect(s.hosts.map(h => h.host)).toEqual(['web4', 'web5'])
    expect(s.shard).toEqual({ index: 2, count: 2 })
    expect(settingsWith({ hosts: hosts(5).join('\n') }).hosts).toHaveLength(5)
  })
})

describe('refusals', () => {
  it.each([
    [{ shard: 'two of three' }, "Input 'shard': 'two of three' is not i/n"],
    [
      { hosts: 'web1\nweb2', shard: '1/3' },
      "Input 'shard': '1/3' asks for 3 shards but hosts lists 2 host(s)"
    ],
    [{ hold: 'maybe' }, "Input 'hold': 'maybe' is not a boolean"],
    [{ hold: 'true', 'hold-timeout': 'soon' }, "Input 'hold-timeout': 'soon' is not a duration"],
    [{ hold: 'true', 'hold-timeout': '200h' }, "Input 'hold-timeout': "],
    [{ hold: 'true', mode: 'rollback', binary: '' }, "Input 'hold': is true but mode is rollback"],
    [{ hold: 'true', watchdog: 'false' }, "Input 'hold': is true but watchdog is false"],
    [{ hold: 'true', 'rollback-fleet': 'false' }, "Input 'hold': is true but rollback-fleet is false"],
    [{ mode: 'commit' }, "Input 'binary': is set but mode is commit"],
    [{ mode: 'abort', binary: '', 'hold-timeout': '1h' }, "Input 'hold-timeout': is set but mode is abort"],
    [
      { mode: 'commit', binary: '', 'allow-downgrade': 'true' },
      "Input 'allow-downgrade': is set but mode is commit"
    ],
    [{ mode: 'commit', binary: '', prestage: 'true' }, "Input 'prestage': is set but mode is commit"],
    [{ 'hold-timeout': '1h' }, "Input 'hold-timeout': is set but hold is not true"],
    [{ mode: 'finish', binary: '' }, "Input 'mode'"]
  ])('%j', (over, message) => {
    expect(errorOf(over).message).toContain(message)
  })

  it('accepts the phases of a held fleet', () => {
    const hold = settingsWith({ hosts: hosts(4).join('\n'), shard: '1/2', hold: 'true' })
    expect([hold.hold, hold.holdTimeoutMs, hold.hosts.length]).toEqual([true, 30 * 60_000, 2])
    expect(settingsWith({ hold: 'true', 'hold-timeout': '2h' }).holdTimeoutMs).toBe(7_200_000)
    for (const mode of ['commit', 'abort']) {
      const s = settingsWith({ mode, binary: '', 'allow-downgrade': 'false' })
      expect(() => checkPairings(s, supervisorOf(s))).not.toThrow()
    }
  })

  it.each([
    ['tableflip', { supervisor: 'tableflip', 'pid-file': '/run/app.pid' }],
    ['haproxy', { supervisor: 'haproxy' }]
  ])('accepts hold, commit and abort on %s, which hands back instead of holding', (_name, sup) => {
    const hold = settingsWith({ ...sup, hosts: hosts(4).join('\n'), shard: '1/2', hold: 'true' })
    expect(() => checkPairings(hold, supervisorOf(hold))).not.toThrow()
    expect([hold.hold, hold.rollbackFleet]).toEqual([true, false])
    for (const mode of ['commit', 'abort']) {
      const s = settingsWith({ ...sup, mode, binary: '' })
      expect(() => checkPairings(s, supervisorOf(s))).not.toThrow()
    }
  })

  it('refuses hold, commit and abort for a supervisor that can neither hold nor hand back', () => {
    const none = { canHold: false, handBack: false }
    const refusal = (s: { hold: boolean; mode: string }) => {
      try {
        checkHoldPairing({ ...s, supervisor: 'x' }, none, 'a server')
      } catch (e) {
        return (e as Error).message
      }
      return 'accepted'
    }
    expect(refusal({ hold: true, mode: 'deploy' })).toContain(
      "Input 'hold': is true but a server can neither hold its old process nor hand back to its previous binary yet"
    )
    expect(refusal({ hold: false, mode: 'abort' })).toContain(
      "Input 'mode': abort finishes held hosts, and a server leaves none held"
    )
    expect(refusal({ hold: false, mode: 'deploy' })).toBe('accepted')
    expect(() =>
      checkHoldPairing(
        { hold: true, mode: 'deploy', supervisor: 'x' },
        { ...none, handBack: true },
        'a server'
      )
    ).not.toThrow()
  })
})

describe('held results', () => {
  const run = (results: HostResult[]): RolloutResult => {
    const hosts = results.map((result, i) => ({ host: `h${i}`, result }) as HostReport)
    return { ...overall(hosts), hosts, durationMs: 0, failures: [] }
  }
  it('a hold run succeeds only when every host is held', () => {
    expect(succeeded(run(['parked', 'parked']), { mode: 'deploy', hold: true })).toBe(true)
    expect(succeeded(run(['parked', 'parked']), { mode: 'deploy', hold: false })).toBe(false)
    expect(run(['parked', 'rolled-back']).result).toBe('failed')
    expect(run(['parked', 'unchanged']).result).toBe('parked')
  })
  it('an abort succeeds when the held hosts went back', () => {
    expect(succeeded(run(['rolled-back', 'unchanged']), { mode: 'abort', hold: false })).toBe(true)
    expect(succeeded(run(['rolled-back', 'unchanged']), { mode: 'deploy', hold: false })).toBe(false)
    expect(succeeded(run(['rolled-back', 'failed']), { mode: 'abort', hold: false })).toBe(false)
  })
})

describe('parked lease', () => {
  it('a parked host outlives slow heartbeats: at least 10 minutes, renewed many times per lease', () => {
    for (const lease of [5_000, 120_000, 3_600_000]) {
      const p = parkedLease(lease)
      expect(p.leaseMs).toBe(Math.max(lease, PARKED_LEASE_MS))
      expect(p.leaseMs / p.everyMs).toBeGreaterThanOrEqual(10)
    }
  })
})

describe('held record', () => {
  const sha = (c: string) => c.repeat(64)
  const good = {
    kind: 'zerodown-held',
    version: 1,
    token: '123.1-abcdef012345',
    run: 'https://github.com/o/r/actions/runs/123',
    host: 'deploy@web1',
    supervisor: 'nginx',
    pidFile: '/run/nginx.pid',
    livePath: '/usr/sbin/nginx',
    previousPath: '/usr/sbin/.nginx.zerodown-prev',
    oldBinarySha256: sha('a'),
    newBinarySha256: sha('b'),
    newVersion: '1.27.1',
    old: { pid: 100, startTime: '5000', sha256: sha('a') },
    new: { pid: 200, startTime: '6000', sha256: sha('b') },
    watchdog: '/var/lib/zerodown/nginx/watchdog',
    heldAt: '2026-01-01T00:00:00Z',
    deadline: '2026-01-01T00:30:00Z'
  }
  /** A tableflip host left on its new process: the way back is a hand-over to the kept binary. */
  const handBack = {
    ...good,
    version: 2,
    revert: 'handoff',
    supervisor: 'tableflip',
    pidFile: '/run/app.pid',
    livePath: '/srv/app/sbin/app',
    previousPath: '/srv/app/sbin/.app.zerodown-prev',
    watchdog: '/var/lib/zerodown/app/watchdog'
  }
  it('reads a record this action wrote', () => {
    expect(parseHeld(JSON.stringify(good))).toEqual(good)
  })
  it('reads a hand-back record (version 2) this action wrote', () => {
    expect(parseHeld(JSON.stringify(handBack))).toEqual(handBack)
  })
  it('reads a hand-back record whose master re-executed itself under its pid (HAProxy, version 2 only)', () => {
    const master = { ...handBack, supervisor: 'haproxy', new: { ...good.new, pid: 100, startTime: '5000' } }
    expect(parseHeld(JSON.stringify(master))).toEqual(master)
    expect(parseHeld(JSON.stringify({ ...good, new: master.new }))).toEqual({
      problem: expect.stringContaining('processes')
    })
  })
  it.each([
    ['not JSON', 'held', 'not JSON'],
    ['another kind', JSON.stringify({ ...good, kind: 'other' }), 'not a zerodown held record'],
    ['another version', JSON.stringify({ ...good, version: 3 }), 'version 3 is not 1 or 2'],
    ['version 2 without its revert', JSON.stringify({ ...good, version: 2 }), 'revert is missing'],
    [
      'version 1 with a revert',
      JSON.stringify({ ...handBack, version: 1 }),
      'revert "handoff" does not go with version 1'
    ],
    [
      'version 2 with another revert',
      JSON.stringify({ ...handBack, revert: 'old-process' }),
      'revert "old-process"'
    ],
    [
      'a hand-back record with one pid for both but two start times',
      JSON.stringify({ ...handBack, new: { ...good.new, pid: 100 } }),
      'processes'
    ],
    [
      'a hand-back record with a relative kept path',
      JSON.stringify({ ...handBack, previousPath: 'app.prev' }),
      'path'
    ],
    ['pid 1', JSON.stringify({ ...good, old: { ...good.old, pid: 1 } }), 'processes'],
    ['one pid for both', JSON.stringify({ ...good, new: { ...good.new, pid: 100 } }), 'processes'],
    [
      'a start time that is not a number',
      JSON.stringify({ ...good, old: { ...good.old, startTime: '1;id' } }),
      'processes'
    ],
    ['a relative path', JSON.stringify({ ...good, livePath: 'nginx' }), 'path'],
    ['a .. path', JSON.stringify({ ...good, previousPath: '/usr/../tmp/x' }), 'path'],
    ['a token with a space', JSON.stringify({ ...good, token: 'a b' }), 'token'],
    ['a short sha256', JSON.stringify({ ...good, newBinarySha256: 'abc' }), 'sha256']
  ])('refuses %s', (_what, text, problem) => {
    expect(parseHeld(text)).toEqual({ problem: expect.stringContaining(problem) })
  })
})
