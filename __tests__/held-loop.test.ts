/**
 * The loop of mode commit and abort (src/fleet/held-loop.ts) with a fake host list: a cancel
 * starts no further host, lets the ones in progress finish, reports the others untouched, and
 * fails the run; an untouched host fails an abort even when every other host went back.
 */
import { describe, expect, it } from '@jest/globals'
import type { HostReport, HostResult, Logger } from '../src/engine/types.js'
import { finishEach, heldTally } from '../src/fleet/held-loop.js'
import { HostLog } from '../src/fleet/host-log.js'
import { succeeded } from '../src/fleet/tally.js'
import type { HostTarget } from '../src/settings.js'

const target = (n: number) => ({ label: `web${n}` }) as HostTarget

function report(host: string, result: HostResult): HostReport {
  const now = new Date().toISOString()
  return { host, result, startedAt: now, endedAt: now, durationMs: 0, steps: [], drain: [], health: [] }
}

function recorder(): { log: Logger; lines: string[] } {
  const lines: string[] = []
  const log: Logger = {
    info: m => void lines.push(m),
    warn: m => void lines.push(`warn: ${m}`),
    error: m => void lines.push(`error: ${m}`),
    group: async (title, fn) => {
      lines.push(`## ${title}`)
      return fn()
    }
  }
  return { log, lines }
}

describe('commit / abort loop (unit)', () => {
  it('a cancel starts no further host; the hosts in progress finish; the rest are untouched and the run fails', async () => {
    const controller = new AbortController()
    const { log, lines } = recorder()
    const started: string[] = []
    const release: (() => void)[] = []
    const finish = (t: HostTarget, hostLog: Logger) => {
      started.push(t.label)
      hostLog.info(`${t.label}: returning to the old process`)
      // A host started after the cancel (the bug) ends at once, so that the test fails rather than hangs.
      if (controller.signal.aborted) return Promise.resolve(report(t.label, 'rolled-back'))
      // Each host's abort ends only when the test says so: the cancel comes while two are in progress.
      return new Promise<HostReport>(resolve => release.push(() => resolve(report(t.label, 'rolled-back'))))
    }
    const running = finishEach({
      targets: [1, 2, 3, 4, 5].map(target),
      width: 2,
      verb: 'abort',
      log,
      signal: controller.signal,
      finish
    })
    for (let i = 0; i < 100 && started.length < 2; i++) await Promise.resolve()
    expect(started).toEqual(['web1', 'web2'])
    controller.abort('SIGINT')
    release.forEach(r => r())
    const run = await running
    expect(started).toEqual(['web1', 'web2'])
    expect(run.hosts.map(h => [h.host, h.result])).toEqual([
      ['web1', 'rolled-back'],
      ['web2', 'rolled-back'],
      ['web3', 'untouched'],
      ['web4', 'untouched'],
      ['web5', 'untouched']
    ])
    expect(run.hosts[2]!.error).toMatch(/not reached: the run was cancelled before its abort started/)
    expect(run.result).toBe('failed')
    expect(succeeded(run, { mode: 'abort', hold: false })).toBe(false)
    expect(run.failures.map(f => f.host)).toEqual(['web3', 'web4', 'web5'])
    // Each finished host's own lines are printed; the cancel is said, and which hosts were not reached.
    expect(lines).toContain('web1: returning to the old process')
    expect(lines.join('\n')).toMatch(
      /warn: the run was cancelled: the host\(s\) being finished complete their abort/
    )
    expect(lines.join('\n')).toMatch(/3 host\(s\) not reached \(web3, web4, web5\) are still held/)
  })

  it('without a cancel every host is finished: an abort that sent every held host back succeeds', async () => {
    const { log } = recorder()
    const run = await finishEach({
      targets: [1, 2, 3].map(target),
      width: 1,
      verb: 'abort',
      log,
      signal: new AbortController().signal,
      finish: async t => report(t.label, t.label === 'web2' ? 'unchanged' : 'rolled-back')
    })
    expect(run.hosts.map(h => h.result)).toEqual(['rolled-back', 'unchanged', 'rolled-back'])
    expect(run.result).toBe('rolled-back')
    expect(succeeded(run, { mode: 'abort', hold: false })).toBe(true)
  })

  it('an abort with an untouched host (no connection) fails, even when the others went back', () => {
    const slots = ['web1', 'web2'].map((label, i) => ({
      target: target(i + 1),
      batch: 0,
      log: new HostLog(label),
      report: report(label, i === 0 ? 'rolled-back' : 'untouched'),
      aborted: i === 0
    }))
    const run = heldTally(slots, Date.now())
    expect(run.result).toBe('failed')
    expect(succeeded(run, { mode: 'abort', hold: false })).toBe(false)
  })
})
