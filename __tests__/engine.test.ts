/**
 * The engine alone, with a scripted fake host: the order of runs and undos, retries after a lost
 * connection, cancellation, holding, the failure report. No SSH, no server: milliseconds. The
 * integration tests on real sshd + nginx (upgrade, faults, interruptions) stay the proof.
 */
import { describe, expect, it } from '@jest/globals'
import {
  HostRun,
  StepError,
  type RunPhase,
  type RunSpec,
  type Step,
  type StepStage
} from '../src/engine/index.js'
import { silentLogger, type Logger } from '../src/engine/types.js'
import { ConnectionLostError, type Host } from '../src/host/host.js'

const host = { name: 'zd@fake:22', address: 'fake', sudo: false } as unknown as Host

/** A host's script: what each step does, attempt by attempt; every call lands in `calls`. */
function scripted() {
  const calls: string[] = []
  const step = (
    name: string,
    stage: StepStage,
    o: Partial<Step> & { fail?: (attempt: number) => Error | undefined } = {}
  ): Step => ({
    name,
    stage,
    ...o,
    async run(ctx) {
      calls.push(`${name}${ctx.retrying ? ` (retry ${ctx.attempt})` : ''}`)
      const e = o.fail?.(ctx.attempt)
      if (e) throw e
      return o.run?.(ctx)
    },
    undo: 'undo' in o ? o.undo : async () => void calls.push(`undo ${name}`)
  })
  return { calls, step }
}

function logger(): Logger & { lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    info: m => void lines.push(m),
    warn: m => void lines.push(`warn: ${m}`),
    error: m => void lines.push(`error: ${m}`),
    group: (_t, fn) => fn()
  }
}

const lost = () => new ConnectionLostError('zd@fake:22', 'socket closed')

