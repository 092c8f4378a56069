/**
 * What the config dump (`nginx -T`) tells about the configuration a new master loads: the files it
 * reads, how many workers it starts, and which of those files changed after the old master
 * started (the new master loads them as they are now, the old one runs what it read back then:
 * a health failure may come from that change rather than from the new binary).
 */
import type { Host } from '../../host/host.js'

/** The files a config dump says it read ("# configuration file <path>:" lines). */
export function configFilesOf(dump: string): string[] {
  return [...dump.matchAll(/^# configuration file (\/.+):$/gm)].map(m => m[1]!)
}

/** worker_processes of a config dump: a number, 'auto', or 1 (nginx's default) when unset. */
export function workerProcessesOf(dump: string): number | 'auto' {
  const text = dump.replace(/#[^\n]*/g, '')
  const m = /(?:^|[;\s{])worker_processes\s+(\d+|auto)\s*;/m.exec(text)
  if (!m) return 1
  return m[1] === 'auto' ? 'auto' : Number(m[1])
}

// One round trip: the master's start (boot time + its start in clock ticks) and each file's mtime.
export const TIMES = String.raw`
pid=$1; shift
hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
bt=$(sed -n 's/^btime //p' /proc/stat)
st=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f20) || exit 3
echo "start $((bt + st / hz))"
for f; do m=$(stat -c %Y -- "$f" 2>/dev/null) && printf 'file %s %s\n' "$m" "$f"; done
`

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z')

/** The config files modified after the master `pid` started (with their times); null when nothing changed or it cannot be told. */
export async function changedSinceStart(
  host: Host,
  pid: number,
  files: string[]
): Promise<{ files: string[]; masterStarted: string } | null> {
  if (files.length === 0) return null
  const r = await host.run(['sh', '-c', TIMES, 'sh', String(pid), ...files], { sudo: host.sudo })
  const start = Number(/^start (\d+)$/m.exec(r.stdout)?.[1])
  if (r.code !== 0 || !Number.isFinite(start)) return null
  const changed: string[] = []
  for (const m of r.stdout.matchAll(/^file (\d+) (.+)$/gm))
    if (Number(m[1]) > start) changed.push(`${m[2]} (modified ${iso(Number(m[1]))})`)
  return changed.length > 0 ? { files: changed, masterStarted: iso(start) } : null
}
