/** The action's entry: settings → rollout → outputs + summary. Fails the job unless every host succeeded. */
import * as core from '@actions/core'
import { inspectBinary } from './binary.js'
import { JumpHost, SshHost } from './host/ssh-host.js'
import { releaseHooks, releaseOptions } from './releases.js'
import { setOutputs, writeSummary } from './report.js'
import { failureMessage, planFrom, runRollout, type RolloutResult } from './rollout.js'
import { readSettings, type HostTarget, type Settings } from './settings.js'
import { agentSocket, checkKeys, jumpCredentials } from './keys.js'
import { safetyHooks, safetyOptions, type SafetyRecord } from './safety.js'
import { mergeHooks, type UpgradePlan } from './upgrade/machine.js'
import type { Logger, LogWhere } from './upgrade/types.js'

export const coreLogger: Logger = {
  info: m => core.info(m),
  warn: (m, where) => core.warning(m, annotation(where)),
  error: (m, where) => core.error(m, annotation(where)),
  group: (title, fn) => core.group(title, fn)
}

/** An annotation titled with the host and the step it is about. */
function annotation(where?: LogWhere): core.AnnotationProperties | undefined {
  if (!where?.host && !where?.step) return undefined
  return { title: [where.host, where.step].filter(Boolean).join(': ') }
}

/** Registers every secret with the runner so that no log line shows it. */
export function maskSecrets(settings: Settings): void {
  for (const secret of [
    settings.privateKey,
    settings.passphrase,
    settings.password,
    settings.jumpPrivateKey,
    settings.jumpPassphrase,
    settings.jumpPassword
  ]) {
    if (!secret) continue
    core.setSecret(secret)
    // The runner masks line by line: register each line of a multi-line key as well.
    for (const line of secret.split('\n'))
      if (line.trim().length >= 8 && !/^-----/.test(line.trim())) core.setSecret(line.trim())
  }
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
  return (target, hostLog = log) =>
    SshHost.connect({
      target,
      credentials,
      hostKeys,
      sudo: settings.sudo,
      connectTimeoutMs,
      jump,
      log: m => hostLog.info(m)
    })
}

/** What the caller gives a run besides its settings: a cancel, and where the hosts' phases go. */
export interface RunControl {
  /** Aborted when the job is cancelled (SIGINT/SIGTERM): hosts mid-upgrade roll back. */
  signal?: AbortSignal
  /** Each host's phase after every change (the action saves them for its post step). */
  persist?: (records: SafetyRecord[]) => void
}

/** The deploy lock and the watchdog (safety.ts) before the release store's hooks, and the cancel. */
function guarded(settings: Settings, log: Logger, control: RunControl, plan: UpgradePlan): UpgradePlan {
  const safety = safetyHooks({ ...safetyOptions(settings, log), persist: control.persist })
  return { ...plan, hooks: mergeHooks(safety, plan.hooks), signal: control.signal }
}

export async function deploy(
  settings: Settings,
  log: Logger,
  control: RunControl = {}
): Promise<RolloutResult> {
  const binary = await inspectBinary(settings.binary!)
  log.info(
    `new binary ${binary.localPath}: ${(binary.bytes / 1e6).toFixed(1)} MB, sha256 ${binary.sha256}, ${binary.arch ?? 'script'}`
  )
  return rollout(settings, log, control, binary)
}

/** mode: rollback: each host hot-upgrades back to a release from its own store; nothing is sent. */
export async function rollback(
  settings: Settings,
  log: Logger,
  control: RunControl = {}
): Promise<RolloutResult> {
  log.info(
    `rollback to ${settings.rollbackTo ?? 'the release before the live one'}, from each host's release store`
  )
  // No binary yet: the afterPreflight hook picks each host's release from its store.
  const result = await rollout(settings, log, control, { sha256: '' })
  // A rollback request that changed nothing is said out loud, never a silent success.
  for (const h of result.hosts) {
    if (h.result !== 'unchanged') continue
    const message = `${h.host}: rollback-to ${settings.rollbackTo ?? ''} names the live release (${h.version ?? 'unknown version'}, sha256 ${(h.sha256 ?? '').slice(0, 12)}): nothing was rolled back`
    log.warn(message, { host: h.host, step: 'preflight' })
  }
  return result
}

/** The rollout of one binary (or of each host's chosen release), with the store, lock and watchdog. */
function rollout(
  settings: Settings,
  log: Logger,
  control: RunControl,
  source: UpgradePlan['source']
): Promise<RolloutResult> {
  const plan = { ...planFrom(settings, source), hooks: releaseHooks(releaseOptions(settings, process.env)) }
  return runRollout(settings, guarded(settings, log, control, plan), {
    connect: connector(settings, log),
    log
  })
}

/** The run for the settings' mode; shared by the action (run) and the command line (cli.ts). */
export async function perform(
  settings: Settings,
  log: Logger,
  control: RunControl = {}
): Promise<RolloutResult> {
  checkKeys(settings)
  if (settings.insecureSkipHostKeyCheck)
    log.warn(
      'insecure-skip-host-key-check is true: host keys are NOT verified; anyone on the path can impersonate the hosts'
    )
  return settings.mode === 'rollback' ? rollback(settings, log, control) : deploy(settings, log, control)
}

/**
 * GitHub cancels a step by sending SIGINT to its process, SIGTERM 7.5 s later, and killing the
 * process tree 2.5 s after that; the post step runs afterwards (docs.github.com, "Workflow
 * cancellation reference"; post-if: always()). The first signal aborts the run: every host in the
 * middle of an upgrade rolls back (or completes, when only the old master's QUIT remained) and its
 * lock is released before the process exits. Returns the function that removes the handlers.
 */
export function cancelOnSignals(controller: AbortController, log: Logger): () => void {
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log.warn(`received ${sig} again: still rolling back the hosts in the middle of an upgrade`)
      return
    }
    log.warn(
      `received ${sig}: the run is being cancelled; hosts in the middle of an upgrade roll back (or complete, when only the old master's QUIT remained) before the action exits`
    )
    controller.abort(sig)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return () => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
}

/** core.saveState, which must never fail a run: without it only the post step's clean-up is lost. */
function saveState(name: string, value: string): void {
  try {
    core.saveState(name, value)
  } catch (e) {
    if (!stateWarned)
      core.warning(
        `cannot save state for the post step (${(e as Error).message}): a killed run would not be cleaned up by it`
      )
    stateWarned = true
  }
}
let stateWarned = false

/** The state the post step reads (core.saveState): which hosts a killed run left mid-upgrade. */
export const POST_STATE = 'zerodownHosts'

export async function run(): Promise<void> {
  // The post step (post.ts) runs the same bundle: this tells it apart from the main step.
  saveState('isPost', 'true')
  const controller = new AbortController()
  const uninstall = cancelOnSignals(controller, coreLogger)
  try {
    const settings = readSettings(name => core.getInput(name), process.env)
    maskSecrets(settings)
    const result = await perform(settings, coreLogger, {
      signal: controller.signal,
      persist: records => saveState(POST_STATE, JSON.stringify(records))
    })
    setOutputs(result)
    await writeSummary(result)
    // Names the failing host(s) and how many hosts were upgraded, rolled back, failed, untouched.
    if (result.result !== 'upgraded' && result.result !== 'unchanged') core.setFailed(failureMessage(result))
  } catch (e) {
    core.setOutput('result', 'failed')
    core.setFailed((e as Error).message)
  } finally {
    uninstall()
  }
  // Cancelled: the hosts are settled and reported; do not wait for loops that were given up on.
  if (controller.signal.aborted) process.exit(process.exitCode ?? 0)
}