describe('engine: one host', () => {
  it('runs the steps in order and upgrades; after the commit nothing is undone and after-steps only warn', async () => {
    const { calls, step } = scripted()
    const log = logger()
    const spec: RunSpec = {
      steps: [
        step('preflight', 'prepare'),
        step('swap', 'change'),
        step('quit', 'commit'),
        step('record', 'after', { fail: () => new Error('store unreachable') })
      ]
    }
    const r = await new HostRun(host, spec, { log }).run()
    expect(r.result).toBe('upgraded')
    expect(calls).toEqual(['preflight', 'swap', 'quit', 'record'])
    expect(r.steps.map(s => [s.name, s.outcome])).toEqual([
      ['preflight', 'ok'],
      ['swap', 'ok'],
      ['quit', 'ok']
    ])
    expect(r.steps[2]!.observations).toContain('store unreachable')
    expect(log.lines).toContain('warn: zd@fake:22: store unreachable')
  })

  it('asks the checkpoint before every step, never during the rollback; a throw there rolls back before the step runs', async () => {
    const { calls, step } = scripted()
    const log = logger()
    let lost = false
    const spec: RunSpec = {
      steps: [
        step('preflight', 'prepare'),
        step('swap', 'change', { run: async () => void (lost = true) }),
        step('health', 'change'),
        step('quit', 'commit')
      ],
      checkpoint: async s => {
        calls.push(`checkpoint ${s.name}`)
        if (lost) throw new Error('zd@fake:22: this run lost the deploy lock')
      }
    }
    const r = await new HostRun(host, spec, { log }).run()
    expect(calls).toEqual([
      'checkpoint preflight',
      'preflight',
      'checkpoint swap',
      'swap',
      'checkpoint health',
      // health never started: nothing of it to undo
      'undo swap',
      'undo preflight'
    ])
    expect(r.result).toBe('rolled-back')
    expect(r.failedStep).toBe('health')
    expect(r.error).toBe('zd@fake:22: this run lost the deploy lock')
  })

  it('undoes in reverse order on a failure: rolled-back once something served changed', async () => {
    const { calls, step } = scripted()
    const spec: RunSpec = {
      steps: [
        step('upload', 'prepare'),
        step('swap', 'change', { undoFrom: 'success' }),
        step('usr2', 'change'),
        step('health', 'change', { fail: () => new StepError('health', 'HTTP 500') }),
        step('quit', 'commit')
      ]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect(calls).toEqual([
      'upload',
      'swap',
      'usr2',
      'health',
      'undo health',
      'undo usr2',
      'undo swap',
      'undo upload'
    ])
    expect([r.result, r.failedStep, r.error]).toEqual(['rolled-back', 'health', 'HTTP 500'])
    expect(r.steps.map(s => s.name)).toEqual(['upload', 'swap', 'usr2', 'health', 'rollback'])
  })

  it('a failure before anything served changed is failed, not rolled back (the clean-ups still run)', async () => {
    const { calls, step } = scripted()
    const spec = {
      steps: [
        step('upload', 'prepare'),
        step('verify', 'prepare', { fail: () => new Error('config test failed'), undo: undefined }),
        step('swap', 'change')
      ]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect(calls).toEqual(['upload', 'verify', 'undo upload'])
    expect([r.result, r.failedStep]).toEqual(['failed', 'verify'])
  })

  it('a step whose undo is pushed on success is not undone when it failed', async () => {
    const { calls, step } = scripted()
    const spec = {
      steps: [
        step('usr2', 'change'),
        step('swap', 'change', { undoFrom: 'success', fail: () => new Error('rename failed') })
      ]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect(calls).toEqual(['usr2', 'swap', 'undo usr2'])
    expect(r.result).toBe('rolled-back')
  })

  it('runs a step again after a lost connection, telling it to read back; its undo is pushed once', async () => {
    const { calls, step } = scripted()
    const log = logger()
    const spec = {
      steps: [
        step('usr2', 'change', { fail: a => (a < 3 ? lost() : undefined) }),
        step('health', 'change', { fail: () => new Error('no') })
      ]
    }
    const r = await new HostRun(host, spec, { log }).run()
    expect(calls).toEqual(['usr2', 'usr2 (retry 2)', 'usr2 (retry 3)', 'health', 'undo health', 'undo usr2'])
    expect(
      r.steps[0]!.observations.filter(o => /reconnecting and reading the host's state back/.test(o))
    ).toEqual([expect.stringContaining('(attempt 2 of 4)'), expect.stringContaining('(attempt 3 of 4)')])
  })

  it('gives up after the last attempt, and a step that must not retry fails at once', async () => {
    const { calls, step } = scripted()
    const r = await new HostRun(
      host,
      { steps: [step('usr2', 'change', { fail: () => lost() })] },
      { log: silentLogger }
    ).run()
    expect(calls).toEqual(['usr2', 'usr2 (retry 2)', 'usr2 (retry 3)', 'usr2 (retry 4)', 'undo usr2'])
    expect(r.failedStep).toBe('usr2')
    const once = scripted()
    await new HostRun(
      host,
      { steps: [once.step('x', 'change', { onLostConnection: 'fail', fail: () => lost() })] },
      { log: silentLogger }
    ).run()
    expect(once.calls).toEqual(['x', 'undo x'])
  })

  it('runs the whole rollback again after a lost connection', async () => {
    const { calls, step } = scripted()
    let cuts = 1
    const spec = {
      steps: [
        step('swap', 'change', {
          undo: async () => {
            calls.push('undo swap')
            if (cuts-- > 0) throw lost()
          }
        }),
        step('usr2', 'change'),
        step('health', 'change', { fail: () => new Error('no') })
      ]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect(calls.slice(3)).toEqual([
      'undo health',
      'undo usr2',
      'undo swap',
      'undo health',
      'undo usr2',
      'undo swap'
    ])
    expect(r.result).toBe('rolled-back')
  })

  it('stops at a cancel: the next step does not start, the rollback runs, a finish step still runs', async () => {
    const { calls, step } = scripted()
    const ac = new AbortController()
    const spec = {
      steps: [step('swap', 'change', { run: async () => void ac.abort('SIGTERM') }), step('health', 'change')]
    }
    const r = await new HostRun(host, spec, { log: silentLogger, signal: ac.signal }).run()
    expect(calls).toEqual(['swap', 'undo swap'])
    expect([r.result, r.failedStep, r.error]).toEqual([
      'rolled-back',
      'health',
      'the run was cancelled (SIGTERM) during health'
    ])
    const fin = scripted()
    const ac2 = new AbortController()
    const spec2 = {
      steps: [
        fin.step('drain', 'change', { run: async () => void ac2.abort('SIGINT') }),
        fin.step('quit', 'commit', { onCancel: 'finish' })
      ]
    }
    const r2 = await new HostRun(host, spec2, { log: silentLogger, signal: ac2.signal }).run()
    expect(fin.calls).toEqual(['drain', 'quit'])
    expect(r2.result).toBe('upgraded')
  })

  it('runs a step sent ahead despite a cancel or a failed checkpoint, so that its undo is in the rollback', async () => {
    for (const why of ['cancel', 'checkpoint'] as const) {
      const { calls, step } = scripted()
      const ac = new AbortController()
      let ahead = false
      let lockLost = false
      const stop = () => (why === 'cancel' ? ac.abort('SIGTERM') : void (lockLost = true))
      const spec: RunSpec = {
        steps: [
          // The arm step sends the swap and the start behind its own command, then the job is cancelled.
          step('arm', 'ready', { run: async () => void ((ahead = true), stop()) }),
          step('swap', 'change', { undoFrom: 'success', sentAhead: () => ahead }),
          step('usr2', 'change', { sentAhead: () => ahead, run: async () => void (ahead = false) }),
          step('winch', 'change', { sentAhead: () => ahead }),
          step('health', 'change')
        ],
        checkpoint: async () => {
          if (lockLost) throw new Error('zd@fake:22: this run lost the deploy lock')
        }
      }
      const r = await new HostRun(host, spec, { log: silentLogger, signal: ac.signal }).run()
      // usr2 took what was sent ahead (nothing more is): winch is stopped as any step is.
      expect(calls).toEqual(['arm', 'swap', 'usr2', 'undo usr2', 'undo swap', 'undo arm'])
      expect([r.result, r.failedStep]).toEqual(['rolled-back', 'winch'])
    }
  })

  it('gives up an interruptible wait at once on a cancel', async () => {
    const { calls, step } = scripted()
    const ac = new AbortController()
    let release!: () => void
    const waiting = new Promise<void>(r => (release = r))
    const spec = { steps: [step('drain', 'change', { interruptible: true, run: () => waiting })] }
    let waited = false
    const run = new HostRun(host, spec, { log: silentLogger, signal: ac.signal }).run()
    setTimeout(() => ac.abort('SIGINT'), 5)
    const r = await run
    waited = await Promise.race([waiting.then(() => true), Promise.resolve(false)])
    release()
    expect(calls).toEqual(['drain', 'undo drain'])
    expect([r.result, r.error]).toEqual(['rolled-back', 'the run was cancelled (SIGINT) during drain'])
    // The run ended while the wait was still pending (it only ends when the test releases it).
    expect(waited).toBe(false)
  })

  it('holds after the change steps; commit retires, abort rolls back; observers see every phase', async () => {
    const seen: RunPhase[] = []
    const make = () => {
      const s = scripted()
      const spec: RunSpec = {
        steps: [
          s.step('preflight', 'prepare'),
          s.step('swap', 'change'),
          s.step('confirm', 'commit'),
          s.step('quit', 'commit')
        ],
        observers: [p => void seen.push(p)]
      }
      return { s, run: new HostRun(host, spec, { log: silentLogger }) }
    }
    const a = make()
    expect((await a.run.run({ hold: true })).result).toBe('parked')
    expect(a.s.calls).toEqual(['preflight', 'swap'])
    expect((await a.run.commit()).result).toBe('upgraded')
    expect(a.s.calls).toEqual(['preflight', 'swap', 'confirm', 'quit'])
    expect(seen).toEqual(['changing', 'held', 'committing', 'settled'])
    seen.length = 0
    const b = make()
    await b.run.run({ hold: true })
    const r = await b.run.abort('fleet rollback: web2 failed at health')
    expect(b.s.calls).toEqual(['preflight', 'swap', 'undo swap', 'undo preflight'])
    expect([r.result, r.failedStep]).toEqual(['rolled-back', 'rollback'])
    expect(seen).toEqual(['changing', 'held', 'rolling-back', 'settled'])
  })

  it('ends early when a step says there is nothing to do', async () => {
    const { calls, step } = scripted()
    const spec = {
      steps: [
        step('preflight', 'prepare', {
          run: async () => ({ end: 'unchanged' as const, message: 'already live' })
        }),
        step('upload', 'prepare')
      ]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect([r.result, calls]).toEqual(['unchanged', ['preflight']])
  })

  it('reports a rollback that failed, with the repair advice, and still runs every undo and settle', async () => {
    const { calls, step } = scripted()
    const spec: RunSpec = {
      steps: [
        step('swap', 'change'),
        step('usr2', 'change', {
          undo: async () => {
            calls.push('undo usr2')
            throw new Error('old master gone')
          }
        }),
        step('health', 'change', { fail: () => new Error('no') })
      ],
      repair: async () => ['# state: old master gone', 'kill -HUP 42'],
      settle: [{ name: 'unlock', run: async () => void calls.push('settle unlock') }]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect(calls).toEqual([
      'swap',
      'usr2',
      'health',
      'undo health',
      'undo usr2',
      'undo swap',
      'settle unlock'
    ])
    expect(r.result).toBe('failed')
    expect(r.repair).toEqual(['# state: old master gone', 'kill -HUP 42'])
    expect(r.rollbackError).toBe('undo of usr2 failed: old master gone. Host state: old master gone')
  })

  it('groups steps of one report entry into one record', async () => {
    const { calls, step } = scripted()
    const spec = {
      steps: [
        step('lock', 'prepare', { report: 'preflight' }),
        step('preflight', 'prepare'),
        step('watchdog', 'prepare', { report: 'swap' }),
        step('swap', 'change')
      ]
    }
    const r = await new HostRun(host, spec, { log: silentLogger }).run()
    expect(calls).toEqual(['lock', 'preflight', 'watchdog', 'swap'])
    expect(r.steps.map(s => s.name)).toEqual(['preflight', 'swap'])
  })
})

describe('engine: pre-staging (prepare, then run or release)', () => {
  const spec = (step: ReturnType<typeof scripted>['step'], fail?: string): RunSpec => ({
    steps: [
      step('lock', 'prepare', { undo: undefined }),
      step('upload', 'prepare', { fail: () => (fail === 'upload' ? new Error('disk full') : undefined) }),
      step('verify', 'prepare', { undo: undefined }),
      step('arm', 'ready'),
      step('swap', 'change'),
      step('quit', 'commit')
    ],
    settle: [{ name: 'unlock', run: async () => void calls.push('settle') }]
  })
  let calls: string[] = []

  it('prepare runs only the prepare steps; run goes on from there without running them again', async () => {
    const s = scripted()
    calls = s.calls
    const run = new HostRun(host, spec(s.step), { log: silentLogger })
    expect(await run.prepare()).toBeNull()
    expect(calls).toEqual(['lock', 'upload', 'verify'])
    const r = await run.run()
    expect(r.result).toBe('upgraded')
    expect(calls).toEqual(['lock', 'upload', 'verify', 'arm', 'swap', 'quit', 'settle'])
  })

  it('a failure in prepare ends the run at once: cleaned up, settled, failed', async () => {
    const s = scripted()
    calls = s.calls
    const r = await new HostRun(host, spec(s.step, 'upload'), { log: silentLogger }).prepare()
    expect(r).toMatchObject({ result: 'failed', failedStep: 'upload' })
    expect(calls).toEqual(['lock', 'upload', 'undo upload', 'settle'])
  })

  it('release after prepare removes what was staged and ends untouched, nothing of ready or change run', async () => {
    const s = scripted()
    calls = s.calls
    const run = new HostRun(host, spec(s.step), { log: silentLogger })
    expect(await run.prepare()).toBeNull()
    const r = await run.release('pre-staging failed on another host')
    expect(r.result).toBe('untouched')
    expect(r.error).toBeUndefined()
    expect(calls).toEqual(['lock', 'upload', 'verify', 'undo upload', 'settle'])
  })

  it('an undo of a ready step alone does not count as a change: the host ends failed, not rolled-back', async () => {
    const s = scripted()
    calls = s.calls
    const steps = [s.step('arm', 'ready'), s.step('check', 'ready', { fail: () => new Error('no') })]
    const r = await new HostRun(host, { steps }, { log: silentLogger }).run()
    expect(r.result).toBe('failed')
    expect(calls).toEqual(['arm', 'check', 'undo check', 'undo arm'])
  })
})
