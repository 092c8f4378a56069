/**
 * What keeps a host from being left half-upgraded, as steps around a strategy's own:
 *
 * - the deploy lock (lock.ts): taken first (in pre-flight's entry), renewed while the host's run
 *   lasts (a run that lost it stops at its next step and rolls back), released when the run settles;
 * - the watchdog (watchdog.ts): armed before the cut-over (undo: disarm), confirmed before the
 *   commit, given time while the run rolls back, extended while the host is held;
 * - the journal (journal.ts): each host's phase, for the post step.
 */
import { beforeStage, first, type RunSpec, type Settle, type Step } from '../engine/index.js'
import type { Logger } from '../engine/types.js'
import type { Host } from '../host/host.js'
import type { HostPlan } from '../strategies/strategy.js'
import type { Journal } from './journal.js'
import { HostLock, type LockOwner } from './lock.js'
import { lockStep, releaseLockSettle } from './lock-steps.js'
import { lockCheckpoint } from './lock-checkpoint.js'
import type { WatchdogPart } from '../supervisors/supervisor.js'
import { armStep, confirmStep, disarmSettle, holdObserver } from './watchdog-steps.js'
import { leaveHeld } from './held-steps.js'

export interface SafetyOptions {
  releaseDir?: string
  pidFile: string
  binaryPath?: string
  /** One more user the master may run as (master-user). */
  masterUser?: string
  lockLeaseMs: number
  /** Arm a watchdog before each cut-over. */
  watchdog: boolean
  watchdogLeaseMs: number
  owner: LockOwner
  /** This run's token on the hosts. */
  token: string
  /** The supervisor's part of the watchdog, and whether its revert needs the old binary first. */
  part: WatchdogPart
  binaryFirst: boolean
  /** Warnings that belong to no step (a held host's watchdog could not be extended). */
  log: Logger
  /**
   * hold: true: hosts are left held beyond the run, their watchdog armed for timeoutMs. handBack:
   * the supervisor cannot park its old process (it exited after its drain); the host is left on
   * its new process, and going back is a hand-over to the kept previous binary.
   */
  hold?: { timeoutMs: number; supervisor: string; handBack: boolean }
}

/** One host's safety state: its lock, its release dir, its watchdog. */
export interface HostSafety {
  readonly host: Host
  lock?: HostLock
  releaseDir?: string
  /** The watchdog runs and nobody decided yet. */
  armed: boolean
  /** The old server's start time (/proc/PID/stat field 22) read when the watchdog was armed. */
  oldStartTime?: string
  heartbeat?: NodeJS.Timeout
}

export function stopHeartbeat(s: HostSafety): void {
  if (s.heartbeat) clearInterval(s.heartbeat)
  s.heartbeat = undefined
}

/** The strategy's run with the lock, the watchdog and the journal around it. */
export function safeguard(plan: HostPlan, o: SafetyOptions, journal: Journal): RunSpec {
  const s: HostSafety = { host: plan.state.host, armed: false }
  journal.of(s.host.name)
  let steps: Step[] = first(plan.steps, lockStep(s, o, journal, plan.prefetch))
  steps = beforeStage(steps, 'change', armStep(s, plan.state, o, journal, plan.changeAhead))
  steps = beforeStage(steps, 'commit', confirmStep(s, o, journal, plan.retireAhead))
  const settle: Settle[] = [disarmSettle(s, o), releaseLockSettle(s, journal)]
  const leave = o.hold ? [leaveHeld(s, plan.state, o, journal), releaseLockSettle(s, journal)] : undefined
  return {
    steps,
    settle,
    leave,
    observers: [holdObserver(s, o, journal)],
    checkpoint: checkpoints(
      plan.checkpoint,
      lockCheckpoint(() => s.lock, steps)
    ),
    repair: () => plan.repair()
  }
}

/** The strategy's checkpoint (a lock it holds beyond the host: the load balancer's) first, then the host's lock. */
function checkpoints(
  strategy: HostPlan['checkpoint'],
  host: (step: Step) => Promise<void>
): (step: Step) => Promise<void> {
  return async step => {
    await strategy?.(step)
    await host(step)
  }
}
