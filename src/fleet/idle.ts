/**
 * Hosts that wait through a batch (pre-staged for a later one, parked until every host passed)
 * keep their SSH connection open up to the run's idle-connections. Beyond it, the host that waited
 * longest is detached: its connection closes, and it logs in again when it goes on, or when its
 * lock or watchdog needs renewing (a third of their lease apart, src/safety). So the connections
 * a run holds (sockets, sshd sessions, keepalives; about 30 KB of memory each) are bounded by
 * max-parallel plus idle-connections, not by the size of the fleet; what it costs is one login
 * per detached host to finish, and one every few minutes while it waits.
 */
import type { Host } from '../host/host.js'

export class IdleHosts {
  /** Every waiting host. */
  private readonly waiting = new Set<Host>()
  /** The waiting hosts still connected, the longest waiting first: never more than the budget. */
  private readonly connected: Host[] = []

  constructor(private readonly budget: number) {}

  /** The host waits now: beyond the budget, the longest waiting ones still connected are detached. */
  rest(host: Host | undefined): void {
    if (!host?.detach || this.waiting.has(host)) return
    this.waiting.add(host)
    this.connected.push(host)
    while (this.connected.length > this.budget) this.connected.shift()!.detach!(true)
  }

  /** The host goes on (its batch, the commit, the rollback): connected again, for good. */
  wake(host: Host | undefined): void {
    if (!host || !this.waiting.delete(host)) return
    const at = this.connected.indexOf(host)
    if (at >= 0) this.connected.splice(at, 1)
    if (host.detached) host.detach!(false)
  }

  /** How many waiting hosts are detached now. */
  get detached(): number {
    return this.waiting.size - this.connected.length
  }
}
