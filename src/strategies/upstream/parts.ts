/** What the upstream steps of one backend host work on, and the one way they change its server's state. */
import type { StepContext } from '../../engine/step.js'
import type { Host } from '../../host/host.js'
import type { HostState } from '../strategy.js'
import type { HealthPlan } from './deps.js'
import type { LoadBalancer } from './load-balancer.js'
import type { ServerState } from './managed-file.js'

export interface UpstreamPlan {
  /** The backend's binary (binary-path). */
  livePath: string
  restartCommand: string
  startTimeoutMs: number
  pollIntervalMs: number
  drainTimeoutMs: number
  drainTimeoutAction: 'rollback' | 'proceed'
  health: HealthPlan
}

export interface CanaryPlan {
  weight: number
  durationMs: number
  maxErrorRate: number
}

export interface UpstreamHostState extends HostState {
  /** The host's server line in the block. */
  readonly address: string
  /** Workers of the load balancer from before the reload that took the server out. */
  oldWorkers?: number[]
  /** What the run did, for the undos and the repair advice. */
  swapped?: boolean
  restarted?: boolean
}

export interface UpstreamParts {
  host: Host
  lb: LoadBalancer
  plan: UpstreamPlan
  state: UpstreamHostState
  /** This host is a canary: back at canary.weight first, watched. */
  canary: CanaryPlan | null
}

export const live = (p: UpstreamParts) => {
  if (!p.state.running) throw new Error(`${p.host.name}: the live binary is not known yet`)
  return p.state.running
}

/** A change of the server's state, in the host's report and log. */
export async function shift(
  p: UpstreamParts,
  ctx: Pick<StepContext, 'report'>,
  to: ServerState,
  why: string
) {
  const old = await p.lb.setServer(p.state.address, to, why)
  const weights = (ctx.report.weights ??= [])
  weights.push({ at: new Date().toISOString(), weight: to.down ? 'down' : (to.weight ?? 1), why })
  return old
}
