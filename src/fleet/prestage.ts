/**
 * prestage: true. Before any host is signalled, every host of the run connects, takes its lock,
 * passes pre-flight, receives the new binary and verifies it (the config test), many at a time:
 * a slow link or a big binary costs once, not once per batch. When every host is ready, the
 * batches run as usual, each host going on from its verified staging file. When any host fails,
 * no host changes: every pre-staged host removes its staged file, releases its lock and ends
 * untouched.
 */
import type { Printer } from './host-log.js'
import type { HostUpgrade } from './host-upgrade.js'
import type { IdleHosts } from './idle.js'
import type { Pool } from './pool.js'
import { passed, type Slot } from './slot.js'

/** Hosts pre-staged at the same time, at least (uploads share the runner's link). */
const PRESTAGE_WIDTH = 16

export interface Prestage {
  out: Printer
  pool: Pool
  slots: Slot[]
  width: number
  cancelled: () => boolean
  /** Connects the slot and makes its HostUpgrade (slot.upgrade); null when the connection failed (reported). */
  start: (slot: Slot) => Promise<HostUpgrade | null>
  /** A ready host may wait detached (idle-connections): woken before it is released. */
  idle: IdleHosts
}

/** Pre-stages every host; true when all are ready (or have nothing to do), false when the run must stop. */
export async function prestageAll(o: Prestage): Promise<boolean> {
  const width = Math.max(o.width, PRESTAGE_WIDTH)
  o.out.line(
    'info',
    `pre-staging: uploading and verifying the new binary on ${o.slots.length} host(s), ${Math.min(width, o.slots.length)} at a time, before any host is signalled`
  )
  const failed = () => o.slots.filter(s => s.report !== undefined && !passed(s.report))
  await o.pool.each(
    o.slots,
    'prestage',
    width,
    async slot => {
      const upgrade = await o.start(slot)
      // The report is final when the host has nothing to do or failed; else it is ready.
      const ended = await upgrade?.prestage()
      if (ended) slot.report = ended
    },
    () => failed().length > 0 || o.cancelled()
  )
  const bad = failed()
  if (bad.length === 0 && !o.cancelled()) {
    o.out.line('info', `pre-staging done: every host holds the verified new binary`)
    return true
  }
  const reason = o.cancelled()
    ? 'the run was cancelled during pre-staging'
    : `pre-staging failed on ${bad.map(s => `${s.target.label} (at ${s.report!.failedStep ?? 'an unknown step'})`).join(', ')}`
  o.out.line(
    o.cancelled() ? 'warn' : 'error',
    `${reason}: no host is signalled; every host keeps its old version`,
    {
      step: 'prestage'
    }
  )
  await releaseReady(o, reason)
  return false
}

/**
 * Hosts pre-staged for a batch that will not run (pre-staging failed, or the rollout stopped
 * before their batch): each removes its staged file and releases its lock, and ends untouched.
 */
export async function releaseReady(
  o: Pick<Prestage, 'pool' | 'slots' | 'width' | 'idle'>,
  reason: string
): Promise<void> {
  const ready = o.slots.filter(s => s.upgrade !== undefined && s.report === undefined)
  await o.pool.each(ready, 'release', Math.max(o.width, PRESTAGE_WIDTH), async slot => {
    o.idle.wake(slot.upgrade!.host)
    slot.report = await slot.upgrade!.release(reason)
  })
}
