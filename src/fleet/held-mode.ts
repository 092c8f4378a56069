/**
 * mode: commit and mode: abort: finish the hosts a `hold: true` run left held, one run for the
 * whole fleet (every shard). On each host, under its deploy lock: the held-state record is read
 * (absent: nothing held, reported), checked as ours, and every process it names is checked
 * against /proc (same start time, same executable) before anything is signalled. Then the hold
 * run's watchdog is told (confirm, or cancel) and the host is finished through the same steps
 * the post step uses (HostUpgrade.recover): commit retires the old process, abort returns to it
 * and puts the previous binary back. A host whose old process could not be parked (record version
 * 2, tableflip) is finished by held-handback.ts: abort hands over back to the previous binary.
 * Running either twice is harmless: the second finds nothing held.
 */
import type { HostReport, Logger } from '../engine/types.js'
import type { Host } from '../host/host.js'
import { checkTrust } from '../host/trust.js'
import { neutralize } from '../remote-text.js'
import { checkProcesses, checkRecord } from './held-checks.js'
import { finishHandBack } from './held-handback.js'
import { finishCommit } from './held-store.js'
import { ReleaseStore } from '../releases/store.js'
import {
  readHeld,
  readProcesses,
  removeHeld,
  sameProcess,
  heldPath,
  type HeldRecord
} from '../safety/held.js'
import { HostLock, lockPath, type LockOwner } from '../safety/lock.js'
import { decideWatchdog, inspectWatchdog, waitForWatchdog } from '../safety/watchdog.js'
import type { HostTarget, Settings } from '../settings.js'
import { planFrom } from '../strategies/hot-upgrade/index.js'
import { sidePaths } from '../strategies/hot-upgrade/install.js'
import type { Supervisor } from '../supervisors/supervisor.js'
import { HostUpgrade } from './host-upgrade.js'
import { finishEach } from './held-loop.js'
import type { RolloutResult } from './tally.js'

export interface HeldModeDeps {
  connect: (target: HostTarget) => Promise<Host>
  log: Logger
  supervisor: Supervisor
  owner: LockOwner
  token: string
  /** The run's cancel: no further host starts; the ones being finished complete (held-loop.ts). */
  signal?: AbortSignal
}

type Verb = 'commit' | 'abort'

/** Hosts finished at the same time, at least (each is a few round trips and one signal). */
const WIDTH = 16

export async function runHeldMode(settings: Settings, deps: HeldModeDeps): Promise<RolloutResult> {
  const verb = settings.mode as Verb
  deps.log.info(
    `${verb}: ${settings.hosts.length} host(s): ${verb === 'commit' ? 'retiring the old processes a hold: true run left held' : 'returning every held host to its original process and previous binary'}`
  )
  const run = await finishEach({
    targets: settings.hosts,
    width: Math.max(WIDTH, settings.maxParallel),
    verb,
    log: deps.log,
    signal: deps.signal,
    finish: (target, log) => finishOne(target, settings, { ...deps, log }, verb)
  })
  return { ...run, supervisor: deps.supervisor.names.id }
}

function bare(host: string, result: HostReport['result'], error?: string): HostReport {
  const now = new Date().toISOString()
  return {
    host,
    result,
    startedAt: now,
    endedAt: now,
    durationMs: 0,
    steps: [],
    drain: [],
    health: [],
    ...(error ? { error, failedStep: 'held' } : {})
  }
}

async function finishOne(
  target: HostTarget,
  settings: Settings,
  deps: HeldModeDeps,
  verb: Verb
): Promise<HostReport> {
  const label = target.label
  let host: Host
  try {
    host = await deps.connect(target)
  } catch (e) {
    deps.log.error(`${label}: cannot connect: ${(e as Error).message}`, { host: label, step: 'connect' })
    return bare(label, 'untouched', `cannot connect: ${(e as Error).message}`)
  }
  let lock: HostLock | undefined
  try {
    const { live, pid } = await liveBinary(host, settings)
    const dir = settings.releaseDir ?? ReleaseStore.forLive(host, undefined, live).dir
    // A deploy's lock checks first: who may write the pid file, the binary's folder and the store.
    await checkTrust(host, {
      pidFile: settings.pidFile,
      masterUser: settings.masterUser,
      storeDir: dir,
      pid,
      livePath: live,
      stagingPath: sidePaths(live).staging
    })
    lock = await HostLock.acquire(host, {
      path: lockPath(dir),
      token: deps.token,
      leaseMs: settings.lockLeaseMs,
      owner: deps.owner,
      warn: m => deps.log.warn(m, { host: label, step: 'held' })
    })
    return await finishLocked(host, label, dir, live, settings, deps, verb)
  } catch (e) {
    const message = neutralize((e as Error).message)
    deps.log.error(`${label}: ${verb} failed: ${message}`, { host: label, step: 'held' })
    return bare(label, 'failed', message)
  } finally {
    await lock?.release().catch(() => undefined)
    await host.close().catch(() => undefined)
  }
}

