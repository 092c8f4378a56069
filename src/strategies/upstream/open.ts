/**
 * The run-level part of strategy upstream: before any host is touched, reach the load balancer
 * (like a host: same keys, known hosts, jump host, sudo), take its lock (runs against one load
 * balancer are serialised), read and check its managed file, and refuse a plan the block cannot
 * carry. Then the strategy for the hosts' runs, and what ends the run on the load balancer.
 */
import type { Logger } from '../../engine/types.js'
import type { Host } from '../../host/host.js'
import { HostLock, type LockOwner } from '../../safety/lock.js'
import { DEFAULT_RELEASE_ROOT } from '../../releases/state.js'
import { SettingsError, type HostTarget, type Settings } from '../../settings.js'
import type { Strategy } from '../strategy.js'
import { upstreamStrategy } from './index.js'
import { LoadBalancer } from './load-balancer.js'
import { checkPlan, serverAddress } from './plan-check.js'
import { inspectLbWatchdog, lbWatchdogDir, supersedeLbWatchdog } from './lb-watchdog.js'
import { remoteText } from './remote-text.js'
import type { UpstreamPlan } from './parts.js'

export interface UpstreamRun {
  strategy: Strategy
  lb: LoadBalancer
  lbHost: Host
  /** The run is over: with every server back as found, the load balancer forgets the run; the lock goes. */
  finish(options: { settled: boolean }): Promise<void>
}

/** Where the action keeps its state for one block on the load balancer. */
export function upstreamStateDir(name: string): string {
  return `${DEFAULT_RELEASE_ROOT}/upstream/${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`
}

export function upstreamPlan(s: Settings): UpstreamPlan {
  return {
    livePath: s.binaryPath!,
    restartCommand: s.upstream!.restartCommand,
    startTimeoutMs: s.startTimeoutMs,
    pollIntervalMs: s.pollIntervalMs,
    drainTimeoutMs: s.drainTimeoutMs,
    drainTimeoutAction: s.drainTimeoutAction,
    health: {
      url: s.healthUrl,
      command: s.healthCommand,
      expect: s.healthExpect,
      checks: s.healthChecks,
      intervalMs: s.healthIntervalMs,
      timeoutMs: s.healthTimeoutMs
    }
  }
}

/** What the load balancer's watchdog of a vanished run did (its note stays until the next arm). */
async function reportEarlierWatchdog(lbHost: Host, dir: string, log: Logger): Promise<void> {
  const wd = await inspectLbWatchdog(lbHost, dir).catch(() => null)
  // A watchdog this run (or another) stood down did nothing: the stand-down said so.
  if (!wd?.result || wd.running || wd.result.trim() === 'superseded') return
  const message = `${lbHost.name}: the load balancer's watchdog of an earlier run ended: ${remoteText(wd.result, 200)} (its log: ${lbWatchdogDir(dir)}/log)`
  if (wd.result.trim() === 'restored') log.info(message)
  else log.warn(message, { host: lbHost.name, step: 'preflight' })
}

/** Whether this run still holds the load balancer's lock at its end (asked on the host). */
async function stillHeld(lock: HostLock, lbHost: Host, log: Logger): Promise<boolean> {
  try {
    await lock.verify()
    return true
  } catch {
    log.warn(
      `${lbHost.name}: the load balancer's deploy lock went to another run: the copy of ${lock.path.replace(/\/lock$/, '/original')} (the file as this run found it) is left to that run`,
      { host: lbHost.name, step: 'lock' }
    )
    return false
  }
}

/** What opening the load balancer needs from the run. */
export interface OpenOptions {
  connect(target: HostTarget): Promise<Host>
  log: Logger
  owner: LockOwner
  token: string
  /** The batches of the rollout (host indexes); batch 0 is the canary when canary > 0. */
  batches: number[][]
}

