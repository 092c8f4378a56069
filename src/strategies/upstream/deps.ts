/**
 * What the upstream strategy takes from the rest of the house, in one place: the nginx process
 * reading of the supervisor (for the load balancer's master), the binary's staging and swap, the
 * health gate, the waits.
 */
export {
  acceptingWorkers,
  exePath,
  isAlive,
  liveChildren,
  parseMasterTitle,
  probe
} from '../../upgrade/supervisors/nginx.js'
export {
  remoteSha256,
  restorePrevious,
  sidePaths,
  stageBinary,
  stageHostFile,
  swapBinary
} from '../../upgrade/install.js'
export { sleep, waitUntilSoon } from '../../upgrade/wait.js'
import { formatDuration } from '../../duration.js'
import type { Host } from '../../host/host.js'
import { checkOnce, type HealthPlan } from '../../upgrade/health.js'
import { StepError } from '../../engine/step.js'
import { sleep } from '../../upgrade/wait.js'
export type { HealthPlan }

/** `checks` consecutive passes of the URL and/or command, one every intervalMs, within timeoutMs. */
export async function healthGate(
  host: Host,
  plan: HealthPlan,
  note: (s: string) => void,
  record: (ok: boolean, detail: string, atMs: number) => void
): Promise<void> {
  const started = Date.now()
  let passes = 0
  let last = ''
  for (let n = 1; ; n++) {
    const t = Date.now()
    const { ok, detail } = await checkOnce(host, plan, plan.timeoutMs - (t - started))
    record(ok, detail, Date.now() - started)
    if (ok) {
      passes++
      note(`check ${n}: pass ${passes}/${plan.checks} (${detail})`)
      if (passes >= plan.checks) return
    } else {
      if (detail !== last || n % 10 === 0) note(`check ${n}: FAIL (${detail})`)
      passes = 0
      last = detail
    }
    if (t - started + plan.intervalMs > plan.timeoutMs)
      throw new StepError(
        'health',
        `the new version did not pass ${plan.checks} health checks in a row within health-timeout ${formatDuration(plan.timeoutMs)}; last failure: ${last || 'none'}`
      )
    await sleep(Math.max(0, t + plan.intervalMs - Date.now()))
  }
}
