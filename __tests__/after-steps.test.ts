/**
 * The tail of a run (src/engine/after.ts, src/safety/lock.ts): `after` steps pipelined on the
 * host's shell, and the deploy lock's release sent right behind the last one's commands, needing
 * the gate it named; a release the host skipped is sent again. Pure order with fakes; every
 * upgrade test on sshd releases its lock this way.
 */
import { describe, expect, it } from '@jest/globals'
import { runAfterSteps } from '../src/engine/after.js'
import type { Step, StepContext } from '../src/engine/step.js'
import { silentLogger } from '../src/engine/types.js'
import type { ExecResult, Host, RunOptions } from '../src/host/host.js'
import { GATE_CLOSED } from '../src/host/remote-shell.js'
import { ACQUIRE, RELEASE } from '../src/safety/lock-scripts.js'
import { HostLock } from '../src/safety/lock.js'

/** A deferred answer: the host's reply to a command, given when the test says. */
function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>(r => (resolve = r))
  return { promise, resolve }
}

function harness() {
  const sent: string[] = []
  const report = { steps: [{ name: 'quit', observations: [] as string[] }] } as never
  const context = () => ({ note: () => undefined }) as unknown as StepContext
  /** A step that sends `commands` now, says so (with `gate`) unless told not to, then waits for `answer`. */
  const step = (
    name: string,
    o: { says?: boolean; gate?: string; answer?: Promise<void>; fail?: boolean }
  ): Step => ({
    name,
    stage: 'after',
    async run(ctx) {
      sent.push(name)
      if (o.fail) throw new Error(`${name} failed`)
      if (o.says !== false) ctx.sent?.(o.gate)
      await o.answer
    }
  })
  const run = (steps: Step[]) =>
    runAfterSteps(steps, report, 'web1', silentLogger, context, gate =>
      sent.push(gate === undefined ? 'unlock' : `unlock if ${gate}`)
    )
  return { sent, step, run }
}

describe('after steps, pipelined', () => {
  it('the next step and the release go out before the answers of the steps before them', async () => {
    const { sent, step, run } = harness()
    const record = deferred()
    const done = run([step('record', { gate: 'saved', answer: record.promise }), step('tidy', {})])
    await new Promise(r => setImmediate(r))
    // Nothing has answered yet: all three are on their way, the release needing the record's gate.
    expect(sent).toEqual(['record', 'tidy', 'unlock if saved'])
    record.resolve()
    await done
  })

  it('waits for a step that does not say its commands are sent', async () => {
    const { sent, step, run } = harness()
    const record = deferred()
    const done = run([step('record', { says: false, answer: record.promise }), step('tidy', {})])
    await new Promise(r => setImmediate(r))
    expect(sent).toEqual(['record'])
    record.resolve()
    await done
    expect(sent).toEqual(['record', 'tidy', 'unlock'])
  })

  it('sends no release ahead when two steps still answering named two gates', async () => {
    const { sent, step, run } = harness()
    const a = deferred()
    const b = deferred()
    const done = run([
      step('a', { gate: 'g1', answer: a.promise }),
      step('b', { gate: 'g2', answer: b.promise })
    ])
    await new Promise(r => setImmediate(r))
    a.resolve()
    b.resolve()
    await done
    expect(sent).toEqual(['a', 'b'])
  })

  it('a step that fails only warns; the next still runs', async () => {
    const { sent, step, run } = harness()
    await run([step('record', { fail: true }), step('tidy', {})])
    expect(sent).toEqual(['record', 'tidy', 'unlock'])
  })
})

/** A host that takes the lock, and answers a gated release with the gate's state. */
function lockHost(gateOpen: boolean) {
  const releases: (string | undefined)[] = []
  const host = {
    name: 'web1',
    address: 'web1',
    sudo: false,
    run(argv: readonly string[], o?: RunOptions): Promise<ExecResult> {
      if (argv[2] === ACQUIRE) return Promise.resolve({ stdout: 'acquired\n', stderr: '', code: 0 })
      if (argv[2] !== RELEASE) return Promise.resolve({ stdout: '', stderr: '', code: 0 })
      releases.push(o?.gate?.need)
      const skipped = o?.gate?.need !== undefined && !gateOpen
      return Promise.resolve(
        skipped
          ? { stdout: '', stderr: '', code: GATE_CLOSED }
          : { stdout: 'released\n', stderr: '', code: 0 }
      )
    }
  } as unknown as Host
  return { host, releases }
}

describe('the lock released ahead', () => {
  const options = { path: '/var/lib/zerodown/nginx/lock', token: 't', leaseMs: 60_000, owner: {} }

  it('takes the answer of the release sent ahead: one release', async () => {
    const { host, releases } = lockHost(true)
    const lock = await HostLock.acquire(host, options as never)
    lock.releaseAhead('saved')
    expect(await lock.release()).toBe('released')
    expect(releases).toEqual(['saved'])
  })

  it('releases again when the host skipped it (the gate stayed closed)', async () => {
    const { host, releases } = lockHost(false)
    const lock = await HostLock.acquire(host, options as never)
    lock.releaseAhead('saved')
    expect(await lock.release()).toBe('released')
    expect(releases).toEqual(['saved', undefined])
  })
})
