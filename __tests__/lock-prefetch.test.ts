/**
 * The deploy lock's step with a fake host (pure order of commands; the real proof is every
 * upgrade test on sshd): the next step's first reads (`afterLock`, nginx's probe) go to the
 * host's shell right behind the lock's own commands, so that on the host they run once the
 * lock is taken and come back with its answer; a lock held by another run fails the step, and
 * what was sent ahead is never used.
 */
import { describe, expect, it } from '@jest/globals'
import type { ExecResult, Host, RunOptions } from '../src/host/host.js'
import type { SafetyOptions } from '../src/safety/guard.js'
import { Journal } from '../src/safety/journal.js'
import { ACQUIRE, RELEASE } from '../src/safety/lock-scripts.js'
import { lockStep } from '../src/safety/lock-steps.js'
import { INSPECT_SCRIPT } from '../src/safety/watchdog-scripts.js'

function fakeHost(lockAnswer: string) {
  const sent: string[] = []
  /** How many answers the host had given when each command was sent. */
  const answeredBefore: Record<string, number> = {}
  let answered = 0
  const name = (argv: readonly string[]) =>
    argv[2] === ACQUIRE
      ? 'lock-acquire'
      : argv[2] === INSPECT_SCRIPT
        ? 'watchdog-inspect'
        : argv[2] === RELEASE
          ? 'lock-release'
          : argv[0] === 'sh'
            ? 'first-read'
            : argv.join(' ')
  const answers: Record<string, string> = {
    'lock-acquire': lockAnswer,
    'watchdog-inspect': 'absent',
    'lock-release': 'released',
    'first-read': ''
  }
  const host = {
    name: 'web1',
    address: 'web1',
    sudo: false,
    // Like the host's shell: commands are taken in the order they are sent, answered later.
    run(argv: readonly string[], o?: RunOptions): Promise<ExecResult> {
      const what = name(argv)
      if (!o?.aside) sent.push(what)
      answeredBefore[what] = answered
      return new Promise(r =>
        setTimeout(() => {
          answered += 1
          r({ stdout: `${answers[what] ?? ''}\n`, stderr: '', code: 0 })
        }, 5)
      )
    }
  } as unknown as Host
  return { host, sent, answeredBefore }
}

const options = {
  pidFile: '/run/nginx.pid',
  binaryPath: '/usr/sbin/nginx',
  lockLeaseMs: 60_000,
  token: 'test-token',
  owner: {},
  log: { info: () => undefined, warn: () => undefined }
} as unknown as SafetyOptions

function run(lockAnswer: string) {
  const { host, sent, answeredBefore } = fakeHost(lockAnswer)
  const s = { host, armed: false } as { host: Host; armed: boolean; lock?: { release(): Promise<unknown> } }
  const prefetched: Promise<ExecResult>[] = []
  const step = lockStep(
    s as never,
    options,
    new Journal({ token: 'test-token', pidFile: '/run/nginx.pid' }),
    () => prefetched.push(host.run(['probe']))
  )
  const ctx = { host, note: () => undefined, log: options.log, report: {}, attempt: 1, retrying: false }
  return { s, sent, answeredBefore, prefetched, done: step.run(ctx as never) }
}

describe('the lock step sends the next step reads right behind its own', () => {
  it('taken: the probe goes after the lock and the watchdog read, before their answers', async () => {
    const r = run('acquired')
    await r.done
    expect(r.sent).toEqual(['first-read', 'lock-acquire', 'watchdog-inspect', 'probe'])
    expect(r.prefetched).toHaveLength(1)
    // Sent with the lock's command, not after its answer (only the first read was answered).
    expect(r.answeredBefore['lock-acquire']).toBe(1)
    expect(r.answeredBefore.probe).toBe(1)
    await r.s.lock?.release()
  })

  it('held by another run: the step fails; the probe sent ahead is only a read', async () => {
    const r = run('held 5')
    await expect(r.done).rejects.toThrow(/deploy lock/)
    expect(r.sent).toEqual(['first-read', 'lock-acquire', 'watchdog-inspect', 'probe'])
  })
})
