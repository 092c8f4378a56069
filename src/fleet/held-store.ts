/**
 * After mode: commit retired a held host's old process: the new release is recorded in the
 * host's release store and made live, as the hold run would have after its commit (so that
 * mode: rollback later knows the release before it). A failure here only warns: the host serves
 * the new version either way.
 */
import type { Logger } from '../engine/types.js'
import type { Host } from '../host/host.js'
import { markLive, withRelease, type Release } from '../releases/state.js'
import { releaseOptions } from '../releases/steps.js'
import { ReleaseStore } from '../releases/store.js'
import type { HeldRecord } from '../safety/held.js'
import type { Settings } from '../settings.js'

export async function finishCommit(
  host: Host,
  rec: HeldRecord,
  settings: Settings,
  log: Logger,
  label: string
): Promise<void> {
  try {
    const o = releaseOptions(settings, process.env)
    const store = ReleaseStore.forLive(host, settings.releaseDir, rec.livePath)
    const at = new Date().toISOString()
    const state = await store.read()
    await store.put(rec.livePath, rec.newBinarySha256)
    const release: Release = {
      sha256: rec.newBinarySha256,
      version: rec.newVersion,
      deployedAt: at,
      origin: 'deploy',
      ...o.provenance
    }
    await store.writeMeta(release)
    await store.saveAndPrune(markLive(withRelease(state, release), rec.newBinarySha256, at), o.keepReleases)
    log.info(`${label}: release store ${store.dir}: ${rec.newVersion ?? 'the new release'} recorded as live`)
  } catch (e) {
    log.warn(
      `${label}: committed, but the release store could not record the new release: ${(e as Error).message}`,
      {
        host: label,
        step: 'record'
      }
    )
  }
}
