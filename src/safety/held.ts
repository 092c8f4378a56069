/**
 * The held-state record: what a `hold: true` run leaves on a host whose old process it parked,
 * so that a later run (mode commit or abort) can finish it. One JSON file, `<release-dir>/held`,
 * written atomically (a temporary file renamed over it). It names the run (its watchdog's token),
 * the old and the new process (pid, start time, sha256 of the executable they run) and the
 * binaries. A later run acts on it only when it parses as ours and every process it names is
 * still the one it names (same start time, same executable): pids get reused, files get edited.
 *
 * Version 1: the old process is parked (nginx); abort returns to it. Version 2 (`revert:
 * 'handoff'`): a supervisor that cannot park its old process (tableflip) left the host on its new
 * process after a completed hand-over; `old` names the old process as it was (gone after its
 * drain; HAProxy: the same master pid, re-executed, so `old` and `new` share it) and abort hands
 * over back to the previous binary kept at `previousPath`.
 */
import { posix } from 'node:path'
import type { Host } from '../host/host.js'

export const HELD_KIND = 'zerodown-held'
/** A record whose old process is parked. */
export const HELD_VERSION = 1
/** A record whose old process is gone: the way back is a hand-over to the previous binary. */
export const HELD_HANDBACK_VERSION = 2

export interface HeldProcess {
  pid: number
  /** /proc/<pid>/stat field 22: clock ticks after boot; with the pid, names one process. */
  startTime: string
  /** sha256 of /proc/<pid>/exe: the build it runs. */
  sha256: string
}

export interface HeldRecord {
  kind: typeof HELD_KIND
  version: typeof HELD_VERSION | typeof HELD_HANDBACK_VERSION
  /** Version 2 only: the old process is gone; abort hands over back to the binary at previousPath. */
  revert?: 'handoff'
  /** The hold run's token: its watchdog answers only to it. */
  token: string
  /** Who held it (the workflow run), for people reading the host. */
  run: string
  /** The workflow run's id (GITHUB_RUN_ID), when there was one: commit keeps to its own run. */
  runId?: string
  host: string
  supervisor: string
  pidFile: string
  livePath: string
  /** The kept old binary (goes back at the live path on abort; version 2: and is handed over to). */
  previousPath: string
  /** sha256 of the old binary file (what abort puts back) and of the new one. */
  oldBinarySha256: string
  newBinarySha256: string
  newVersion: string | null
  old: HeldProcess
  new: HeldProcess
  watchdog: string
  heldAt: string
  /** When the watchdog rolls the host back unless commit or abort comes first. */
  deadline: string
}

export function heldPath(releaseDir: string): string {
  return posix.join(releaseDir, 'held')
}

const SHA = /^[0-9a-f]{64}$/
const isPid = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 1
const isPath = (v: unknown): v is string =>
  typeof v === 'string' &&
  v.startsWith('/') &&
  v.length < 4096 &&
  !/[\0-\x1f]/.test(v) &&
  !v.split('/').includes('..')

function heldProcess(v: unknown): HeldProcess | null {
  const p = v as Partial<HeldProcess> | null
  if (typeof p !== 'object' || p === null) return null
  if (!isPid(p.pid) || typeof p.startTime !== 'string' || !/^\d{1,20}$/.test(p.startTime)) return null
  if (typeof p.sha256 !== 'string' || !SHA.test(p.sha256)) return null
  return { pid: p.pid, startTime: p.startTime, sha256: p.sha256 }
}

/** The record, when the text is one this action wrote (every field checked); else why not. */
export function parseHeld(text: string): HeldRecord | { problem: string } {
  let v: Partial<HeldRecord>
  try {
    v = JSON.parse(text) as Partial<HeldRecord>
  } catch {
    return { problem: 'it is not JSON' }
  }
  if (typeof v !== 'object' || v === null || v.kind !== HELD_KIND)
    return { problem: 'it is not a zerodown held record' }
  if (v.version !== HELD_VERSION && v.version !== HELD_HANDBACK_VERSION)
    return {
      problem: `its version ${String(v.version)} is not ${HELD_VERSION} or ${HELD_HANDBACK_VERSION}`
    }
  // The version says how to go back; a record that says otherwise is refused, never guessed at.
  const revert = (v as { revert?: unknown }).revert
  if (v.version === HELD_VERSION ? revert !== undefined : revert !== 'handoff')
    return {
      problem: `its revert ${JSON.stringify(revert) ?? 'is missing and'} does not go with version ${v.version}`
    }
  const old = heldProcess(v.old)
  const neu = heldProcess(v.new)
  const strings = ['token', 'run', 'host', 'supervisor', 'heldAt', 'deadline'] as const
  // One pid for both only where the server re-executes itself in place (HAProxy's master): version 2.
  const samePid = old !== null && neu !== null && old.pid === neu.pid
  if (!old || !neu || (samePid && (v.version !== HELD_HANDBACK_VERSION || old.startTime !== neu.startTime)))
    return { problem: 'its processes are not pid, start time and sha256' }
  if (strings.some(k => typeof v[k] !== 'string' || v[k].length > 1024 || /[\0-\x1f]/.test(v[k])))
    return { problem: 'a text field is missing or malformed' }
  if (!/^[A-Za-z0-9._:-]{1,200}$/.test(v.token!)) return { problem: 'its token is malformed' }
  if (![v.pidFile, v.livePath, v.previousPath, v.watchdog].every(isPath))
    return { problem: 'a path is missing or not absolute' }
  if (![v.oldBinarySha256, v.newBinarySha256].every(s => typeof s === 'string' && SHA.test(s)))
    return { problem: 'a binary sha256 is malformed' }
  if (v.newVersion !== null && typeof v.newVersion !== 'string') return { problem: 'newVersion is malformed' }
  if (v.runId !== undefined && (typeof v.runId !== 'string' || !/^\d{1,20}$/.test(v.runId)))
    return { problem: 'runId is malformed' }
  return { ...(v as HeldRecord), old, new: neu }
}

