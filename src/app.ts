/**
 * What the three entries share (main, post, cli): connect to hosts, and perform a run for the
 * settings' mode — the binary, the plan, each host's run wrapped in the release store, the lock,
 * the watchdog and the journal, the rollout. Nothing here touches @actions/core.
 */
import type { Logger } from './engine/types.js'
import { HostUpgrade, type HostWrap } from './fleet/host-upgrade.js'
import { planBatches } from './fleet/plan.js'
import { runHeldMode } from './fleet/held-mode.js'
import { runRollout } from './fleet/rollout.js'
import type { RolloutResult } from './fleet/tally.js'
import { JumpHost, SshHost } from './host/ssh-host.js'
import { checkHelper, throughHelper } from './sudo-helper/check.js'
import { agentSocket, checkKeys, jumpCredentials } from './keys.js'
import { inspectBinary } from './local/binary.js'
import { releaseOptions, withReleases } from './releases/steps.js'
import { safeguard, type SafetyOptions } from './safety/guard.js'
import { Journal, type SafetyRecord } from './safety/journal.js'
import { lockOwnerFromEnv, newToken } from './safety/lock.js'
import { runReadOnly, type ModeResult } from './modes/index.js'
import type { ReadOnlyMode } from './settings/modes.js'
import { watchdogLeaseMs } from './safety/watchdog.js'
import { SettingsError, type HostTarget, type Settings } from './settings.js'
import { checkHoldPairing } from './settings/hold.js'
import { planFrom, type UpgradePlan } from './strategies/hot-upgrade/index.js'
import type { UpgradeSource } from './strategies/strategy.js'
import { openUpstream } from './strategies/upstream/open.js'
import { supervisorFor } from './supervisors/index.js'
import type { Supervisor } from './supervisors/supervisor.js'

export { HostUpgrade }

/** What the caller gives a run besides its settings: a cancel, and where the hosts' phases go. */
export interface RunControl {
  /** Aborted when the job is cancelled (SIGINT/SIGTERM): hosts mid-upgrade roll back. */
  signal?: AbortSignal
  /** Each host's phase after every change (the action saves them for its post step). */
  persist?: (record: SafetyRecord, index: number) => void
}

export function connector(
  settings: Settings,
  log: Logger
): (target: HostTarget, hostLog?: Logger) => Promise<SshHost> {
  const credentials = {
    privateKey: settings.privateKey,
    passphrase: settings.passphrase,
    password: settings.password,
    agent: agentSocket(settings)
  }
  const hostKeys = {
    knownHosts: settings.knownHosts,
    fingerprints: settings.hostFingerprints,
    insecureSkip: settings.insecureSkipHostKeyCheck
  }
  const connectTimeoutMs = settings.connectTimeoutMs
  // One bastion connection for all hosts of the run.
  const jump = settings.jumpHost
    ? new JumpHost(settings.jumpHost, jumpCredentials(settings), {
        hostKeys,
        connectTimeoutMs,
        log: m => log.info(m)
      })
    : undefined
  const helper = settings.sudoHelper
  return async (target, hostLog = log) => {
    const host = await SshHost.connect({
      target,
      credentials,
      hostKeys,
      sudo: settings.sudo,
      privileged: helper === undefined ? undefined : throughHelper(helper),
      connectTimeoutMs,
      jump,
      log: m => hostLog.info(m)
    })
    if (helper !== undefined)
      await checkHelper(host, helper, settings).catch(async (e: Error) => {
        await host.close()
        throw e
      })
    return host
  }
}

/** The supervisor the settings name. */
export function supervisorOf(settings: Settings): Supervisor {
  return supervisorFor(settings.supervisor, settings)
}

/** Refuses what the supervisor cannot honour, before any host is touched. */
export function checkPairings(settings: Settings, supervisor: Supervisor): void {
  if (settings.rollbackFleet && settings.hosts.length > 1 && !supervisor.capabilities.canHold)
    throw new SettingsError(
      'rollback-fleet',
      `${supervisor.names.title} cannot hold its old process until the whole fleet has passed`,
      "Set rollback-fleet: false (each host commits as soon as it passes); to take a fleet back, run mode: rollback, a hand-over to the previous release from each host's store"
    )
  checkHoldPairing(settings, supervisor.capabilities, supervisor.names.title)
}

