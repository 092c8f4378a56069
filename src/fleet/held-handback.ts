/**
 * mode: commit and mode: abort of a host whose held-state record is version 2 (`revert:
 * 'handoff'`): a supervisor that cannot park its old process (tableflip) left the host on its new
 * process after a completed hand-over, with the previous binary kept beside the live one and the
 * hold run's watchdog armed. Commit keeps the new release (the kept binary goes, the release
 * store records the new one); abort puts the previous binary back at the live path and hands over
 * to it, the same undos a rollback runs, then checks health. held-mode.ts has read the record,
 * checked it against this run, and read the processes it names, under the deploy lock.
 */
import type { HostReport, Logger } from '../engine/types.js'
import type { Host } from '../host/host.js'
import { removeHeld, readProcesses, type HeldRecord, type sameProcess } from '../safety/held.js'
import { decideWatchdog } from '../safety/watchdog.js'
import type { Settings } from '../settings.js'
import { runHealthGate } from '../strategies/health.js'
import { planFrom } from '../strategies/hot-upgrade/index.js'
import { remoteSha256 } from '../strategies/hot-upgrade/install.js'
import type { Supervisor } from '../supervisors/supervisor.js'
import { finishCommit } from './held-store.js'
import { HostUpgrade } from './host-upgrade.js'

export interface HandBackHost {
  host: Host
  label: string
  dir: string
  rec: HeldRecord
  settings: Settings
  supervisor: Supervisor
  log: Logger
  verb: 'commit' | 'abort'
  /** What /proc says of the processes the record names. */
  old: ReturnType<typeof sameProcess>
  neu: ReturnType<typeof sameProcess>
  /** "held by <run> (old <pid>, new <pid>)", for messages. */
  held: string
  where: string
  /** The watchdog decided first (hold-timeout passed): wait for it and report. */
  watchdogFirst: () => Promise<HostReport>
}

function report(h: HandBackHost, result: HostReport['result'], extra: Partial<HostReport> = {}): HostReport {
  const now = new Date().toISOString()
  return {
    host: h.label,
    result,
    startedAt: now,
    endedAt: now,
    durationMs: 0,
    steps: [],
    drain: [],
    health: [],
    oldPid: h.rec.old.pid,
    newPid: h.rec.new.pid,
    ...extra
  }
}

/** Refuses, before the watchdog is told, what cannot be finished safely. */
async function check(h: HandBackHost): Promise<void> {
  const { rec, held, where } = h
  // The old process should be gone; a pid used again must never be waited for or killed by a revert.
  // A master that re-executed itself (HAProxy) is the new process under the old pid: judged as that.
  const samePid = rec.old.pid === rec.new.pid
  for (const [which, p, state] of [
    ['old', rec.old, samePid ? h.neu : h.old],
    ['new', rec.new, h.neu]
  ] as const)
    if (state === 'other')
      throw new Error(
        `pid ${p.pid} is no longer the ${which} process the hold run recorded (its start time or executable differ): not signalling it; check the host (record ${where})`
      )
  if (h.neu === 'gone' && h.verb === 'commit')
    throw new Error(`${held}: the new process is gone, there is nothing to commit to: run mode: abort`)
  if (h.neu === 'gone')
    throw new Error(
      `${held}: the new process is gone, so no hand-over back can start from it: check the host (record ${where}), then start the server on the previous binary ${rec.previousPath}`
    )
  if (h.verb === 'commit') return
  const [live, kept] = await Promise.all([
    remoteSha256(h.host, rec.livePath),
    remoteSha256(h.host, rec.previousPath)
  ])
  if (kept !== rec.oldBinarySha256 && live !== rec.oldBinarySha256)
    throw new Error(
      `${held}: the previous binary is no longer kept as ${rec.previousPath} (sha256 ${kept ?? 'missing'}, expected ${rec.oldBinarySha256}): nothing to hand back to; run mode: rollback for a release from the host's store`
    )
}

export async function finishHandBack(h: HandBackHost): Promise<HostReport> {
  const { host, label, rec, held, log } = h
  await check(h)
  // Only now is the watchdog told (it stays armed for whatever was refused above).
  const d = await decideWatchdog(host, rec.watchdog, rec.token, h.verb === 'commit' ? 'confirm' : 'cancel')
  if (d.verdict === 'not-ours')
    throw new Error(
      `the watchdog in ${rec.watchdog} belongs to another run than the hold run ${rec.token}: nothing was done`
    )
  if (d.verdict === 'rollback') return h.watchdogFirst()
  if (h.verb === 'commit') {
    // The kept binary's work is done: the release store keeps the old build from here on.
    const rm = await host.run(['rm', '-f', '--', rec.previousPath], { sudo: host.sudo })
    if (rm.code !== 0)
      log.warn(
        `${label}: cannot remove the kept binary ${rec.previousPath} (${rm.stderr.trim()}); remove it by hand`
      )
    await removeHeld(host, h.dir)
    log.info(`${label}: ${held}: committed: the new process ${rec.new.pid} stays`)
    await finishCommit(host, rec, h.settings, log, label)
    return report(h, 'upgraded')
  }
  log.info(`${label}: ${held}: handing over back to the previous binary (${rec.previousPath})`)
  const plan = planFrom(h.settings, { sha256: rec.newBinarySha256 }, h.supervisor)
  const back = await new HostUpgrade(host, plan, log).handBack(
    { masterPid: rec.old.pid, livePath: rec.livePath, liveSha256: rec.oldBinarySha256 },
    'mode: abort: back to the previous binary the hold run kept'
  )
  back.host = label
  if (back.result !== 'rolled-back') return back
  // The hand-over is judged like a deploy's: the process the pid file names runs the old binary, and answers.
  let serving = 0
  const stillServing = async () => {
    serving = await servingOld(host, h.settings.pidFile, rec.oldBinarySha256)
  }
  try {
    await stillServing()
    await runHealthGate(host, plan.health, {
      stillServing,
      note: m => log.info(`${label} [health] ${m}`),
      record: (ok, detail, atMs) => back.health.push({ atMs, ok, detail })
    })
  } catch (e) {
    await removeHeld(host, h.dir)
    const message = `back on the previous binary, but it does not pass its health check: ${(e as Error).message}`
    log.error(`${label}: ${message}`, { host: label, step: 'health' })
    return { ...back, result: 'failed', failedStep: 'health', error: message }
  }
  await removeHeld(host, h.dir)
  log.info(`${label}: ${serving} serves the previous binary again; the record is removed`)
  return { ...back, newPid: serving }
}

/** The pid the pid file names, when it runs the old binary; throws otherwise. */
async function servingOld(host: Host, pidFile: string, sha256: string): Promise<number> {
  const r = await host.run(['cat', '--', pidFile], { sudo: host.sudo })
  const pid = Number(r.stdout.trim())
  if (r.code !== 0 || !Number.isInteger(pid) || pid <= 1)
    throw new Error(`${pidFile} names no process (${(r.stderr || r.stdout).trim().slice(0, 100)})`)
  const now = (await readProcesses(host, [pid])).get(pid)
  if (!now || now.sha256 !== sha256)
    throw new Error(
      `${pidFile} names ${pid}, which ${now ? `runs sha256 ${now.sha256}` : 'is not running'}, not the previous binary`
    )
  return pid
}
