/**
 * What keeps a host from being left half-upgraded, as hooks of the state machine:
 *
 * - the deploy lock (src/lock.ts): taken before pre-flight reads anything, renewed while the
 *   host's run lasts, released on every exit path (settled);
 * - the watchdog (src/upgrade/watchdog.ts): armed before the swap, confirmed before the old
 *   master's QUIT, cancelled after the action's own rollback, extended while the host is parked;
 * - a record of each host's phase, handed to `persist` at every change, so that the post step can
 *   finish what a killed run left (it rolls back, or completes when only the QUIT remained).
 *
 * Nothing here knows GitHub: main.ts persists the records with core.saveState.
 */
import type { Host } from './host/host.js'
import { checkTrust, TrustError } from './host/trust.js'
import { formatDuration } from './duration.js'
import { HostLock, lockOwnerFromEnv, lockPath, newToken, type LockOwner } from './lock.js'
import { ReleaseStore } from './releases.js'
import type { Settings } from './settings.js'
import { sidePaths } from './upgrade/install.js'
import type { HookContext, SettledContext, StartContext, UpgradeHooks } from './upgrade/machine.js'
import { StepError, type Logger } from './upgrade/types.js'
import {
  decideWatchdog,
  extendWatchdog,
  inspectWatchdog,
  startWatchdog,
  waitForWatchdog,
  watchdogDir,
  watchdogLeaseMs,
  WatchdogBusyError
} from './upgrade/watchdog.js'

/** Where a host stands, for the post step. */
export type SafetyPhase = 'locked' | 'changing' | 'committing' | 'rolling-back' | 'parked' | 'settled'

export interface SafetyRecord {
  /** The host's label (user@host:port), as in the hosts input. */
  host: string
  token: string
  phase: SafetyPhase
  pidFile: string
  /** The lock directory, once taken. */
  lock?: string
  /** The watchdog's state dir, once armed. */
  watchdog?: string
  oldPid?: number
  livePath?: string
  oldSha256?: string
  newSha256?: string
  result?: string
}

export interface SafetyOptions {
  releaseDir?: string
  pidFile: string
  binaryPath?: string
  masterUser?: string
  lockLeaseMs: number
  /** Arm a watchdog before each swap. */
  watchdog: boolean
  watchdogLeaseMs: number
  owner: LockOwner
  /** This run's token on the hosts. */
  token: string
  log: Logger
  /** Called with every host's record after each change (main saves them for the post step). */
  persist?: (records: SafetyRecord[]) => void
}

export function safetyOptions(
  settings: Settings,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env
): SafetyOptions {
  const owner = lockOwnerFromEnv(env)
  return {
    releaseDir: settings.releaseDir,
    pidFile: settings.pidFile,
    binaryPath: settings.binaryPath,
    masterUser: settings.masterUser,
    lockLeaseMs: settings.lockLeaseMs,
    watchdog: settings.watchdog,
    watchdogLeaseMs: watchdogLeaseMs({
      startTimeoutMs: settings.startTimeoutMs,
      healthTimeoutMs: settings.healthTimeoutMs,
      drainTimeoutMs: settings.drainTimeoutMs
    }),
    owner,
    token: newToken(owner),
    log
  }
}

interface HostState {
  record: SafetyRecord
  lock?: HostLock
  releaseDir?: string
  /** The watchdog runs and nobody decided yet. */
  armed: boolean
  heartbeat?: NodeJS.Timeout
}

/** How long a rollback may take before the watchdog would step in. */
const ROLLBACK_GRACE_MS = 120_000
/** How long to wait for a watchdog that decided first to finish its rollback. */
const WATCHDOG_FINISH_MS = 90_000

/** The master named by the pid file and the binary it runs, read before pre-flight; null when unknown. */
async function masterExecutable(host: Host, pidFile: string): Promise<{ pid: number; path: string } | null> {
  const r = await host.run(
    [
      'sh',
      '-c',
      'p=$(cat -- "$1" 2>/dev/null); case $p in ""|*[!0-9]*) exit 0;; esac; echo "$p"; readlink "/proc/$p/exe" 2>/dev/null',
      'sh',
      pidFile
    ],
    { sudo: host.sudo }
  )
  const [pid, exe] = r.stdout.split('\n')
  const path = (exe ?? '').trim().replace(/ \(deleted\)$/, '')
  // pid 1 is never a master (pre-flight refuses it): no lock is taken for it.
  return path.startsWith('/') && Number(pid) > 1 ? { pid: Number(pid), path } : null
}