/** The load balancer's deploy lock: runs against one load balancer are serialised. */
function lockLoadBalancer(lbHost: Host, dir: string, s: Settings, o: OpenOptions): Promise<HostLock> {
  return HostLock.acquire(lbHost, {
    path: `${dir}/lock`,
    token: o.token,
    leaseMs: s.lockLeaseMs,
    owner: o.owner,
    warn: m => o.log.warn(m, { host: lbHost.name, step: 'lock' }),
    role: 'load-balancer'
  })
}

/** The hosts' server addresses, in their order, once the block as found can carry the plan. */
function plannedAddresses(s: Settings, lb: LoadBalancer, batches: number[][], canary: boolean): string[] {
  const u = s.upstream!
  const addresses = s.hosts.map(t => serverAddress(u.server, t.host))
  const problem = checkPlan({
    file: lb.original,
    addresses,
    batches,
    canaryWeight: u.canaryWeight,
    canary,
    hostLabels: s.hosts.map(t => t.label)
  })
  if (problem) throw new SettingsError(problem.input, problem.problem, problem.fix)
  return addresses
}

/** The run's end on the load balancer (UpstreamRun.finish). */
function finishing(lb: LoadBalancer, lock: HostLock, lbHost: Host, log: Logger): UpstreamRun['finish'] {
  return async ({ settled }) => {
    await lb.close().catch((e: Error) => log.warn(`${lbHost.name}: ${e.message}`))
    // The file as this run found it is the baseline of a run that took the lock over: it stays.
    if (settled && (await stillHeld(lock, lbHost, log)))
      await lb.settled().catch((e: Error) => log.warn(`${lbHost.name}: ${e.message}`))
    await lock.release()
    await lbHost.close()
  }
}

export async function openUpstream(s: Settings, o: OpenOptions): Promise<UpstreamRun> {
  const u = s.upstream!
  const lbHost = await o.connect(u.host)
  const dir = upstreamStateDir(u.name)
  let lock: HostLock | undefined
  try {
    lock = await lockLoadBalancer(lbHost, dir, s, o)
    // Before the file is read: a vanished run's watchdog never writes over this run's file.
    const stoodDown = await supersedeLbWatchdog(lbHost, dir, o.token)
    if (stoodDown) o.log.info(`${lbHost.name} [load balancer] ${stoodDown}`)
    const canary = s.canary > 0 && s.hosts.length > 1
    const lb = await LoadBalancer.open(lbHost, {
      file: u.file,
      name: u.name,
      pidFile: s.pidFile,
      stateDir: dir,
      pollMs: s.pollIntervalMs,
      reloadTimeoutMs: s.startTimeoutMs,
      needLog: canary && u.canaryDurationMs > 0,
      note: m => o.log.info(`${lbHost.name} [load balancer] ${m}`),
      ...(s.watchdog ? { watchdog: { token: o.token, leaseMs: u.watchdogLeaseMs } } : {})
    })
    await reportEarlierWatchdog(lbHost, dir, o.log)
    if (lb.inherited)
      o.log.warn(
        `${lbHost.name}: a run against upstream ${u.name} did not finish; each server goes back to its state before that run`,
        { host: lbHost.name, step: 'preflight' }
      )
    const addresses = plannedAddresses(s, lb, o.batches, canary)
    const canaryAddresses = new Set(canary ? (o.batches[0] ?? []).map(i => addresses[i]!) : [])
    const addressOf = (host: Host) => serverAddress(u.server, host.address)
    const strategy = upstreamStrategy({
      lb,
      lock,
      plan: upstreamPlan(s),
      addressOf,
      canaryOf: host =>
        canaryAddresses.has(addressOf(host))
          ? { weight: u.canaryWeight, durationMs: u.canaryDurationMs, maxErrorRate: u.maxErrorRate }
          : null
    })
    return { strategy, lb, lbHost, finish: finishing(lb, lock, lbHost, o.log) }
  } catch (e) {
    await lock?.release()
    await lbHost.close()
    throw e
  }
}
