/**
 * Runs the upstream strategy on the upstream sandbox with real SSH connections: the load balancer
 * opened as a run opens it, then each backend's steps through the engine one host at a time,
 * held until all passed (rollback-fleet), then committed or rolled back together.
 */
import { HostRun } from '../../src/engine/engine.js'
import type { HostReport, Logger } from '../../src/engine/types.js'
import type { Host } from '../../src/host/host.js'
import { SshHost } from '../../src/host/ssh-host.js'
import { sha256File } from '../../src/local/sha256.js'
import { upstreamStrategy } from '../../src/strategies/upstream/index.js'
import { LoadBalancer, type LoadBalancerOptions } from '../../src/strategies/upstream/load-balancer.js'
import type { CanaryPlan, UpstreamPlan } from '../../src/strategies/upstream/parts.js'
import {
  ACCESS_LOG,
  APP_PATH,
  APP_PORT,
  RESTART,
  UPSTREAM_FILE,
  UPSTREAM_NAME,
  type UpstreamSandbox
} from '../../test/sandbox/upstream.js'
import { hostOptions } from './ssh.js'

export interface UpstreamRun {
  reports: HostReport[]
  lines: string[]
  lb: LoadBalancer | null
  error?: string
}

export function upstreamPlan(over: Partial<UpstreamPlan> = {}): UpstreamPlan {
  return {
    livePath: APP_PATH,
    restartCommand: RESTART,
    startTimeoutMs: 20_000,
    pollIntervalMs: 100,
    drainTimeoutMs: 30_000,
    drainTimeoutAction: 'rollback',
    health: { url: `http://{host}:${APP_PORT}/health`, checks: 3, intervalMs: 200, timeoutMs: 5_000 },
    ...over
  }
}

export function recordingLogger(lines: string[]): Logger {
  return {
    info: m => void lines.push(m),
    warn: m => void lines.push(`WARN ${m}`),
    error: m => void lines.push(`ERROR ${m}`),
    group: (_t, fn) => fn()
  }
}

export async function runUpstream(
  u: UpstreamSandbox,
  /** One build for every host, or one per host. */
  binary: string | string[],
  o: { plan?: Partial<UpstreamPlan>; canary?: CanaryPlan; lb?: Partial<LoadBalancerOptions> } = {}
): Promise<UpstreamRun> {
  const lines: string[] = []
  const log = recordingLogger(lines)
  const connections: Host[] = []
  const connect = async (h: (typeof u.backends)[number]) => {
    const c = await SshHost.connect(hostOptions(u.sb, h))
    connections.push(c)
    return c
  }
  try {
    const lbHost = await connect(u.lb)
    let lb: LoadBalancer
    try {
      lb = await LoadBalancer.open(lbHost, {
        file: UPSTREAM_FILE,
        name: UPSTREAM_NAME,
        pidFile: '/run/nginx.pid',
        stateDir: '/var/lib/zerodown/upstream/app',
        pollMs: 100,
        reloadTimeoutMs: 10_000,
        needLog: o.canary !== undefined && o.canary.durationMs > 0,
        note: m => lines.push(`lb: ${m}`),
        ...o.lb
      })
    } catch (e) {
      return { reports: [], lines, lb: null, error: (e as Error).message }
    }
    const hosts = await Promise.all(u.backends.map(connect))
    const strategy = upstreamStrategy({
      lb,
      plan: upstreamPlan(o.plan),
      addressOf: h => `${h.address}:${APP_PORT}`,
      canaryOf: h => (h === hosts[0] ? (o.canary ?? null) : null)
    })
    const files = hosts.map((_, i) => (typeof binary === 'string' ? binary : binary[i]!))
    const runs: HostRun[] = []
    let failed = false
    for (const [i, h] of hosts.entries()) {
      const source = { sha256: await sha256File(files[i]!), localPath: files[i]! }
      const plan = strategy.plan(h, source, log)
      const run = new HostRun(h, { steps: plan.steps, repair: plan.repair }, { log })
      runs.push(run)
      const r = await run.run({ hold: true })
      if (r.result !== 'parked' && r.result !== 'unchanged') {
        failed = true
        break
      }
    }
    const reports: HostReport[] = []
    for (const run of runs) {
      if (run.report.result !== 'parked') reports.push(run.report)
      else reports.push(failed ? await run.abort('fleet rollback: another host failed') : await run.commit())
    }
    if (reports.every(r => r.result === 'upgraded' || r.result === 'rolled-back' || r.result === 'unchanged'))
      await lb.settled()
    return { reports, lines, lb }
  } finally {
    await Promise.allSettled(connections.map(c => c.close()))
  }
}

export { ACCESS_LOG }