/** The live binary: binary-path, or the executable of the process the pid file names (the new one while held). */
async function liveBinary(host: Host, settings: Settings): Promise<{ live: string; pid: number }> {
  const script =
    'p=$(cat -- "$1" 2>/dev/null); case $p in ""|*[!0-9]*) exit 0;; esac; echo "$p"; readlink "/proc/$p/exe" 2>/dev/null'
  const r = await host.run(['sh', '-c', script, 'sh', settings.pidFile], { sudo: host.sudo })
  const [pidText, exe] = r.stdout.split('\n')
  const live = settings.binaryPath ?? (exe ?? '').trim().replace(/ \(deleted\)$/, '')
  const pid = Number(pidText)
  if (!live.startsWith('/') || !(pid > 1))
    throw new Error(
      `no running server is named by ${settings.pidFile}, so its release store (and any held record in it) is not known: give pid-file, or release-dir`
    )
  return { live, pid }
}

async function finishLocked(
  host: Host,
  label: string,
  dir: string,
  live: string,
  settings: Settings,
  deps: HeldModeDeps,
  verb: Verb
): Promise<HostReport> {
  const text = await readHeld(host, dir)
  if (text === null) {
    deps.log.info(
      `${label}: nothing held here (no ${heldPath(dir)}): ${verb === 'commit' ? 'already committed, or never held' : 'already back, or never held'}; nothing to do`
    )
    return bare(label, 'unchanged')
  }
  const rec = checkRecord(text, dir, live, settings, deps)
  const held = `held by ${rec.run} (old ${rec.old.pid}, new ${rec.new.pid})`
  const first = () => watchdogFirst(host, rec, dir, label, verb, deps.log, held)
  // The watchdog is read before the processes: when it rolled the host back, the new process is gone by design.
  const wd = await inspectWatchdog(host, rec.watchdog)
  if (wd === null || wd.token !== rec.token)
    throw new Error(
      `the watchdog in ${rec.watchdog} belongs to another run than the hold run ${rec.token}: nothing was done`
    )
  if (wd.verdict === 'rollback') return first()
  const procs = await readProcesses(host, [rec.old.pid, rec.new.pid])
  const old = sameProcess(rec.old, procs.get(rec.old.pid))
  const neu = sameProcess(rec.new, procs.get(rec.new.pid))
  if (rec.revert === 'handoff') {
    const { supervisor, log } = deps
    const where = heldPath(dir)
    return finishHandBack({
      host,
      label,
      dir,
      rec,
      settings,
      supervisor,
      log,
      verb,
      old,
      neu,
      held,
      where,
      watchdogFirst: first
    })
  }
  checkProcesses(rec, old, neu, verb, held, heldPath(dir))
  // Only now is the watchdog told (it stays armed for whatever was refused above).
  const d = await decideWatchdog(host, rec.watchdog, rec.token, verb === 'commit' ? 'confirm' : 'cancel')
  if (d.verdict === 'not-ours')
    throw new Error(
      `the watchdog in ${rec.watchdog} belongs to another run than the hold run ${rec.token}: nothing was done`
    )
  if (d.verdict === 'rollback') return first()
  if (verb === 'commit' && old === 'gone') {
    await removeHeld(host, dir)
    deps.log.info(`${label}: ${held}: the old process is already gone: already committed`)
    return bare(label, 'unchanged')
  }
  deps.log.info(
    `${label}: ${held}: ${verb === 'commit' ? `retiring the old process ${rec.old.pid}` : `returning to the old process ${rec.old.pid} and the previous binary`}`
  )
  const plan = planFrom(settings, { sha256: rec.newBinarySha256 }, deps.supervisor)
  const report = await new HostUpgrade(host, plan, deps.log).recover(
    { masterPid: rec.old.pid, livePath: rec.livePath, liveSha256: rec.oldBinarySha256 },
    { complete: verb === 'commit', reason: `mode: abort: back to the process the hold run parked` }
  )
  report.host = label
  const done = verb === 'commit' ? report.result === 'upgraded' : report.result === 'rolled-back'
  if (done) {
    await removeHeld(host, dir)
    if (verb === 'commit') await finishCommit(host, rec, settings, deps.log, label)
  }
  return report
}

/** hold-timeout passed before this run: the watchdog returned the host (or is doing it). */
async function watchdogFirst(
  host: Host,
  rec: HeldRecord,
  dir: string,
  label: string,
  verb: Verb,
  log: Logger,
  held: string
): Promise<HostReport> {
  const end = await waitForWatchdog(host, rec.watchdog, 90_000)
  const result = neutralize(end?.result ?? 'unknown')
  await removeHeld(host, dir)
  if (verb === 'abort' && result === 'rolled-back') {
    log.info(
      `${label}: ${held}: its watchdog already ${rec.revert === 'handoff' ? 'handed it back to the previous binary' : 'returned it to its original process'} at hold-timeout`
    )
    return { ...bare(label, 'rolled-back'), oldPid: rec.old.pid, newPid: rec.new.pid }
  }
  throw new Error(
    `${held}: its watchdog reached hold-timeout first and rolled the host back (${result}); ${verb === 'commit' ? 'this host runs the old version: deploy again' : 'check the host'}`
  )
}
