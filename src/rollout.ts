/**
 * Many hosts: one connection each, upgraded in order, and an honest overall result. A failure
 * stops the rollout; hosts not reached stay untouched.
 */
import type { Host } from './host/host.js'
import type { HostTarget, Settings } from './settings.js'
import { HostUpgrade, type UpgradePlan } from './upgrade/machine.js'
import type { HostReport, HostResult, Logger } from './upgrade/types.js'

export interface RolloutResult {
  result: HostResult
  hosts: HostReport[]
  durationMs: number
  counts: Record<HostResult, number>
}

export interface RolloutDeps {
  connect(target: HostTarget): Promise<Host>
  log: Logger
}

export function planFrom(settings: Settings, source: UpgradePlan['source']): UpgradePlan {
  return {
    pidFile: settings.pidFile,
    binaryPath: settings.binaryPath,
    source,
    startTimeoutMs: settings.startTimeoutMs,
    pollIntervalMs: settings.pollIntervalMs,
    drainTimeoutMs: settings.drainTimeoutMs,
    drainTimeoutAction: settings.drainTimeoutAction,
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

function untouched(target: HostTarget, error?: string): HostReport {
  const now = new Date().toISOString()
  return {
    host: target.label,
    result: 'untouched',
    startedAt: now,
    endedAt: now,
    steps: [],
    drain: [],
    health: [],
    error
  }
}

/** The overall result: success only when every host ended upgraded or unchanged. */
export function overall(reports: HostReport[]): { result: HostResult; counts: Record<HostResult, number> } {
  const counts: Record<HostResult, number> = {
    upgraded: 0,
    'rolled-back': 0,
    unchanged: 0,
    failed: 0,
    untouched: 0,
    parked: 0
  }
  for (const r of reports) counts[r.result]++
  let result: HostResult
  if (counts.failed > 0 || counts.parked > 0) result = 'failed'
  else if (counts['rolled-back'] > 0) result = 'rolled-back'
  else if (counts.untouched > 0) result = 'failed'
  else if (counts.upgraded > 0) result = 'upgraded'
  else result = 'unchanged'
  return { result, counts }
}

export async function runRollout(
  settings: Settings,
  plan: UpgradePlan,
  deps: RolloutDeps
): Promise<RolloutResult> {
  const started = Date.now()
  const reports: HostReport[] = []
  let stopped = false
  for (const target of settings.hosts) {
    if (stopped) {
      reports.push(untouched(target))
      continue
    }
    let host: Host
    try {
      host = await deps.connect(target)
    } catch (e) {
      deps.log.error(`${target.label}: ${(e as Error).message}`)
      reports.push({ ...untouched(target, (e as Error).message), result: 'failed', failedStep: 'preflight' })
      stopped = true
      continue
    }
    try {
      const report = await new HostUpgrade(host, plan, deps.log).run()
      reports.push(report)
      if (report.result !== 'upgraded' && report.result !== 'unchanged') stopped = true
    } finally {
      await host.close()
    }
  }
  const { result, counts } = overall(reports)
  return { result, hosts: reports, durationMs: Date.now() - started, counts }
}