async function trustOrRefuse(
  host: Host,
  o: SafetyOptions,
  master: { pid: number; path: string },
  storeDir: string
): Promise<void> {
  const plan = { pidFile: o.pidFile, masterUser: o.masterUser, storeDir }
  await checkTrust(host, {
    ...plan,
    ...master,
    livePath: master.path,
    stagingPath: sidePaths(master.path).staging
  }).catch((e: Error) => {
    throw e instanceof TrustError ? new StepError('preflight', e.message) : e
  })
}

export function safetyHooks(o: SafetyOptions): UpgradeHooks {
  const hosts = new Map<string, HostState>()
  const persist = () => o.persist?.([...hosts.values()].map(s => ({ ...s.record })))
  const stateOf = (host: Host): HostState => {
    let s = hosts.get(host.name)
    if (!s) {
      s = { record: { host: host.name, token: o.token, phase: 'locked', pidFile: o.pidFile }, armed: false }
      hosts.set(host.name, s)
    }
    return s
  }
  /** The host enters a phase: the heartbeat stops and the post step learns where it stands. */
  const enter = (host: Host, phase: SafetyPhase): HostState => {
    const s = stateOf(host)
    stopHeartbeat(s)
    s.record.phase = phase
    persist()
    return s
  }
  const stopHeartbeat = (s: HostState) => {
    if (s.heartbeat) clearInterval(s.heartbeat)
    s.heartbeat = undefined
  }
  const wdDir = (s: HostState) => watchdogDir(s.releaseDir!)

  /** The watchdog decided first: wait until it has finished, and say what it did. */
  const afterWatchdog = async (host: Host, s: HostState, note: (m: string) => void): Promise<string> => {
    note(`the watchdog reached its deadline first and rolls the host back; waiting for it to finish`)
    const end = await waitForWatchdog(host, wdDir(s), WATCHDOG_FINISH_MS)
    s.armed = false
    const result = end?.result ?? (end?.running ? 'still running' : 'unknown')
    note(`the watchdog's result: ${result}`)
    return result
  }

  return {
    async beforeStart({ host, note }: StartContext): Promise<void> {
      const s = stateOf(host)
      if (s.lock) return // a pre-flight run again after a lost connection: the lock is ours already
      const master = await masterExecutable(host, o.pidFile)
      const live = o.binaryPath ?? master?.path
      if (o.releaseDir === undefined && live === undefined) {
        // Pre-flight fails on the missing master next, before anything changes.
        note('no deploy lock: the running binary (and so its release store) is not known yet')
        return
      }
      const releaseDir = o.releaseDir ?? ReleaseStore.forLive(host, undefined, live!).dir
      // The lock is the first file made: who may write its folder is checked first (pre-flight again).
      if (master !== null) await trustOrRefuse(host, o, master, releaseDir)
      s.releaseDir = releaseDir
      const path = lockPath(releaseDir)
      s.lock = await HostLock.acquire(host, {
        path,
        token: o.token,
        leaseMs: o.lockLeaseMs,
        owner: o.owner,
        warn: m => o.log.warn(m, { host: host.name, step: 'preflight' })
      })
      s.record.lock = path
      s.record.phase = 'locked'
      persist()
      note(
        `took the deploy lock ${path} (lease ${formatDuration(o.lockLeaseMs)}, renewed while this run works on the host)`
      )
      // Stale state of an earlier run: its watchdog.
      const wd = await inspectWatchdog(host, watchdogDir(releaseDir))
      if (wd?.running && wd.token !== o.token)
        throw new WatchdogBusyError(host.name, watchdogDir(releaseDir), wd.pid ?? 0, wd.token ?? '')
      if (wd && !wd.running && wd.verdict === 'rollback' && wd.result !== null) {
        const what = `the watchdog of an earlier run (${wd.token ?? 'unknown'}) rolled this host back: ${wd.result} (log: ${watchdogDir(releaseDir)}/log)`
        if (wd.result === 'rolled-back' || wd.result === 'nothing') note(what)
        else
          o.log.warn(`${host.name}: ${what}; pre-flight checks what it left`, {
            host: host.name,
            step: 'preflight'
          })
      }
    },

    async beforeSwap(ctx: HookContext): Promise<void> {
      const { host, facts, note } = ctx
      const s = stateOf(host)
      Object.assign(s.record, {
        phase: 'changing',
        oldPid: facts.masterPid,
        livePath: facts.livePath,
        oldSha256: facts.liveSha256,
        newSha256: ctx.source.sha256
      })
      if (o.watchdog && s.releaseDir !== undefined) s.record.watchdog = wdDir(s)
      persist()
      if (!o.watchdog || s.armed) return
      if (s.releaseDir === undefined) {
        note('no watchdog: the release store of this host is not known')
        return
      }
      const wd = await startWatchdog(host, {
        dir: wdDir(s),
        token: o.token,
        pidFile: o.pidFile,
        oldPid: facts.masterPid,
        livePath: facts.livePath,
        previousPath: sidePaths(facts.livePath).previous,
        oldSha256: facts.liveSha256,
        leaseMs: o.watchdogLeaseMs
      })
      s.armed = true
      note(
        `watchdog ${wd.pid} armed on the host: unless this run confirms, it rolls the host back by itself in ${formatDuration(o.watchdogLeaseMs)} (log: ${wdDir(s)}/log)`
      )
    },

    async beforeQuit(ctx: HookContext): Promise<void> {
      const { host, note } = ctx
      const s = enter(host, 'committing')
      if (!s.armed) return
      const d = await decideWatchdog(host, wdDir(s), o.token, 'confirm')
      if (d.decided || d.verdict === 'confirm') {
        s.armed = false
        note('confirmed the watchdog: the upgrade goes through')
        return
      }
      if (d.verdict === 'not-ours')
        throw new StepError(
          'quit',
          `the watchdog in ${wdDir(s)} belongs to another run: the deploy lock was lost; not going on`
        )
      const result = await afterWatchdog(host, s, note)
      throw new StepError(
        'quit',
        `the watchdog rolled the host back at its deadline (lease ${formatDuration(o.watchdogLeaseMs)}) before this run could confirm: ${result}. ` +
          `The upgrade took longer than start-timeout + health-timeout + drain-timeout allowed`
      )
    },

    async beforeRollback(ctx: HookContext): Promise<void> {
      const { host, note } = ctx
      const s = enter(host, 'rolling-back')
      if (!s.armed) return
      if (await extendWatchdog(host, wdDir(s), o.token, ROLLBACK_GRACE_MS)) {
        note(`the watchdog waits ${formatDuration(ROLLBACK_GRACE_MS)} more while this run rolls back`)
        return
      }
      await afterWatchdog(host, s, note)
    },

    async onParked(ctx: HookContext): Promise<void> {
      const { host } = ctx
      const s = stateOf(host)
      s.record.phase = 'parked'
      persist()
      if (!s.armed) return
      // While parked the watchdog's deadline moves with this run's heartbeat: if the run vanishes,
      // the host goes back to its old master one lease later.
      const extend = () =>
        void extendWatchdog(host, wdDir(s), o.token, o.watchdogLeaseMs).catch((e: Error) =>
          o.log.warn(`${host.name}: could not extend the watchdog: ${e.message}`)
        )
      extend()
      stopHeartbeat(s)
      s.heartbeat = setInterval(extend, Math.min(60_000, Math.max(1000, Math.floor(o.watchdogLeaseMs / 3))))
      s.heartbeat.unref()
    },

    async settled({ host, report, log }: SettledContext): Promise<void> {
      const s = hosts.get(host.name)
      if (!s) return
      stopHeartbeat(s)
      const note = (m: string) => log.info(`${host.name} [settle] ${m}`)
      try {
        if (s.armed) {
          const verdict = report.result === 'upgraded' ? 'confirm' : 'cancel'
          const d = await decideWatchdog(host, wdDir(s), o.token, verdict)
          if (d.decided || d.verdict === verdict) {
            s.armed = false
            note(`disarmed the watchdog (${verdict})`)
          } else if (d.verdict !== 'not-ours') {
            await afterWatchdog(host, s, note)
          }
        }
      } catch (e) {
        log.warn(`${host.name}: could not disarm the watchdog in ${wdDir(s)}: ${(e as Error).message}`, {
          host: host.name,
          step: 'rollback'
        })
      }
      let phase: SafetyPhase = 'settled'
      if (s.lock) {
        const how = await s.lock.release()
        if (how === 'released') note(`released the deploy lock ${s.lock.path}`)
        else if (how === 'not-ours')
          log.warn(
            `${host.name}: the deploy lock ${s.lock.path} was in other hands at the end (its lease ran out)`
          )
        else if (how === 'error') phase = 'locked' // the post step releases it
      }
      s.record.phase = phase
      s.record.result = report.result
      persist()
    }
  }
}