/** What /proc says of a process now; null when it is gone (or a zombie). */
export interface ProcNow {
  startTime: string
  sha256: string | null
  exe: string
}

const PROC_SCRIPT = String.raw`
one() {
  s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null || { echo "$1 gone"; return; }
  r=${'$'}{s##*) }
  set -- "$1" $r
  case $2 in Z*|X*) echo "$1 gone"; return;; esac
  p=$1; shift 20
  st=$1
  h=$(sha256sum "/proc/$p/exe" 2>/dev/null | { read -r x _; echo "$x"; })
  e=$(readlink "/proc/$p/exe" 2>/dev/null)
  echo "$p alive $st ${'$'}{h:--} $e"
}
for pid in "$@"; do
  case $pid in ''|*[!0-9]*) echo "$pid gone"; continue;; esac
  one "$pid"
done
`

/** Each pid's start time, executable sha256 and path, read in one round trip. */
export async function readProcesses(host: Host, pids: number[]): Promise<Map<number, ProcNow | null>> {
  const r = await host.run(['sh', '-c', PROC_SCRIPT, 'sh', ...pids.map(String)], { sudo: host.sudo })
  if (r.code !== 0)
    throw new Error(
      `cannot read the held processes ${pids.join(', ')}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
  const out = new Map<number, ProcNow | null>(pids.map(p => [p, null]))
  for (const line of r.stdout.split('\n')) {
    const m = /^(\d+) alive (\d+) ([0-9a-f]{64}|-) ?(.*)$/.exec(line.trim())
    if (m)
      out.set(Number(m[1]), {
        startTime: m[2]!,
        sha256: m[3] === '-' ? null : m[3]!,
        exe: m[4]!.replace(/ \(deleted\)$/, '')
      })
  }
  return out
}

/** Whether a process is still the one the record names. */
export function sameProcess(rec: HeldProcess, now: ProcNow | null | undefined): 'same' | 'gone' | 'other' {
  if (!now) return 'gone'
  return now.startTime === rec.startTime && now.sha256 === rec.sha256 ? 'same' : 'other'
}

/** Writes the record atomically (temporary file, then rename), readable only by its owner. */
export async function writeHeld(host: Host, releaseDir: string, record: HeldRecord): Promise<void> {
  const script =
    'f=$1; t="$f.tmp.$$"; umask 077; printf "%s\\n" "$2" > "$t" && mv -f -- "$t" "$f" || { rm -f -- "$t"; exit 1; }'
  const r = await host.run(['sh', '-c', script, 'sh', heldPath(releaseDir), JSON.stringify(record)], {
    sudo: host.sudo
  })
  if (r.code !== 0)
    throw new Error(
      `cannot write the held record ${heldPath(releaseDir)}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
}

/** The record's text, or null when there is none. */
export async function readHeld(host: Host, releaseDir: string): Promise<string | null> {
  const script = 'f=$1; [ -e "$f" ] || { echo absent; exit 0; }; echo present; head -c 65536 -- "$f"'
  const r = await host.run(['sh', '-c', script, 'sh', heldPath(releaseDir)], { sudo: host.sudo })
  if (r.code !== 0)
    throw new Error(
      `cannot read the held record ${heldPath(releaseDir)}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
  const [first, ...rest] = r.stdout.split('\n')
  return first === 'present' ? rest.join('\n') : null
}

/** Removes the record once the host is finished (committed, or back on its old process). */
export async function removeHeld(host: Host, releaseDir: string): Promise<void> {
  const r = await host.run(['rm', '-f', '--', heldPath(releaseDir)], { sudo: host.sudo })
  if (r.code !== 0)
    throw new Error(
      `cannot remove the held record ${heldPath(releaseDir)}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
}
