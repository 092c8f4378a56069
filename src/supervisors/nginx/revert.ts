/**
 * The way back on nginx, driven by what the host shows: the old master serves again before the
 * new one stops (HUP when WINCH was sent or none of its workers accepts), every new master is
 * stopped (QUIT, TERM, KILL), and the pid file holds the old pid again. Also the state and
 * commands of a host whose revert failed, and what an interrupted run left (the post step).
 */
import { quote } from '../../host/quote.js'
import { killCommand } from '../../host/advice.js'
import { waitUntil } from '../../engine/wait.js'
import type { RepairAdvice } from '../supervisor.js'
import {
  acceptingWorkers,
  describe,
  isAlive,
  liveChildren,
  newMasterCandidates,
  signal,
  SIGNALS,
  steadyChildren
} from './protocol.js'
import type { NginxHost } from './state.js'

export async function restoreMasters(s: NginxHost, info: (m: string) => void): Promise<void> {
  const oldPid = s.facts().pid
  let snap = await s.read()
  if (!isAlive(snap, oldPid))
    throw new Error(`the old master ${oldPid} is not running: it cannot be restored`)
  if ((s.winchSent && !s.hupSent) || acceptingWorkers(snap, oldPid).length === 0) {
    await signal(s.host, SIGNALS.restartWorkers, oldPid)
    s.hupSent = true
    info(`sent HUP to the old master ${oldPid}: it starts workers again`)
    const back = await waitUntil(10_000, 50, async () => {
      snap = await s.read()
      return acceptingWorkers(snap, oldPid).length > 0 ? true : undefined
    })
    if (!back)
      throw new Error(
        `the old master ${oldPid} started no workers within 10s of HUP: ${describe(snap, oldPid)}`
      )
    info(
      `the old master's workers ${acceptingWorkers(snap, oldPid)
        .map(p => p.pid)
        .join(', ')} accept again`
    )
  }
  for (const [sig, waitMs] of [
    [SIGNALS.gracefulStop, 10_000],
    ['TERM', 5_000],
    ['KILL', 5_000]
  ] as const) {
    snap = await s.read()
    let news = newMasterCandidates(snap, oldPid)
    // A graceful stop is for a master that started: one that wrote its pid file or has workers.
    if (sig === SIGNALS.gracefulStop)
      news = news.filter(p => snap.pid === p.pid || steadyChildren(snap, p.pid).length > 0)
    if (news.length === 0) continue
    // After a KILL its workers would live on, orphaned, and keep accepting: they go too.
    const targets = sig === 'KILL' ? news.flatMap(p => [p, ...liveChildren(snap, p.pid)]) : news
    for (const p of targets) await signal(s.host, sig, p.pid).catch(() => undefined)
    info(`sent ${sig} to the new master ${news.map(p => `${p.pid} (${p.title || p.exe})`).join(', ')}`)
    await waitUntil(waitMs, 50, async () => {
      snap = await s.read()
      return newMasterCandidates(snap, oldPid).length === 0 ? true : undefined
    })
    if (newMasterCandidates(snap, oldPid).length === 0) break
  }
  const ok = await waitUntil(10_000, 50, async () => {
    snap = await s.read()
    const restored =
      snap.pid === oldPid &&
      !snap.oldbinExists &&
      newMasterCandidates(snap, oldPid).length === 0 &&
      acceptingWorkers(snap, oldPid).length > 0
    return restored ? true : undefined
  })
  if (!ok) throw new Error(`the old master did not take over again: ${describe(snap, oldPid)}`)
  info(`the old master ${oldPid} serves again with ${acceptingWorkers(snap, oldPid).length} workers`)
}

/** The masters' part of a repair: their state now, and only the commands that state calls for. */
export async function repairMasters(s: NginxHost): Promise<RepairAdvice> {
  const oldPid = s.facts().pid
  const snap = await s.read().catch(() => null)
  const commands: string[] = []
  const news = snap ? newMasterCandidates(snap, oldPid).map(p => p.pid) : []
  if (snap === null || !isAlive(snap, oldPid)) {
    commands.push(
      `# the old master ${oldPid} is gone: keep the new master if it serves (check its workers), or start the server again with the old binary`
    )
  } else {
    if (acceptingWorkers(snap, oldPid).length === 0)
      commands.push(
        `# the old master ${oldPid} has no serving workers: bring them back`,
        killCommand(s.host, 'HUP', [oldPid])
      )
    if (news.length > 0)
      commands.push(
        `# stop the new master (QUIT; if it stays, TERM, then KILL)`,
        killCommand(s.host, 'QUIT', news)
      )
  }
  return {
    state: snap ? describe(snap, oldPid) : 'the process state could not be read',
    commands,
    check: {
      says: `the pid file holds ${oldPid}, ${s.pidFile}.oldbin is gone`,
      command: `cat -- ${quote(s.pidFile)}; ls -l -- ${quote(`${s.pidFile}.oldbin`)}`
    }
  }
}

/** What an interrupted run left: the old master gone, only its QUIT left, or in between. */
export async function assessMasters(
  s: NginxHost
): Promise<{ state: 'old-gone' | 'retire-left' | 'in-between'; serving: number | null; detail: string }> {
  const old = s.facts().pid
  const snap = await s.read()
  const serving = snap.pid !== null && snap.pid !== old && isAlive(snap, snap.pid) ? snap.pid : null
  const detail = describe(snap, old)
  if (!isAlive(snap, old)) return { state: 'old-gone', serving, detail }
  if (
    serving !== null &&
    snap.procs.get(serving)?.ppid === old &&
    acceptingWorkers(snap, serving).length > 0 &&
    acceptingWorkers(snap, old).length === 0
  ) {
    s.newPid = serving
    return { state: 'retire-left', serving, detail }
  }
  return { state: 'in-between', serving, detail }
}
