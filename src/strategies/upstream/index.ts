/**
 * Strategy `upstream`: traffic shifting through an nginx load balancer, for servers that cannot
 * hand over their sockets. One LoadBalancer per run, shared by the hosts' plans.
 */
import type { Host } from '../../host/host.js'
import type { Logger } from '../../engine/types.js'
import { lockCheckpoint } from '../../safety/lock-checkpoint.js'
import type { HostLock } from '../../safety/lock.js'
import type { HostPlan, Strategy, UpgradeSource } from '../strategy.js'
import type { LoadBalancer } from './load-balancer.js'
import type { CanaryPlan, UpstreamParts, UpstreamPlan } from './parts.js'
import { repairAdvice } from './repair.js'
import { changeSteps, inspectSteps, stageSteps } from './steps.js'

export interface UpstreamStrategyOptions {
  lb: LoadBalancer
  plan: UpstreamPlan
  /** The server line of a host (upstream-server with {host} filled in). */
  addressOf(host: Host): string
  /** The canary's plan for a host of the canary batch; null for the others. */
  canaryOf(host: Host): CanaryPlan | null
  /**
   * The load balancer's deploy lock, held for the whole run: when another run takes it, each
   * backend's run stops before its next step and rolls back, as for its own host's lock.
   */
  lock?: HostLock
}

export function upstreamStrategy(o: UpstreamStrategyOptions): Strategy {
  return {
    id: 'upstream',
    title: 'traffic shifting through an nginx load balancer',
    // A host that passed stays in with the new version; a fleet rollback takes it out again.
    canHold: true,
    plan(host: Host, source: UpgradeSource, _log: Logger): HostPlan {
      const p: UpstreamParts = {
        host,
        lb: o.lb,
        plan: o.plan,
        canary: o.canaryOf(host),
        state: { host, source, running: null, address: o.addressOf(host) }
      }
      return {
        state: p.state,
        steps: [...inspectSteps(p), ...stageSteps(p), ...changeSteps(p)],
        anchors: { inspected: 'preflight', verified: 'verify' },
        repair: () => repairAdvice(p),
        checkpoint: lockCheckpoint(() => o.lock)
      }
    }
  }
}
