/** Watching the old workers leave after WINCH: their count, polled, until none is left. */
import type { Host } from '../../host/host.js'
import { StepError } from '../../engine/step.js'
import { waitUntil } from '../../engine/wait.js'
import { isAlive, oldWorkers, probe, type Snapshot } from './protocol.js'

interface DrainContext {
  /** A read taken just before (the health gate's last): used when it shows the drain done. */
  first: Snapshot | null
  pidFile: string
  oldPid: number
  newPid: number
  intervalMs: number
  timeoutMs: number
  note: (s: string) => void
  record: (atMs: number, count: number) => void
}

/** Resolves true when drained, false when timeoutMs passed with old workers left. */
export async function waitForDrain(host: Host, ctx: DrainContext): Promise<boolean> {
  const f = ctx.first
  if (
    f &&
    isAlive(f, ctx.newPid) &&
    isAlive(f, ctx.oldPid) &&
    oldWorkers(f, ctx.oldPid, ctx.newPid).length === 0
  ) {
    ctx.record(0, 0)
    ctx.note('0 old workers left after 0.0s')
    return true
  }
  let last = -1
  const drained = await waitUntil(ctx.timeoutMs, ctx.intervalMs, async elapsed => {
    const snap = await probe(host, ctx.pidFile, [ctx.oldPid, ctx.newPid])
    if (!isAlive(snap, ctx.newPid))
      throw new StepError('drain', `the new master ${ctx.newPid} exited during the drain`)
    if (!isAlive(snap, ctx.oldPid))
      throw new StepError('drain', `the old master ${ctx.oldPid} exited during the drain`)
    // The new master is a child of the old one: it is not an old worker (see PROTOCOL.md).
    const count = oldWorkers(snap, ctx.oldPid, ctx.newPid).length
    if (count !== last) {
      ctx.record(elapsed, count)
      ctx.note(`${count} old worker${count === 1 ? '' : 's'} left after ${(elapsed / 1000).toFixed(1)}s`)
      last = count
    }
    return count === 0 ? true : undefined
  })
  return drained === true
}
