/**
 * The forward half of a tableflip hand-over on one host: the upgrade signal and the wait for the
 * new process to name itself in the pid file, the old process's drain (it exits by itself), and
 * the check that it is gone. Each reads the host back and says what it saw.
 */
import { formatDuration } from '../../duration.js'
import { StepError } from '../../engine/step.js'
import { waitUntil, waitUntilSoon } from '../../engine/wait.js'
import { remoteSha256 } from '../../strategies/hot-upgrade/install.js'
import type { DrainOptions, SupervisorContext } from '../supervisor.js'
import { describe, exeSha256, isAlive, judgeStart, liveChildren, signal, type Snapshot } from './protocol.js'
import type { TableflipHost } from './state.js'

/**
 * How long after the signal, at least, "no child, pid file unchanged" means the new binary
 * exited at once: tableflip forks the child as soon as its signal handler runs.
 */
export const QUIET_MS = 2000
const QUIET_POLLS = 5

/** The upgrade signal to the serving process, then the wait for its child to be ready. Returns the child's pid. */
export async function startHandoff(
  s: TableflipHost,
  ctx: SupervisorContext,
  o: { startTimeoutMs: number; intervalMs: number }
): Promise<number> {
  const oldPid = s.facts().pid
  const sig = s.o.signal
  // Again after a lost connection: the signal may have arrived; the host says.
  const seen = ctx.retrying && s.signalled ? await s.read() : null
  if (seen && (seen.pid !== oldPid || liveChildren(seen, oldPid).length > 0))
    ctx.note(`${sig} had reached ${oldPid} before the connection was lost: not sent again`)
  else {
    await signal(s.host, sig, oldPid)
    s.signalled = true
    ctx.note(`sent ${sig} to ${oldPid}: it starts ${s.facts().livePath} as its child`)
  }
  const children = new Set<number>()
  let polls = 0
  let last: Snapshot | null = null
  const ready = await waitUntilSoon(o.startTimeoutMs, Math.min(o.intervalMs, 100), async elapsed => {
    const snap = (last = await s.read([...children]))
    polls++
    const verdict = judgeStart(snap, {
      oldPid,
      livePath: s.facts().livePath,
      signal: sig,
      sawChild: children.size > 0,
      quiet: elapsed >= QUIET_MS && polls >= QUIET_POLLS
    })
    if (verdict.kind === 'failed') throw new StepError('handoff', verdict.message)
    if (verdict.kind === 'waiting') verdict.children.forEach(c => children.add(c))
    return verdict.kind === 'ready' ? verdict.pid : undefined
  })
  if (ready === undefined)
    throw new StepError(
      'handoff',
      `no new process named itself in the pid file within start-timeout ${formatDuration(o.startTimeoutMs)} ` +
        `(the new binary never called Ready()): ${describe(last ?? (await s.read()), oldPid)}`
    )
  s.newPid = ready
  // The kernel keeps the file a process runs: it must be the binary now at the live path.
  const [runs, live] = await Promise.all([exeSha256(s.host, ready), remoteSha256(s.host, s.facts().livePath)])
  if (runs === null || runs !== live)
    throw new StepError(
      'handoff',
      `the new process ${ready} runs a file with sha256 ${runs ?? 'unreadable'}, not the new binary (${live ?? 'missing'})`
    )
  ctx.note(
    `${ready} is ready and names itself in the pid file, running the new binary (sha256 ${runs.slice(0, 12)})`
  )
  return ready
}

/** The new process still serves: alive and named in the pid file. */
export async function checkServing(s: TableflipHost, pid: number): Promise<void> {
  const snap = await s.read()
  if (!isAlive(snap, pid))
    throw new StepError(
      'health',
      `the new process ${pid} exited during the health gate: ${describe(snap, s.facts().pid, pid)}`
    )
  if (snap.pid !== pid)
    throw new StepError(
      'health',
      `the pid file names ${snap.pid ?? 'nothing'} now, not the new process ${pid}`
    )
}

/** The old process finishes its requests and exits by itself; waits for that. */
export async function waitForParent(
  s: TableflipHost,
  ctx: SupervisorContext,
  o: DrainOptions
): Promise<boolean> {
  const oldPid = s.facts().pid
  const started = Date.now()
  const gone = await waitUntil(o.timeoutMs, o.intervalMs, async () => {
    const alive = isAlive(await s.read(), oldPid)
    o.record(Date.now() - started, alive ? 1 : 0)
    return alive ? undefined : true
  })
  if (gone)
    ctx.note(
      `the old process ${oldPid} finished its requests and exited after ${formatDuration(Date.now() - started)}`
    )
  return gone === true
}

/** The point of no return: the old process is gone (or, after a drain that timed out, left to exit by itself). */
export async function checkRetired(
  s: TableflipHost,
  ctx: SupervisorContext,
  o: { unfinished: boolean; intervalMs: number }
): Promise<void> {
  const oldPid = s.facts().pid
  const newPid = s.newPid!
  let snap = await s.read()
  if (!isAlive(snap, newPid) || snap.pid !== newPid)
    throw new StepError(
      'retire',
      `the new process ${newPid} no longer serves: ${describe(snap, oldPid, newPid)}`
    )
  if (isAlive(snap, oldPid) && o.unfinished) {
    ctx.note(
      `the old process ${oldPid} accepts nothing and exits by itself once its last requests finish (its own shutdown timeout bounds them); ${newPid} serves every new connection`
    )
    return
  }
  const gone = await waitUntil(30_000, o.intervalMs, async () => {
    snap = await s.read()
    return isAlive(snap, oldPid) ? undefined : true
  })
  if (!gone)
    throw new StepError(
      'retire',
      `the old process ${oldPid} did not exit within 30s: ${describe(snap, oldPid, newPid)}`
    )
  ctx.note(`the old process is gone; ${newPid} serves alone`)
}
