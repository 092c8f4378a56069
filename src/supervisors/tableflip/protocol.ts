/**
 * What the tableflip supervisor reads on a host and how it judges it: the process named in the
 * pid file, its parent and children, each with its executable and command line, in one round
 * trip; and pure judgements over that snapshot. cloudflare/tableflip's hand-over, as the action
 * relies on it (docs/upgradable-server.md):
 *
 * - the upgrade signal makes the serving process (the parent) start its own argv[0] again as a
 *   child that inherits the listening sockets;
 * - the child calls Ready(), which writes the pid file (its own pid) and tells the parent;
 * - the parent stops accepting, finishes its requests and exits by itself; the child is then
 *   re-parented (to init or a subreaper);
 * - a child that exits, or never calls Ready(), leaves the parent serving, pid file unchanged;
 * - a second Upgrade() is refused while the parent of the serving process is still alive.
 */
import { check, type Host } from '../../host/host.js'

export interface Proc {
  pid: number
  /** /proc state letter; Z (zombie) and X count as gone. */
  state: string
  ppid: number
  /** readlink /proc/<pid>/exe, with " (deleted)" when the file was replaced. */
  exe: string
  /** The command line, arguments joined by spaces (NUL, tab and newline shown as spaces). */
  cmdline: string
  /** argv[0] exactly as the process was started ('' when unreadable). */
  argv0: string
}

export interface Snapshot {
  /** The pid in the pid file; null when missing or not a number. */
  pid: number | null
  /** The pid file's process, the pids watched, their children, and the pid file process's parent. */
  procs: Map<number, Proc>
}

// One round trip (written with @{ for sh's ${, which a template literal would take). Positional:
// $1 pid file, then pids to keep in view whatever the pid file says (the old and new process).
// Children come from /proc/<pid>/task/*/children (no scan of every process).
// The pid file is read again after the processes: a child that calls Ready() between the two
// reads makes its parent exit at once, and a snapshot of "pid file: old, old process gone" would
// read as a failed hand-over. Only a snapshot with the same pid file before and after is printed.
const PROBE = String.raw`
pf=$1; shift
readpf() { p=; [ -r "$pf" ] && read -r p 2>/dev/null < "$pf"; case $p in ''|*[!0-9]*) p=-;; esac; }
show() {
  line=; read -r line 2>/dev/null < "/proc/$1/stat" || return 0
  rest=@{line##*) }
  set -- "$1" $rest
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || exe=-
  a0=$(tr '\0\t\n' '\n  ' 2>/dev/null < "/proc/$1/cmdline" | head -n 1)
  cmd=$(tr '\0\t\n' '   ' 2>/dev/null < "/proc/$1/cmdline")
  printf 'proc\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$exe" "$a0" "$cmd"
}
seen=' '
one() {
  case $1 in ''|*[!0-9]*|0|1) return 0;; esac
  case $seen in *" $1 "*) return 0;; esac
  seen="$seen$1 "
  show "$1"
}
procs() {
  for q in $p "$@"; do
    case $q in ''|*[!0-9]*) continue;; esac
    one "$q"
    kids=
    for c in /proc/$q/task/*/children; do k=; read -r k 2>/dev/null < "$c"; kids="$kids $k"; done
    for k in $kids; do one "$k"; done
  done
  case $p in ''|*[!0-9]*) ;; *)
    line=; read -r line 2>/dev/null < "/proc/$p/stat" && { rest=@{line##*) }; set -- $rest; one "$2"; } ;;
  esac
}
readpf
for try in 1 2 3 4 5; do
  before=$p
  out=$(procs "$@")
  readpf
  [ "$p" = "$before" ] && break
done
echo "pidfile $before"
[ -z "$out" ] || printf '%s\n' "$out"
`.replaceAll('@{', '${')

function pidOf(text: string | undefined): number | null {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null
}

export function parseSnapshot(stdout: string): Snapshot {
  const snap: Snapshot = { pid: null, procs: new Map() }
  for (const line of stdout.split('\n')) {
    if (line.startsWith('pidfile ')) snap.pid = pidOf(line.slice(8).trim())
    else if (line.startsWith('proc\t')) {
      const [, pid, state, ppid, exe, argv0, cmdline] = line.split('\t')
      if (pidOf(pid) === null) continue
      snap.procs.set(Number(pid), {
        pid: Number(pid),
        state: state ?? '?',
        ppid: Number(ppid),
        exe: exe ?? '-',
        argv0: argv0 ?? '',
        cmdline: (cmdline ?? '').trim()
      })
    }
  }
  return snap
}

/** Reads the pid file and the processes around it; `watch`: pids kept in view (old and new). */
export async function probe(host: Host, pidFile: string, watch: readonly number[] = []): Promise<Snapshot> {
  const pids = watch.filter(p => Number.isInteger(p) && p > 1).map(String)
  const r = await host.run(['sh', '-c', PROBE, 'sh', pidFile, ...pids], {
    sudo: host.sudo,
    timeoutMs: 30_000
  })
  if (r.code !== 0) throw new Error(`${host.name}: cannot read the process state: ${r.stderr.trim()}`)
  return parseSnapshot(r.stdout)
}

export function isAlive(snap: Snapshot, pid: number | null | undefined): boolean {
  if (pid === null || pid === undefined) return false
  const p = snap.procs.get(pid)
  return p !== undefined && p.state !== 'Z' && p.state !== 'X'
}

export function liveChildren(snap: Snapshot, pid: number): Proc[] {
  return [...snap.procs.values()].filter(p => p.ppid === pid && p.state !== 'Z' && p.state !== 'X')
}

