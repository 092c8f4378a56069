/**
 * The deploy lock's checkpoint alone, with a fake lock: when the host is asked whether the lock is
 * still ours (before the cut-over and the commit, ahead of them when the run's steps are known),
 * and that a "no" stops the run at the moment. Milliseconds; lock-lost.test.ts is the proof on a
 * real host.
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals'
import type { Step, StepStage } from '../src/engine/index.js'
import type { HostLock } from '../src/safety/lock.js'
import { lockCheckpoint } from '../src/safety/lock-checkpoint.js'

const step = (name: string, stage: StepStage): Step => ({ name, stage, run: async () => undefined })

const STEPS = [
  step('lock', 'prepare'),
  step('preflight', 'prepare'),
  step('upload', 'prepare'),
  step('verify', 'prepare'),
  step('versions', 'prepare'),
  step('watchdog', 'ready'),
  step('swap', 'change'),
  step('winch', 'change'),
  step('health', 'change'),
  step('drain', 'change'),
  step('confirm', 'commit'),
  step('quit', 'commit'),
  step('record', 'after')
]

/** A lock whose every question to the host is logged with the step the run was at; `lost` turns the answers to no. */
function fakeLock() {
  const asked: string[] = []
  let at = ''
  let lost = false
  const lock = {
    verify: async () => {
      asked.push(at)
      if (lost) throw new Error('the deploy lock is no longer held by this run')
    },
    check: () => undefined
  } as unknown as HostLock
  return {
    lock,
    asked,
    lose: () => (lost = true),
    at: (name: string) => (at = name)
  }
}

async function runThrough(
  f: ReturnType<typeof fakeLock>,
  check: (s: Step) => Promise<void>,
  steps = STEPS
): Promise<string | null> {
  for (const s of steps) {
    f.at(s.name)
    const e = await check(s).then(
      () => null,
      (x: Error) => x
    )
    if (e) return `${s.name}: ${e.message}`
  }
  return null
}

afterEach(() => {
  jest.restoreAllMocks()
})

describe('the lock checkpoint', () => {
  it('without the steps: asks at the cut-over and at the commit, once each', async () => {
    const f = fakeLock()
    expect(
      await runThrough(
        f,
        lockCheckpoint(() => f.lock)
      )
    ).toBeNull()
    expect(f.asked).toEqual(['watchdog', 'confirm'])
  })

  it('with the steps: asks three steps ahead of each moment, beside their work, and no more often', async () => {
    const f = fakeLock()
    expect(
      await runThrough(
        f,
        lockCheckpoint(() => f.lock, STEPS)
      )
    ).toBeNull()
    expect(f.asked).toEqual(['upload', 'winch'])
  })

  it('a "no" given ahead stops the run at the moment, not before', async () => {
    const f = fakeLock()
    const check = lockCheckpoint(() => f.lock, STEPS)
    f.lose()
    expect(await runThrough(f, check)).toBe('watchdog: the deploy lock is no longer held by this run')
    expect(f.asked).toEqual(['upload'])
  })

  it('an answer older than 10 s is not taken: the moment asks again (a pre-staged host waited for its batch)', async () => {
    const f = fakeLock()
    const check = lockCheckpoint(() => f.lock, STEPS)
    let now = 1_000_000
    jest.spyOn(Date, 'now').mockImplementation(() => now)
    expect(await runThrough(f, check, STEPS.slice(0, 5))).toBeNull()
    now += 11_000
    expect(await runThrough(f, check, STEPS.slice(5))).toBeNull()
    expect(f.asked).toEqual(['upload', 'watchdog', 'winch'])
  })

  it('no lock (lock: false): never asks', async () => {
    const f = fakeLock()
    expect(
      await runThrough(
        f,
        lockCheckpoint(() => undefined, STEPS)
      )
    ).toBeNull()
    expect(f.asked).toEqual([])
  })
})
