/**
 * The release store's pre-flight reads, sent behind the deploy lock's command once its first read
 * found and trusted the running server: state.json, the new binary's copy, and the running
 * binary's copy. The last needs the running binary's sha256 first; the host reads both in one
 * command, so that the store costs no round trip of its own. What the choose step takes is checked
 * against what inspection found (same store, same running sha256); anything else is read again.
 * Not through the sudo helper, which has no such command.
 */
import type { Host } from '../host/host.js'
import type { TrustedServer } from '../host/trust.js'
import { SHA256, type StoreState } from './state.js'
import { ReleaseStore } from './store.js'

/** $1 a file, $2 a store, $3 its binary's name: the file's sha256, then its copy's in the store (or none). */
export const STORED_COPY = String.raw`
h=$(sha256sum < "$1") || exit 1
h=@{h%% *}
echo "$h"
f=$2/releases/$h/$3
[ -e "$f" ] || { echo none; exit 0; }
sha256sum -- "$f"
`.replaceAll('@{', '${')

export interface StoreAhead {
  dir: string
  state: Promise<StoreState>
  /** The new binary's copy in the store (null: none). */
  storedNew: { sha256: string; read: Promise<string | null | undefined> }
  /** The running binary's sha256 and its copy's (null: none); undefined when not read. */
  runningCopy: Promise<{ running: string; stored: string | null } | undefined>
}

/** Sends the reads; null when the store cannot be read ahead (through the sudo helper). */
export function storeReadAhead(
  host: Host,
  releaseDir: string | undefined,
  server: TrustedServer,
  newSha256: string
): StoreAhead | null {
  if (host.sudo && host.privileged) return null
  const store = ReleaseStore.forLive(host, releaseDir, server.livePath)
  const state = store.read()
  const storedNew = store.storedSha256(newSha256).catch(() => undefined)
  const runningCopy = host
    .run(['sh', '-c', STORED_COPY, 'sh', `/proc/${server.pid}/exe`, store.dir, store.binary], {
      sudo: host.sudo
    })
    .then(r => {
      const [running, stored] = r.stdout.split('\n').map(l => l.split(/\s+/)[0] ?? '')
      if (r.code !== 0 || !SHA256.test(running ?? '')) return undefined
      if (stored === 'none') return { running: running!, stored: null }
      return SHA256.test(stored ?? '') ? { running: running!, stored: stored! } : undefined
    })
    .catch(() => undefined)
  state.catch(() => undefined) // taken by the choose step, or dropped
  return { dir: store.dir, state, storedNew: { sha256: newSha256, read: storedNew }, runningCopy }
}