/** The path the kernel reports for a process's executable, without the " (deleted)" suffix. */
export function exePath(proc: Proc): { path: string; replaced: boolean } {
  const replaced = proc.exe.endsWith(' (deleted)')
  return { path: replaced ? proc.exe.slice(0, -' (deleted)'.length) : proc.exe, replaced }
}

/**
 * The parent of a serving process that is still alive and runs the same server (same command
 * line, or the same executable path): an earlier hand-over whose old process is still finishing
 * its requests. tableflip refuses another Upgrade() until it has exited.
 */
export function exitingParent(snap: Snapshot, pid: number): Proc | null {
  const me = snap.procs.get(pid)
  if (!me || me.ppid <= 1 || !isAlive(snap, me.ppid)) return null
  const parent = snap.procs.get(me.ppid)!
  const sameCommand = parent.cmdline !== '' && parent.cmdline === me.cmdline
  const sameFile = exePath(parent).path === exePath(me).path && exePath(me).path !== '-'
  return sameCommand || sameFile ? parent : null
}

/**
 * Why argv[0] would not re-execute the live file, or null when it does. tableflip starts
 * os.Args[0] again: a bare name is looked up in PATH (another file, e.g. a packaged copy), a
 * relative path is taken from the working directory the server had when it started.
 */
export function argv0Problem(argv0: string, livePath: string, resolved: string | null): string | null {
  if (argv0 === '') return 'its command line cannot be read'
  if (!argv0.includes('/'))
    return `it was started as "${argv0}", a bare name: tableflip starts argv[0] again through a PATH lookup, which may find another file than ${livePath}`
  if (!argv0.startsWith('/'))
    return `it was started as "${argv0}", a relative path: tableflip starts argv[0] again from the working directory it had at start, not necessarily ${livePath}`
  if (resolved !== null && resolved !== livePath)
    return `its argv[0] ${argv0} resolves to ${resolved}, not to the file it runs (${livePath})`
  return null
}

/** What the host shows after the upgrade signal, judged. */
export type StartVerdict =
  | { kind: 'ready'; pid: number }
  | { kind: 'waiting'; children: number[] }
  | { kind: 'failed'; message: string }

export interface StartWatch {
  oldPid: number
  livePath: string
  signal: string
  /** A child of the old process was seen since the signal. */
  sawChild: boolean
  /** Long enough since the signal that a child would have been seen (the quiet window passed). */
  quiet: boolean
}

/**
 * Judges one snapshot during a start. Ready: the pid file names a live process other than the old
 * one, running the live file (the new binary), a child of the old process or re-parented once the
 * old one exited. Failed: the old process died, or the pid file still names it and no child lives
 * any more (one was seen, or none appeared within the quiet window).
 */
export function judgeStart(snap: Snapshot, w: StartWatch): StartVerdict {
  const n = snap.pid
  const oldAlive = isAlive(snap, w.oldPid)
  if (n !== null && n !== w.oldPid && isAlive(snap, n)) {
    const p = snap.procs.get(n)!
    const exe = exePath(p)
    if (exe.path !== w.livePath || exe.replaced)
      return {
        kind: 'failed',
        message: `the pid file names ${n}, which runs ${p.exe}, not the new binary at ${w.livePath}`
      }
    if (p.ppid === w.oldPid || !oldAlive) return { kind: 'ready', pid: n }
  }
  if (!oldAlive)
    return {
      kind: 'failed',
      message:
        `the server ${w.oldPid} exited after ${w.signal} and no new process names itself in the pid file ` +
        `(pid file: ${n ?? 'none'}); a server that does not handle ${w.signal} dies of it`
    }
  const children = liveChildren(snap, w.oldPid).map(p => p.pid)
  if (children.length > 0) return { kind: 'waiting', children }
  if (w.sawChild)
    return {
      kind: 'failed',
      message: `the new binary exited before it was ready: ${w.oldPid} keeps serving and the pid file still names it`
    }
  if (w.quiet)
    return {
      kind: 'failed',
      message:
        `no new process appeared after ${w.signal} and the pid file still names ${w.oldPid}: the new binary exited at once, ` +
        `or the server does not start a handoff on ${w.signal} (see upgrade-signal)`
    }
  return { kind: 'waiting', children: [] }
}

/** A one-line account of the old and new processes, for errors and reports. */
export function describe(snap: Snapshot, oldPid: number, newPid?: number): string {
  const parts = [`pid file: ${snap.pid ?? 'none'}`]
  parts.push(isAlive(snap, oldPid) ? `old process ${oldPid} alive` : `old process ${oldPid} gone`)
  const kids = liveChildren(snap, oldPid)
  for (const k of kids) parts.push(`child ${k.pid} (${k.exe})${snap.pid === k.pid ? ' ready' : ' not ready'}`)
  const others = [snap.pid, newPid].filter(
    (p): p is number => p !== null && p !== undefined && p !== oldPid && !kids.some(k => k.pid === p)
  )
  for (const p of new Set(others))
    parts.push(isAlive(snap, p) ? `${p} alive (${snap.procs.get(p)!.exe})` : `${p} not running`)
  return parts.join('; ')
}

/** Always the one pid named, never a process group; only a real process (pid > 1). */
export async function signal(host: Host, sig: string, pid: number): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal pid ${pid}`)
  const argv = ['kill', '-s', sig, '--', String(pid)]
  check(host, argv, await host.run(argv, { sudo: host.sudo }))
}

/** sha256 of the file a process runs (the kernel keeps it even when the path was replaced). */
export async function exeSha256(host: Host, pid: number): Promise<string | null> {
  const r = await host.run(['sha256sum', '--', `/proc/${pid}/exe`], { sudo: host.sudo, timeoutMs: 60_000 })
  if (r.code !== 0) return null
  const h = r.stdout.trim().split(/\s+/)[0] ?? ''
  return /^[0-9a-f]{64}$/.test(h) ? h : null
}
