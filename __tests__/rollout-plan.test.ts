/** The pure parts of a rollout: its batches, the overall result, the failure message. */
import { describe, expect, it } from '@jest/globals'
import { planBatches } from '../src/fleet/plan.js'
import { failureMessage, overall, type RolloutResult } from '../src/fleet/tally.js'
import type { HostReport, HostResult } from '../src/engine/types.js'

function host(name: string, result: HostResult, extra: Partial<HostReport> = {}): HostReport {
  return { host: name, result, startedAt: '', steps: [], drain: [], health: [], ...extra }
}

function rollout(hosts: HostReport[], failures: RolloutResult['failures'] = []): RolloutResult {
  const { result, counts } = overall(hosts)
  return { result, counts, hosts, durationMs: 1, failures }
}

describe('planBatches', () => {
  it('puts the canary alone first, then the rest in batches of max-parallel', () => {
    expect(planBatches(6, 1, 3)).toEqual([[0], [1, 2, 3], [4, 5]])
    expect(planBatches(6, 1, 2)).toEqual([[0], [1, 2], [3, 4], [5]])
    expect(planBatches(16, 1, 8)).toEqual([[0], [1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15]])
  })
  it('runs without a canary when canary is 0, and one host at a time by default', () => {
    expect(planBatches(3, 0, 1)).toEqual([[0], [1], [2]])
    expect(planBatches(5, 0, 2)).toEqual([[0, 1], [2, 3], [4]])
    expect(planBatches(1, 0, 4)).toEqual([[0]])
  })
  it('keeps a large canary together in batch 0 (run max-parallel at a time)', () => {
    expect(planBatches(6, 3, 2)).toEqual([[0, 1, 2], [3, 4], [5]])
    expect(planBatches(3, 3, 1)).toEqual([[0, 1, 2]])
  })
  it('covers every host exactly once, in order', () => {
    for (let n = 1; n <= 20; n++)
      for (let canary = 0; canary <= n; canary++)
        for (const width of [1, 2, 3, 8, 256]) {
          const batches = planBatches(n, canary, width)
          expect(batches.flat()).toEqual([...Array(n).keys()])
          expect(batches.every(b => b.length > 0)).toBe(true)
          for (const b of canary > 0 ? batches.slice(1) : batches) expect(b.length).toBeLessThanOrEqual(width)
        }
  })
})

describe('overall', () => {
  it('is upgraded only when every host is upgraded or unchanged', () => {
    expect(overall([host('a', 'upgraded'), host('b', 'unchanged')]).result).toBe('upgraded')
    expect(overall([host('a', 'unchanged')]).result).toBe('unchanged')
    expect(overall([host('a', 'upgraded'), host('b', 'untouched')]).result).toBe('failed')
  })
  it('is rolled-back only when no host is left on the new version', () => {
    expect(overall([host('a', 'rolled-back'), host('b', 'untouched')]).result).toBe('rolled-back')
    expect(overall([host('a', 'rolled-back'), host('b', 'upgraded')]).result).toBe('failed')
  })
  it('is failed when a host failed or is left parked', () => {
    expect(overall([host('a', 'rolled-back'), host('b', 'failed')]).result).toBe('failed')
    expect(overall([host('a', 'upgraded'), host('b', 'parked')]).result).toBe('failed')
  })
  it('counts every state', () => {
    expect(
      overall([
        host('a', 'upgraded'),
        host('b', 'rolled-back'),
        host('c', 'untouched'),
        host('d', 'untouched')
      ]).counts
    ).toEqual({ upgraded: 1, 'rolled-back': 1, unchanged: 0, failed: 0, untouched: 2, parked: 0 })
  })
})

describe('failureMessage', () => {
  it('names the failing host and how many hosts ended in each state', () => {
    const msg = failureMessage(
      rollout(
        [host('a', 'rolled-back'), host('b', 'rolled-back'), host('c', 'untouched')],
        [{ host: 'b', step: 'health', error: 'http://b/health answered 503', result: 'rolled-back' }]
      )
    )
    expect(msg).toBe(
      'rolled-back: b failed at health (rolled back): http://b/health answered 503. ' +
        '3 hosts: 0 upgraded, 2 rolled back, 0 failed, 1 untouched. ' +
        'The old version is serving on every host this run changed.'
    )
  })
  it('says when the fleet is left mixed, and which host could not be rolled back', () => {
    const msg = failureMessage(
      rollout(
        [
          host('a', 'upgraded'),
          host('b', 'failed', { rollbackError: 'the old master 12 is not running' }),
          host('c', 'untouched')
        ],
        [{ host: 'b', step: 'usr2', error: 'no new master', result: 'failed' }]
      )
    )
    expect(msg).toContain('failed: b failed at usr2: no new master')
    expect(msg).toContain('3 hosts: 1 upgraded, 0 rolled back, 1 failed, 1 untouched')
    expect(msg).toContain('b could not be rolled back (the old master 12 is not running)')
    expect(msg).toContain('the fleet is mixed')
  })
})
