/** A host's one connection, opened ahead of its batch, recorded as its `connect` step. */
import { formatDuration } from '../duration.js'
import type { Logger, StepReport } from '../engine/types.js'
import type { Host } from '../host/host.js'
import type { HostTarget } from '../settings.js'
import { untouched, type Slot } from './slot.js'

export type Connect = (target: HostTarget, log: Logger) => Promise<Host>

/** Opens (once) the slot's connection; a failure is kept for its batch to report. */
export function connectSlot(slot: Slot, connect: Connect, via: string): Promise<Host> {
  if (!slot.connecting) {
    const rec: StepReport = {
      name: 'connect',
      startedAt: new Date().toISOString(),
      endedAt: '',
      ms: 0,
      outcome: 'ok',
      observations: []
    }
    slot.connectStep = rec
    const t0 = Date.now()
    slot.connecting = connect(slot.target, slot.log).then(
      host => {
        rec.ms = Date.now() - t0
        rec.endedAt = new Date().toISOString()
        rec.observations.push(`connected${via}`)
        slot.log.info(`${slot.target.label} [connect] connected${via} in ${formatDuration(rec.ms)}`)
        return host
      },
      (e: Error) => {
        rec.ms = Date.now() - t0
        rec.endedAt = new Date().toISOString()
        rec.outcome = 'failed'
        rec.observations.push(e.message)
        throw e
      }
    )
    // A connection opened ahead of its batch may fail unobserved: its batch reports it.
    slot.connecting.catch(() => undefined)
  }
  return slot.connecting
}

/** The slot's connection failed: its report says why and what to check. */
export function connectFailed(slot: Slot, err: Error, o: { via: string; jumpHost: boolean }): void {
  const cause = err.message.startsWith(`${slot.target.label}: `)
    ? err.message.slice(slot.target.label.length + 2)
    : err.message
  // A refused host key says what to do itself; anything else is the address, sshd, credentials.
  const hint =
    err.name === 'HostKeyError' || err.name === 'SudoHelperError'
      ? ''
      : `. Check the host and port in hosts${o.jumpHost ? ' and jump-host' : ''}, that sshd runs there, ` +
        'the user and key, and connect-timeout'
  const error = `${cause}${o.via ? ` (connecting${o.via})` : ''}${hint}`
  slot.log.error(`${slot.target.label} [connect] ${error}`, { step: 'connect' })
  slot.report = { ...untouched(slot), result: 'failed', failedStep: 'connect', error }
}
