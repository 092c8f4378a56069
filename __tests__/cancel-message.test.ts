/**
 * What the log says when a run is cancelled (SIGINT, SIGTERM), by mode: a deploy rolls back the
 * hosts in the middle of an upgrade; commit and abort finish the hosts they are finishing and
 * leave the rest held; plan and status stop reading. The rollback itself on a cancel is proven on
 * sshd in interruptions.test.ts (deploy) and held-fleet.test.ts (commit, abort).
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { cancelling, cancelOnSignals } from '../src/app.js'
import type { Logger } from '../src/engine/types.js'

describe('the cancel message', () => {
  let uninstall: (() => void) | undefined
  afterEach(() => uninstall?.())

  it('says what a cancel does to each mode', () => {
    expect(cancelling('deploy').first).toMatch(/hosts in the middle of an upgrade roll back/)
    expect(cancelling(undefined).first).toBe(cancelling('rollback').first)
    expect(cancelling('commit').first).toMatch(
      /no further held host is committed; the hosts being finished complete/
    )
    expect(cancelling('abort').first).toMatch(/no further held host is returned to its original process/)
    expect(cancelling('abort').first).not.toMatch(/roll back/)
    expect(cancelling('plan').first).toMatch(/a plan removes what it staged/)
    expect(cancelling('commit').again).toBe('still finishing the hosts being committed')
  })

  it('the handler reads the mode when the signal comes, and aborts the run once', () => {
    const lines: string[] = []
    const log = { warn: (m: string) => void lines.push(m) } as unknown as Logger
    const controller = new AbortController()
    const run: { mode?: string } = {}
    uninstall = cancelOnSignals(controller, log, () => run.mode)
    run.mode = 'commit' // read once the settings are
    process.emit('SIGINT', 'SIGINT')
    process.emit('SIGTERM', 'SIGTERM')
    expect(controller.signal.aborted).toBe(true)
    expect(lines).toEqual([
      `received SIGINT: the run is being cancelled; ${cancelling('commit').first}`,
      `received SIGTERM again: ${cancelling('commit').again}`
    ])
  })
})
