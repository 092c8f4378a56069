/**
 * The post step of a strategy-upstream run that did not finish (cancelled, runner killed): every
 * server that the run changed and that answers its health check goes back to its state before the
 * run (the load balancer keeps that file). A server that does not answer stays down: traffic keeps
 * going to the others. Runs under the load balancer's lock, with the dead run's token.
 */
import type { Logger } from '../../engine/types.js'
import type { Host } from '../../host/host.js'
import { HostLock, LockHeldError, type LockOwner } from '../../safety/lock.js'
import type { HostTarget, Settings } from '../../settings.js'
import { healthGate } from './deps.js'
import { describeState, LoadBalancer } from './load-balancer.js'
import { disarmLbWatchdog } from './lb-watchdog.js'
import { upstreamPlan, upstreamStateDir } from './open.js'
import { serverAddress } from './plan-check.js'

export interface UpstreamRecovery {
  /** Servers put back. */
  restored: string[]
  /** Servers left out, with why. */
  left: string[]
}

export async function recoverUpstream(
  s: Settings,
  o: { connect(target: HostTarget): Promise<Host>; log: Logger; owner: LockOwner; token: string }
): Promise<UpstreamRecovery> {
  const u = s.upstream!
  const out: UpstreamRecovery = { restored: [], left: [] }
  const lbHost = await o.connect(u.host)
  const dir = upstreamStateDir(u.name)
  try {
    let lock: HostLock
    try {
      lock = await HostLock.acquire(lbHost, {
        path: `${dir}/lock`,
        token: o.token,
        leaseMs: s.lockLeaseMs,
        owner: o.owner
      })
    } catch (e) {
      // Another run works on the load balancer now: it restores from the same saved file.
      if (e instanceof LockHeldError) {
        o.log.warn(`${lbHost.name}: ${e.message}; that run puts the servers back`)
        return out
      }
      throw e
    }
    let lb: LoadBalancer | undefined
    try {
      // The run's watchdog stands down first, so that the two never act at once (when it acted
      // already, this waits for it, and the file is read as it left it).
      const wd = await disarmLbWatchdog(lbHost, dir, o.token)
      if (wd !== 'absent') o.log.info(`${lbHost.name}: the run's watchdog on the load balancer: ${wd}`)
      lb = await LoadBalancer.open(lbHost, {
        file: u.file,
        name: u.name,
        pidFile: s.pidFile,
        stateDir: dir,
        pollMs: s.pollIntervalMs,
        reloadTimeoutMs: s.startTimeoutMs,
        needLog: false,
        note: m => o.log.info(`${lbHost.name} [post] ${m}`),
        ...(s.watchdog ? { watchdog: { token: o.token, leaseMs: u.watchdogLeaseMs } } : {})
      })
      if (!lb.inherited) return out
      const plan = upstreamPlan(s)
      for (const target of s.hosts) {
        const address = serverAddress(u.server, target.host)
        const now = lb.stateNow(address)
        const full = lb.fullState(address)
        if (!now || (now.down === full.down && now.weight === full.weight)) continue
        let host: Host | undefined
        try {
          host = await o.connect(target)
          await healthGate(
            host,
            plan.health,
            () => undefined,
            () => undefined
          )
          await lb.setServer(address, full, 'back in (post step)')
          out.restored.push(address)
        } catch (e) {
          out.left.push(`${address} (${describeState(now)}): ${(e as Error).message}`)
        } finally {
          await host?.close()
        }
      }
      if (out.left.length === 0) await lb.settled()
      return out
    } finally {
      await lb?.close().catch((e: Error) => o.log.warn(`${lbHost.name}: ${e.message}`))
      await lock.release()
    }
  } finally {
    await lbHost.close()
  }
}
