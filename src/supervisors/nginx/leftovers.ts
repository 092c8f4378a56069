/**
 * What an interrupted nginx upgrade leaves, as pre-flight meets it: an old master still alive
 * under .oldbin (refused, with the commands that finish or undo it), or a stale .oldbin file of no
 * old master (removed).
 */
import { check, type Host } from '../../host/host.js'
import { killCommand, privilegedCommand } from '../../host/advice.js'
import { StepError } from '../../engine/step.js'
import { isAlive, newMasterCandidates, probe, type Proc, type Snapshot } from './protocol.js'

const fail = (message: string): never => {
  throw new StepError('preflight', message)
}

/** An old master alive under .oldbin: an upgrade is in progress or was interrupted; nginx ignores USR2 then. */
export function refuseUpgradeInProgress(snap: Snapshot, pidFile: string, host: Host): void {
  const kill = (signal: string, ...pids: number[]) => killCommand(host, signal, pids)
  const o = snap.oldbinPid
  const oldMaster = o !== null && o !== snap.pid && isAlive(snap, o) ? snap.procs.get(o)! : null
  if (oldMaster !== null && looksLikeMaster(oldMaster, snap, snap.pid)) {
    const children = newMasterCandidates(snap, o!).map(p => p.pid)
    if (snap.pid === null || !isAlive(snap, snap.pid))
      fail(
        `an upgrade is in progress or was interrupted: the old master ${o} (${pidFile}.oldbin) is alive and pid-file ${pidFile} names no running master` +
          (children.length > 0 ? ` (its child ${children.join(', ')} never wrote it)` : '') +
          `. To go back to the old one: ${kill('HUP', o!)}` +
          (children.length > 0
            ? `; ${kill('TERM', ...children)}`
            : `; ${privilegedCommand(host, ['mv', '--', `${pidFile}.oldbin`, pidFile])}`) +
          ` (nginx renames ${pidFile}.oldbin back when its new master exits). Then deploy again`
      )
    fail(
      `an upgrade is in progress or was interrupted: the old master ${o} (${pidFile}.oldbin) and the master ${snap.pid} are both alive, ` +
        `and nginx ignores USR2 until one is gone. To keep the new one: ${kill('QUIT', o!)}. ` +
        `To go back to the old one: ${kill('HUP', o!)}; ${kill('QUIT', snap.pid!)}`
    )
  }
}

/** A .oldbin of no old master: nginx would overwrite it, but it misleads people and tools (and pre-flight). */
export async function removeStaleOldbin(
  host: Host,
  snap: Snapshot,
  pidFile: string,
  note: (s: string) => void
): Promise<Snapshot> {
  const o = snap.oldbinPid
  const pid = snap.pid!
  const oldMaster = o !== null ? snap.procs.get(o) : undefined
  const why =
    o === null
      ? 'it holds no pid'
      : o === pid
        ? `it names the running master ${pid} itself, not an old one`
        : !isAlive(snap, o)
          ? `its pid ${o} is not running`
          : `its pid ${o} is now "${oldMaster?.title ?? '?'}", not an nginx master`
  check(
    host,
    ['rm', '-f', '--', `${pidFile}.oldbin`],
    await host.run(['rm', '-f', '--', `${pidFile}.oldbin`], { sudo: host.sudo })
  )
  note(`removed a stale ${pidFile}.oldbin (${why}), left by an interrupted run`)
  return probe(host, pidFile)
}

/** Whether a live process named by .oldbin is an old master (not a pid reused by another program). */
function looksLikeMaster(proc: Proc, snap: Snapshot, pid: number | null): boolean {
  if (/^nginx: master process/.test(proc.title)) return true
  // A server that speaks the protocol under another title: its child is the master of the pid file.
  return pid !== null && snap.procs.get(pid)?.ppid === proc.pid
}
