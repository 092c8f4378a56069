/** What a hot upgrade needs to know, beside the binary: the settings it runs with. */
import type { Settings } from '../../settings.js'
import type { Supervisor } from '../../supervisors/supervisor.js'
import type { HealthPlan } from '../health.js'
import type { Strategy, UpgradeSource } from '../strategy.js'

export interface UpgradePlan {
  pidFile: string
  /** The release store (pre-flight checks who may write it); undefined: the default beside the binary's name. */
  releaseDir?: string
  /** One more user the master may run as (master-user). */
  masterUser?: string
  /** Remote live path; undefined: the running server's executable. */
  binaryPath?: string
  /** The new binary (the release store may name another one per host after inspection). */
  source: UpgradeSource
  /** The server's hand-over protocol; default nginx. */
  supervisor?: Supervisor
  /**
   * Another strategy's steps instead of the hot upgrade's (strategy upstream: traffic shifting
   * through a load balancer); the fleet, the release store and the safety layers stay the same.
   */
  strategy?: Strategy
  /**
   * Aborted when the job is cancelled: the run stops at the step it is in (a wait stops at
   * once) and rolls back what changed. Once only the old process's retire remains, it completes.
   */
  signal?: AbortSignal
  startTimeoutMs: number
  pollIntervalMs: number
  drainTimeoutMs: number
  drainTimeoutAction: 'rollback' | 'proceed'
  health: HealthPlan
  /** Run on the host against the staged binary before the swap; {binary} is its path. */
  verifyCommand?: string
  /** Where the new binary is staged; default the deploy's `.NAME.zerodown-new` beside it (a plan has its own). */
  stagingPath?: (livePath: string) => string
  /** Plan and status: inspection only reads (the supervisor notes what a deploy would tidy). */
  readOnly?: boolean
}

/** The plan from the settings, for one binary (or, in rollback mode, none yet: each host's store chooses). */
export function planFrom(settings: Settings, source: UpgradeSource, supervisor?: Supervisor): UpgradePlan {
  return {
    pidFile: settings.pidFile,
    binaryPath: settings.binaryPath,
    releaseDir: settings.releaseDir,
    masterUser: settings.masterUser,
    source,
    supervisor,
    startTimeoutMs: settings.startTimeoutMs,
    pollIntervalMs: settings.pollIntervalMs,
    drainTimeoutMs: settings.drainTimeoutMs,
    drainTimeoutAction: settings.drainTimeoutAction,
    verifyCommand: settings.verifyCommand,
    health: {
      url: settings.healthUrl,
      command: settings.healthCommand,
      expect: settings.healthExpect,
      checks: settings.healthChecks,
      intervalMs: settings.healthIntervalMs,
      timeoutMs: settings.healthTimeoutMs
    }
  }
}
