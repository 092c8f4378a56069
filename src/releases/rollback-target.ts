/**
 * The release a rollback goes to, chosen from the host's store (pure): the one rollback-to names,
 * or the release before the live one. A choice that is missing or ambiguous fails with the list of
 * releases the host has, so the user can name one.
 */
import { compareVersions } from './versions.js'
import {
  describeReleases,
  liveRelease,
  previousRelease,
  StoreError,
  type Release,
  type StoreState
} from './state.js'

/** What rollback-to names: releases whose version is exactly it, else the same by its rule, else a sha256 prefix. */
function releasesNamed(state: StoreState, wanted: string): Release[] {
  const exact = state.releases.filter(r => r.version === wanted)
  if (exact.length > 0) return exact
  const same = state.releases.filter(
    r => r.version !== null && compareVersions(r.version, wanted)?.order === 0
  )
  if (same.length > 0) return same
  const prefix = wanted.toLowerCase()
  return /^[0-9a-f]{12,64}$/.test(prefix) ? state.releases.filter(r => r.sha256.startsWith(prefix)) : []
}

/**
 * The release a rollback goes to: the one rollback-to names (exactly one, by version or sha256
 * prefix), or the release before the live one. Anything else fails with the list of releases.
 */
export function rollbackTarget(state: StoreState, rollbackTo?: string): Release {
  const has = `It has: ${describeReleases(state)}`
  if (rollbackTo === undefined) {
    const prev = previousRelease(state)
    if (prev) return prev
    throw new StoreError(
      `there is no release before the live one (${liveRelease(state)?.version ?? 'unknown'}) in the host's release store. ${has}. ` +
        `Name one with rollback-to, or deploy the version you want with mode: deploy`
    )
  }
  const matches = releasesNamed(state, rollbackTo)
  if (matches.length === 0)
    throw new StoreError(
      `rollback-to ${rollbackTo}: the host's release store has no release with version ${rollbackTo}. ${has}. ` +
        `Choose one of these, or deploy ${rollbackTo} with mode: deploy`
    )
  if (matches.length > 1)
    throw new StoreError(
      `rollback-to ${rollbackTo} names ${matches.length} releases of the host's store (builds with sha256 ` +
        `${matches.map(r => r.sha256.slice(0, 12)).join(', ')}). ${has}. Name one by its sha256 (12 or more hex digits) in rollback-to`
    )
  return matches[0]!
}
