/** Whether the new binary fits the host (architecture, disk space), checked before anything is sent. */
import { ReleaseStore } from '../../releases/store.js'
import { posix } from 'node:path'
import type { ExecResult, Host } from '../../host/host.js'
import { StepError } from '../../engine/step.js'
import type { Running } from '../../supervisors/supervisor.js'
import type { UpgradeSource } from '../strategy.js'

const ARCH_ALIASES: Record<string, string> = {
  amd64: 'x86_64',
  arm64: 'aarch64',
  i386: 'i686',
  i586: 'i686',
  armv7l: 'arm'
}

function sameArch(a: string, b: string): boolean {
  const n = (x: string) => ARCH_ALIASES[x] ?? (x.startsWith('armv') ? 'arm' : x)
  return n(a) === n(b)
}

/** The free space of the folders an upload of `source` to `livePath` fills, read on the host. */
export interface FreeSpaceReads {
  livePath: string
  folders: string[]
  dfs: Promise<ExecResult[] | Error>
}

/**
 * Issues the free-space reads as soon as the live path is known, so that they travel with
 * pre-flight's other reads (one round trip); null when the binary's size is not known.
 */
export function readFreeSpace(
  host: Host,
  livePath: string,
  source: UpgradeSource,
  releaseDir?: string
): FreeSpaceReads | null {
  if (source.bytes === undefined) return null
  // Where the upload lands (/tmp first with sudo), the staging file, and the store's copy.
  const store = releaseDir ?? ReleaseStore.forLive(host, undefined, livePath).dir
  const folders = [...(host.sudo ? ['/tmp'] : []), posix.dirname(livePath), store]
  // No decision between the folders: their reads go out together.
  const dfs = Promise.all(
    folders.map(dir =>
      // The store may not exist yet: the free space of the nearest folder that does.
      host.run([
        'sh',
        '-c',
        'd=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; df -Pk -- "$d"',
        'sh',
        dir
      ])
    )
  ).catch((e: Error) => e)
  return { livePath, folders, dfs }
}

/** df -P's file system and mount point (its first and last columns), of its last line. */
function mountOf(df: ExecResult): string | null {
  const f = df.stdout.trim().split('\n').pop()?.split(/\s+/)
  return df.code === 0 && f && f.length >= 6 ? `${f[0]} ${f.slice(5).join(' ')}` : null
}

/**
 * Refuses a binary built for another architecture, or one the host has no room for. Says
 * whether the live folder and the release store share a mount (a hard link can join them):
 * undefined when not read.
 */
export async function checkFits(
  host: Host,
  running: Running,
  source: UpgradeSource,
  releaseDir?: string,
  issued?: FreeSpaceReads | null
): Promise<{ sameMount?: boolean }> {
  if (source.arch && !sameArch(source.arch, running.arch))
    throw new StepError(
      'preflight',
      `the new binary is built for ${source.arch}, but the host is ${running.arch}. Build it for ${running.arch}`
    )
  const reads =
    issued?.livePath === running.livePath ? issued : readFreeSpace(host, running.livePath, source, releaseDir)
  if (reads === null || source.bytes === undefined) return {}
  const needKb = Math.ceil((source.bytes * 1.1) / 1024) + 1024
  const dfs = await reads.dfs
  if (dfs instanceof Error) throw dfs
  for (const [i, df] of dfs.entries()) {
    const availKb = Number(df.stdout.trim().split('\n').pop()?.split(/\s+/)[3])
    if (df.code === 0 && Number.isFinite(availKb) && availKb < needKb)
      throw new StepError(
        'preflight',
        `${reads.folders[i]} has ${availKb} KiB free; the upload needs ${needKb} KiB. Free some disk space`
      )
  }
  // The live folder and the store: the last two folders read.
  const [live, store] = dfs.slice(-2).map(mountOf)
  return live && store ? { sameMount: live === store } : {}
}