/** The safety layer's options: this run's lock owner and token, the watchdog's lease and part. */
export function safetyOptions(
  settings: Settings,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env
): SafetyOptions {
  const owner = lockOwnerFromEnv(env)
  const supervisor = supervisorOf(settings)
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
    part: supervisor.watchdog,
    binaryFirst: supervisor.capabilities.revert === 'handoff',
    log,
    hold: settings.hold
      ? {
          timeoutMs: settings.holdTimeoutMs,
          supervisor: supervisor.names.id,
          handBack: !supervisor.capabilities.canHold
        }
      : undefined
  }
}

/** Each host's run: the strategy's steps, then the release store's, then the lock, the watchdog and the journal. */
export function hostWrap(
  settings: Settings,
  log: Logger,
  control: RunControl,
  safety: SafetyOptions = safetyOptions(settings, log)
): HostWrap {
  const journal = new Journal({ token: safety.token, pidFile: settings.pidFile }, control.persist)
  const releases = releaseOptions(settings, process.env)
  return hp => safeguard(withReleases(hp, releases), safety, journal)
}

async function rollout(
  settings: Settings,
  log: Logger,
  control: RunControl,
  source: UpgradeSource
): Promise<RolloutResult> {
  const plan: UpgradePlan = { ...planFrom(settings, source, supervisorOf(settings)), signal: control.signal }
  const connect = connector(settings, log)
  const safety = safetyOptions(settings, log)
  if (settings.strategy !== 'upstream')
    return runRollout(settings, plan, { connect, log, wrap: hostWrap(settings, log, control, safety) })
  // Traffic shifting: the load balancer is read, locked and checked before any host is touched;
  // the hot upgrade's watchdog (it revives nginx masters) has nothing to do on these hosts.
  const up = await openUpstream(settings, {
    connect: target => connect(target),
    log,
    owner: safety.owner,
    token: safety.token,
    batches: planBatches(settings.hosts.length, settings.canary, settings.maxParallel)
  })
  let settled = false
  try {
    const run = await runRollout(
      settings,
      { ...plan, strategy: up.strategy },
      { connect, log, wrap: hostWrap(settings, log, control, { ...safety, watchdog: false }) }
    )
    settled = run.hosts.every(
      h => h.result === 'upgraded' || h.result === 'rolled-back' || h.result === 'unchanged'
    )
    return run
  } finally {
    await up.finish({ settled })
  }
}

/** The run for the settings' mode; shared by the action (main.ts) and the command line (cli.ts). */
export async function perform(
  settings: Settings & { mode: Exclude<Settings['mode'], ReadOnlyMode> },
  log: Logger,
  control: RunControl = {}
): Promise<RolloutResult> {
  checkKeys(settings)
  checkPairings(settings, supervisorOf(settings))
  if (settings.insecureSkipHostKeyCheck)
    log.warn(
      'insecure-skip-host-key-check is true: host keys are NOT verified; anyone on the path can impersonate the hosts'
    )
  if (settings.mode === 'commit' || settings.mode === 'abort') {
    const safety = safetyOptions(settings, log)
    return runHeldMode(settings, {
      connect: target => connector(settings, log)(target),
      log,
      supervisor: supervisorOf(settings),
      owner: safety.owner,
      token: safety.token,
      signal: control.signal
    })
  }
  if (settings.mode === 'rollback') {
    log.info(
      `rollback to ${settings.rollbackTo ?? 'the release before the live one'}, from each host's release store`
    )
    // No binary yet: each host's release store chooses (releases/steps.ts, chooseBinary).
    const result = await rollout(settings, log, control, { sha256: '' })
    warnUnchangedRollbacks(settings, log, result)
    return result
  }
  const binary = await inspectBinary(settings.binary!)
  log.info(
    `new binary ${binary.localPath}: ${(binary.bytes / 1e6).toFixed(1)} MB, sha256 ${binary.sha256}, ${binary.arch ?? 'script'}`
  )
  return rollout(settings, log, control, binary)
}

