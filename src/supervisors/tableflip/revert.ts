/**
 * The way back on tableflip, driven by what the host shows. The old process cannot be held or
 * revived (it stops accepting at the hand-over and exits by itself), so:
 *
 * - before the hand-over completed (the pid file still names the old process): stop the child
 *   that is not ready (TERM, then KILL); the old process never stopped serving;
 * - after it (the pid file names the new process): with the old binary back at the live path
 *   (the strategy puts it back first: revert is `handoff`), wait for the old process to exit
 *   (bounded; then it is killed, since tableflip refuses a hand-over while it lives), send the
 *   upgrade signal to the new process, and wait until a process running the old binary names
 *   itself in the pid file. The new process then drains and exits by itself.
 *
 * Also the state and commands of a host whose revert failed, and what an interrupted run left.
 */
import { formatDuration } from '../../duration.js'
import { waitUntil, waitUntilSoon } from '../../engine/wait.js'
import { remoteSha256 } from '../../strategies/hot-upgrade/install.js'
import type { RepairAdvice, SupervisorSession } from '../supervisor.js'
import { describe, exePath, exeSha256, isAlive, liveChildren, signal, type Snapshot } from './protocol.js'
import type { TableflipHost } from './state.js'

/** Whether pid runs the old binary (by the sha256 of the file the kernel keeps for it). */
async function runsOld(s: TableflipHost, pid: number): Promise<boolean> {
  return (await exeSha256(s.host, pid)) === s.facts().liveSha256
}

/** Stops the children of pid that never became ready: TERM, then KILL. */
async function stopChildren(s: TableflipHost, pid: number, info: (m: string) => void): Promise<Snapshot> {
  let snap = await s.read()
  for (const sig of ['TERM', 'KILL'] as const) {
    const kids = liveChildren(snap, pid)
    if (kids.length === 0) break
    for (const k of kids) await signal(s.host, sig, k.pid).catch(() => undefined)
    info(`sent ${sig} to ${kids.map(k => k.pid).join(', ')}, the child of ${pid} that never became ready`)
    await waitUntil(5000, 50, async () => {
      snap = await s.read(kids.map(k => k.pid))
      return liveChildren(snap, pid).length === 0 ? true : undefined
    })
  }
  return snap
}

export async function revertHandoff(s: TableflipHost, info: (m: string) => void): Promise<void> {
  const oldPid = s.facts().pid
  let snap = await s.read()
  const cur = snap.pid
  if (isAlive(snap, oldPid) && (cur === oldPid || !isAlive(snap, cur))) {
    snap = await stopChildren(s, oldPid, info)
    if (liveChildren(snap, oldPid).length > 0 || snap.pid !== oldPid)
      throw new Error(`the old process ${oldPid} does not serve alone again: ${describe(snap, oldPid)}`)
    info(`${oldPid} never stopped serving; no child is left`)
    return
  }
  if (cur === null || !isAlive(snap, cur))
    throw new Error(
      `nothing serves: the old process ${oldPid} is gone and the pid file names no running process (${describe(snap, oldPid)})`
    )
  if (await runsOld(s, cur)) {
    info(`${cur} already runs the old binary`)
    return
  }
  const live = await remoteSha256(s.host, s.facts().livePath)
  if (live !== s.facts().liveSha256)
    throw new Error(
      `${s.facts().livePath} is not the old binary (sha256 ${live ?? 'missing'}): a hand-over back would start the wrong file`
    )
  if (isAlive(snap, oldPid)) {
    info(
      `waiting for the old process ${oldPid} to finish its requests and exit: tableflip refuses a hand-over back until then`
    )
    const gone = await waitUntil(s.o.parentWaitMs, s.o.pollIntervalMs, async () =>
      isAlive(await s.read(), oldPid) ? undefined : true
    )
    if (!gone) {
      await signal(s.host, 'KILL', oldPid)
      info(
        `the old process ${oldPid} still ran after ${formatDuration(s.o.parentWaitMs)}: killed, so that the hand-over back can start`
      )
      await waitUntil(5000, 50, async () => (isAlive(await s.read(), oldPid) ? undefined : true))
    }
  }
  await signal(s.host, s.o.signal, cur)
  info(`sent ${s.o.signal} to ${cur}: hand-over back to the old binary`)
  const back = await waitUntilSoon(60_000, Math.min(s.o.pollIntervalMs, 100), async () => {
    snap = await s.read([cur])
    const n = snap.pid
    if (n === null || n === cur || !isAlive(snap, n)) return undefined
    return exePath(snap.procs.get(n)!).path === s.facts().livePath && (await runsOld(s, n)) ? n : undefined
  })
  if (back === undefined)
    throw new Error(
      `no process running the old binary named itself in the pid file within 60s of ${s.o.signal}: ${describe(snap, oldPid, cur)}`
    )
  s.newPid = back
  info(`${back} serves the old binary again; ${cur} drains and exits by itself`)
}

export async function repairHandoff(s: TableflipHost): Promise<RepairAdvice> {
  const oldPid = s.facts().pid
  const pf = s.o.pidFile
  const sudo = s.host.sudo ? 'sudo ' : ''
  const check = {
    says: `the pid file names a live process running ${s.facts().livePath} with sha256 ${s.facts().liveSha256}`,
    command: `cat ${pf}; ${sudo}sha256sum /proc/$(cat ${pf})/exe`
  }
  let snap: Snapshot
  try {
    snap = await s.read()
  } catch {
    return { state: 'the process state could not be read', commands: [], check }
  }
  const commands: string[] = []
  const cur = snap.pid
  const kids = liveChildren(snap, oldPid).filter(k => k.pid !== cur)
  if (isAlive(snap, oldPid) && kids.length > 0)
    commands.push(
      `# stop the child that never became ready`,
      `${sudo}kill -TERM ${kids.map(k => k.pid).join(' ')}`
    )
  if (cur !== null && cur !== oldPid && isAlive(snap, cur)) {
    if (isAlive(snap, oldPid))
      commands.push(
        `# wait until the old process ${oldPid} has exited (it finishes its requests)`,
        `while kill -0 ${oldPid}; do sleep 1; done`
      )
    commands.push(
      `# with the old binary back at ${s.facts().livePath}: hand over to it`,
      `${sudo}kill -${s.o.signal} ${cur}`
    )
  } else if (!isAlive(snap, oldPid)) {
    commands.push(`# nothing serves: start the server again with the old binary at ${s.facts().livePath}`)
  }
  return { state: describe(snap, oldPid, s.newPid), commands, check }
}

export async function assessHandoff(s: TableflipHost): ReturnType<SupervisorSession['assess']> {
  const oldPid = s.facts().pid
  const snap = await s.read()
  const cur = snap.pid
  const serving = cur !== null && cur !== oldPid && isAlive(snap, cur) ? cur : null
  const detail = describe(snap, oldPid)
  if (!isAlive(snap, oldPid)) return { state: 'old-gone', serving, detail }
  if (serving !== null && exePath(snap.procs.get(serving)!).path === s.facts().livePath) {
    s.newPid = serving
    return { state: 'retire-left', serving, detail }
  }
  return { state: 'in-between', serving, detail }
}
