/**
 * The trust checks every supervisor's pre-flight runs before anything runs with privilege or is
 * removed: the process named in the pid file runs as root, the deploy user or master-user, and
 * no other user can write the pid file, the live binary, the staging file or the release store
 * (or a folder above them). A pid file is an address another user may forge; this is where a
 * forged one is caught, for every protocol alike.
 */
import { StepError } from '../engine/step.js'
import type { Host } from '../host/host.js'
import { checkTrust, TrustError, type TrustFacts } from '../host/trust.js'
import { ReleaseStore } from '../releases/store.js'
import { sidePaths } from '../strategies/hot-upgrade/install.js'

export interface TrustInputs {
  pidFile: string
  releaseDir?: string
  masterUser?: string
}

/** The facts when trusted; otherwise a pre-flight failure that says what is wrong and how to fix it. */
export async function trustedServer(
  host: Host,
  plan: TrustInputs,
  pid: number,
  livePath: string
): Promise<TrustFacts> {
  try {
    return await checkTrust(host, {
      pidFile: plan.pidFile,
      pid,
      livePath,
      stagingPath: sidePaths(livePath).staging,
      storeDir: plan.releaseDir ?? ReleaseStore.forLive(host, undefined, livePath).dir,
      masterUser: plan.masterUser
    })
  } catch (e) {
    if (e instanceof TrustError) throw new StepError('preflight', e.message)
    throw e
  }
}
