/** Whether the new binary fits the host (architecture, disk space), checked before anything is sent. */
import { ReleaseStore } from '../../releases/store.js'
import { posix } from 'node:path'
import type { Host } from '../../host/host.js'
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

export async function checkFits(
  host: Host,
  running: Running,
  source: UpgradeSource,
  releaseDir?: string
): Promise<void> {
  if (source.arch && !sameArch(source.arch, running.arch))
    throw new StepError(
      'preflight',
      `the new binary is built for ${source.arch}, but the host is ${running.arch}. Build it for ${running.arch}`
    )
  if (source.bytes === undefined) return
  // Where the upload lands (/tmp first with sudo), the staging file, and the store's copy.
  const store = releaseDir ?? ReleaseStore.forLive(host, undefined, running.livePath).dir
  const folders = [...(host.sudo ? ['/tmp'] : []), posix.dirname(running.livePath), store]
  const needKb = Math.ceil((source.bytes * 1.1) / 1024) + 1024
  // No decision between the folders: their reads go out together (one round trip).
  const dfs = await Promise.all(
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
  )
  for (const [i, df] of dfs.entries()) {
    const availKb = Number(df.stdout.trim().split('\n').pop()?.split(/\s+/)[3])
    if (df.code === 0 && Number.isFinite(availKb) && availKb < needKb)
      throw new StepError(
        'preflight',
        `${folders[i]} has ${availKb} KiB free; the upload needs ${needKb} KiB. Free some disk space`
      )
  }
}
