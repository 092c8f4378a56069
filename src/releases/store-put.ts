/**
 * A release's file put into the store: a hard link when the store shares the live file's file
 * system (renamed in, then checked), else a copy (checked, then renamed in). Commands with no
 * decision between them go out together; with a gate, the host itself decides the rename and
 * what the caller sent behind (the record's writes) from the check of what landed.
 */
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import type { ExecResult } from '../host/host.js'
import type { Gate } from '../host/remote-shell.js'
import { remoteSha256 } from '../strategies/hot-upgrade/install.js'
import { StoreError } from './state.js'
import type { ReleaseStore } from './store.js'
import { COPIED_GATE, LANDED } from './store-scripts.js'

/**
 * Puts the file at fromPath (with sha256) into the store, unless the store already holds it
 * intact (`stored`: its sha256 there, when the caller read it already): a hard link when both
 * are on one file system (renamed in, then checked), else a copy (checked, then renamed in).
 * Commands with no decision between them go out together (pipelined): one round trip for a
 * link; for a copy with `link: false` (the store known to be on another mount) one with a gate,
 * two without; three when a link was tried first.
 */
export async function putRelease(
  s: ReleaseStore,
  fromPath: string,
  sha256: string,
  stored?: string | null,
  o: { link?: boolean; gate?: string } = {}
): Promise<'present' | 'linked' | 'copied'> {
  if ((stored !== undefined ? stored : await s.storedSha256(sha256)) === sha256) return 'present'
  const dir = s.releaseDir(sha256)
  const target = s.releasePath(sha256)
  const tmp = posix.join(dir, `.${s.binary}.tmp-${randomBytes(6).toString('hex')}`)
  const changed = (got: string | null) =>
    new StoreError(
      `${fromPath} changed while it was stored (sha256 ${got}, expected ${sha256}); it is not recorded`
    )
  // With a gate: what is stored intact opens it, for the record's writes sent right behind.
  const gate = o.gate && s.gates ? o.gate : undefined
  try {
    // link: false (pre-flight saw the store on another mount): no link to try, the copy at once.
    const linked = o.link === false ? null : await link(s, fromPath, dir, tmp, target, sha256, gate)
    if (linked !== null) {
      if (linked === sha256) return 'linked'
      await s.exec(['rm', '-f', '--', target])
      throw changed(linked)
    }
    const copying = copy(s, fromPath, tmp, dir, o.link === false, sha256, gate)
    // With a gate the rename goes with the copy, run by the host only if the copy checks out.
    const renaming = gate ? renameIn(s, tmp, target, { need: COPIED_GATE, set: gate }) : null
    renaming?.catch(() => undefined)
    const got = await copying
    if (got !== sha256) {
      await renaming?.catch(() => undefined)
      throw changed(got)
    }
    s.check(await (renaming ?? renameIn(s, tmp, target)), `store ${target}`)
    return 'copied'
  } catch (e) {
    // A folder made for nothing: removed when empty, so no release looks half-stored.
    await Promise.all([s.exec(['rm', '-f', '--', tmp]), s.exec(['rmdir', '--', dir])]).catch(() => undefined)
    throw e
  }
}

/**
 * The folder, a hard link into it renamed in, and the sha256 of what landed, in one round trip;
 * the sha256 that landed, or null when the link failed (as across file systems: the rename
 * then found nothing).
 */
async function link(
  s: ReleaseStore,
  fromPath: string,
  dir: string,
  tmp: string,
  target: string,
  sha256: string,
  gate?: string
): Promise<string | null> {
  const [made, linked, moved, got] = await Promise.all([
    s.exec(['mkdir', '-p', '--', dir]),
    s.exec(['ln', '--', fromPath, tmp]),
    s.exec(['mv', '-f', '--', tmp, target]),
    landed(s, target, sha256, gate)
  ])
  s.check(made, `create ${dir}`)
  if (linked.code !== 0) return null
  s.check(moved, `store ${target}`)
  // A file that landed with another sha256 is removed (by the caller) before state.json can name it.
  return got ?? 'none'
}

/**
 * A copy at tmp, its mode and its sha256, in one round trip (the caller checks the sha256 before
 * it is renamed in); `mkdir`: the folder is made in the same round trip (no link tried first).
 */
async function copy(
  s: ReleaseStore,
  fromPath: string,
  tmp: string,
  dir: string,
  mkdir: boolean,
  sha256: string,
  gate?: string
): Promise<string | null> {
  const [made, copied, mode, sha] = await Promise.all([
    mkdir ? s.exec(['mkdir', '-p', '--', dir]) : null,
    s.exec(['cp', '--', fromPath, tmp]),
    s.exec(['chmod', '0755', '--', tmp]),
    landed(s, tmp, sha256, gate ? COPIED_GATE : undefined)
  ])
  if (made) s.check(made, `create ${dir}`)
  s.check(copied, `copy ${fromPath} into ${dir}`)
  s.check(mode, `chmod ${tmp}`)
  return sha
}

/** The sha256 of a stored file (null: missing); `gate` opens only when it is `sha256`. */
async function landed(s: ReleaseStore, path: string, sha256: string, gate?: string): Promise<string | null> {
  if (!gate) return remoteSha256(s.host, path)
  const r = await s.exec(['sh', '-c', LANDED, 'sh', path, sha256], { set: gate })
  return r.stdout.trim().split(/\s+/)[0] || null
}

/** The copy renamed in; after a rename the rm finds nothing, after a failed one it removes the copy. */
async function renameIn(s: ReleaseStore, tmp: string, target: string, gate?: Gate): Promise<ExecResult> {
  const [moved] = await Promise.all([
    s.exec(['mv', '-f', '--', tmp, target], gate),
    s.exec(['rm', '-f', '--', tmp])
  ])
  return moved
}