/**
 * mode plan or status: every host read, none changed (src/modes). A plan checks the new binary on
 * each host as a deploy would, and refuses what a deploy's settings would refuse.
 */
export async function performReadOnly(
  settings: Settings & { mode: ReadOnlyMode },
  log: Logger,
  control: RunControl = {}
): Promise<ModeResult> {
  checkKeys(settings)
  const supervisor = supervisorOf(settings)
  if (settings.mode === 'plan') checkPairings(settings, supervisor)
  if (settings.insecureSkipHostKeyCheck)
    log.warn(
      'insecure-skip-host-key-check is true: host keys are NOT verified; anyone on the path can impersonate the hosts'
    )
  const source = settings.mode === 'plan' ? await inspectBinary(settings.binary!) : undefined
  log.info(
    source
      ? `plan: what a deploy of ${source.localPath} (sha256 ${source.sha256}) would do on ${settings.hosts.length} host(s); nothing is changed`
      : `status of ${settings.hosts.length} host(s): what runs and what each release store holds; nothing is changed`
  )
  return runReadOnly({
    settings,
    supervisor,
    connect: connector(settings, log),
    log,
    source,
    signal: control.signal
  })
}

/** A rollback request that changed nothing is said out loud, never a silent success. */
function warnUnchangedRollbacks(settings: Settings, log: Logger, result: RolloutResult): void {
  for (const h of result.hosts) {
    if (h.result !== 'unchanged') continue
    const message = `${h.host}: rollback-to ${settings.rollbackTo ?? ''} names the live release (${h.version ?? 'unknown version'}, sha256 ${(h.sha256 ?? '').slice(0, 12)}): nothing was rolled back`
    log.warn(message, { host: h.host, step: 'preflight' })
  }
}

/** What a cancel does to a run of `mode`, in words (the first signal, and any after it). */
export function cancelling(mode: string | undefined): { first: string; again: string } {
  switch (mode) {
    case 'commit':
    case 'abort': {
      const verb = mode === 'commit' ? 'committed' : 'returned to its original process'
      return {
        first: `no further held host is ${verb}; the hosts being finished complete before the action exits, the others stay held until a later ${mode} or their watchdog's hold-timeout`,
        again: `still finishing the hosts being ${mode === 'commit' ? 'committed' : 'returned'}`
      }
    }
    case 'plan':
    case 'status':
      return {
        first: 'no further host is read; a plan removes what it staged before the action exits',
        again: 'still removing what was staged'
      }
    default:
      return {
        first:
          "hosts in the middle of an upgrade roll back (or complete, when only the old master's QUIT remained) before the action exits",
        again: 'still rolling back the hosts in the middle of an upgrade'
      }
  }
}

/**
 * GitHub cancels a step by sending SIGINT to its process, SIGTERM 7.5 s later, and killing the
 * process tree 2.5 s after that; the post step runs afterwards (docs.github.com, "Workflow
 * cancellation reference"; post-if: always()). The first signal aborts the run: every host in the
 * middle of an upgrade rolls back (or completes, when only the retire of its old process remained)
 * and its lock is released before the process exits. Returns the function that removes the handlers.
 */
export function cancelOnSignals(
  controller: AbortController,
  log: Logger,
  /** The run's mode once the settings are read (the message says what a cancel does to it). */
  mode: () => string | undefined = () => undefined
): () => void {
  const handler = (sig: NodeJS.Signals) => {
    const what = cancelling(mode())
    if (controller.signal.aborted) {
      log.warn(`received ${sig} again: ${what.again}`)
      return
    }
    log.warn(`received ${sig}: the run is being cancelled; ${what.first}`)
    controller.abort(sig)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return () => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
}
