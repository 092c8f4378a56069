/**
 * What the upstream strategy takes from the rest of the house, in one place: the nginx process
 * reading of the nginx supervisor (for the load balancer's master), the binary's staging and swap
 * of the hot upgrade, the health gate, the waits.
 */
export {
  acceptingWorkers,
  exePath,
  isAlive,
  isMasterTitle,
  liveChildren,
  parseMasterTitle,
  probe
} from '../../supervisors/nginx/protocol.js'
export {
  remoteSha256,
  restorePrevious,
  sidePaths,
  stageBinary,
  stageHostFile,
  swapBinary
} from '../hot-upgrade/install.js'
export { sleep, waitUntilSoon } from '../../engine/wait.js'
import type { Host } from '../../host/host.js'
import { runHealthGate, type HealthPlan } from '../health.js'
export type { HealthPlan }

/**
 * The health gate on the host directly: `checks` passes in a row. The server runs detached from
 * the action (restart-command), so there is no process of ours to watch beside the checks.
 */
export function healthGate(
  host: Host,
  plan: HealthPlan,
  note: (s: string) => void,
  record: (ok: boolean, detail: string, atMs: number) => void
): Promise<void> {
  return runHealthGate(host, plan, { stillServing: async () => undefined, note, record })
}
