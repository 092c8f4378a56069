/**
 * The trust checks every supervisor's pre-flight runs before anything runs with privilege or is
 * removed: the process named in the pid file runs as root, the deploy user or master-user, and
 * no other user can write the pid file, the live binary, the staging file or the release store
 * (or a folder above them). A pid file is an address another user may forge; this is where a
 * forged one is caught, for every protocol alike.
 */
import { StepError } from '../engine/step.js'
import type { Host } from '../host/host.js'
import { checkTrust, TrustError, type TrustFacts, type TrustPlan } from '../host/trust.js'
import { ReleaseStore } from '../releases/store.js'
import { sidePaths } from '../strategies/hot-upgrade/install.js'

export interface TrustInputs {
  pidFile: string
  releaseDir?: string
  masterUser?: string
}

/**
 * The plan of the trust checks for master `pid` running `livePath`: one for the deploy lock's
 * first read and every supervisor's pre-flight, so that the second finds the first's facts.
 */
export function trustPlan(
  o: Pick<TrustInputs, 'pidFile' | 'masterUser'>,
  pid: number,
  livePath: string,
  storeDir: string
): TrustPlan {
  return {
    pidFile: o.pidFile,
    pid,
    livePath,
    stagingPath: sidePaths(livePath).staging,
    storeDir,
    masterUser: o.masterUser
  }
}

/** The facts when trusted; otherwise a pre-flight failure that says what is wrong and how to fix it. */
export async function trustedServer(
  host: Host,
  plan: TrustInputs,
  pid: number,
  livePath: string
): Promise<TrustFacts> {
  try {
    const storeDir = plan.releaseDir ?? ReleaseStore.forLive(host, undefined, livePath).dir
    return await checkTrust(host, trustPlan(plan, pid, livePath, storeDir))
  } catch (e) {
    if (e instanceof TrustError) throw new StepError('preflight', e.message)
    throw e
  }
}
