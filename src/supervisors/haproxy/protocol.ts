/**
 * What the HAProxy supervisor reads and runs, apart from running it: the probe of the master and
 * its workers (one round trip), its parser, and the argv builders. HAProxy in master-worker mode:
 * USR2 makes the master re-execute its argv[0] (same pid, arguments and environment), parse the
 * config again and fork new workers, which take the listeners over and soft-stop the old ones. A
 * reload that fails leaves the master waiting ("wait mode") and the old workers serving.
 *
 * Judged from the processes only (measured on Debian's 2.6): the master's own executable flips
 * before any new worker exists, and while it reloads its command line carries `-sf <old pids>`;
 * it drops that again once the reload is over, whether it succeeded or not.
 */
import type { Host } from '../../host/host.js'

export interface HaproxyProc {
  pid: number
  /** /proc state letter; Z and X count as gone. */
  state: string
  ppid: number
  /** "dev:inode" of the file the process runs (stat -L /proc/<pid>/exe), "-" when unreadable. */
  exeId: string
  /** readlink /proc/<pid>/exe, with " (deleted)" when the file was replaced. */
  exe: string
  argv: string[]
}

export interface HaproxySnapshot {
  /** pid in the pid file, null when absent or not a number. */
  pidFile: number | null
  /** "dev:inode" of the live binary file, "-" when absent. */
  liveId: string
  /** The master (the pid watched) and its children. */
  master: HaproxyProc | null
  children: HaproxyProc[]
  /** The master's environment says master-worker mode (HAPROXY_MWORKER=1). */
  mworker: boolean
  /** The master's working directory. */
  cwd: string
}

// One round trip: the pid file, the live file's identity, the watched master and its children
// (from /proc/<pid>/task/*/children, or a scan of /proc where the kernel lacks it). Written with @{
// for sh's ${, which a template literal would take. Arguments: pid file, live path, master pid.
const PROBE = String.raw`
pf=$1 live=$2 m=$3
p=; [ -r "$pf" ] && read -r p 2>/dev/null < "$pf"; case $p in ''|*[!0-9]*) p=-;; esac
echo "pidfile $p"
echo "live $(stat -L -c %d:%i -- "$live" 2>/dev/null || echo -)"
case $m in ''|*[!0-9]*|0) exit 0;; esac
show() {
  line=; read -r line 2>/dev/null < "/proc/$1/stat" || return 0
  rest=@{line##*) }
  set -- "$1" $rest
  id=$(stat -L -c %d:%i "/proc/$1/exe" 2>/dev/null) || id=-
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || exe=-
  argv=$(tr '\0\t\n' '\t  ' 2>/dev/null < "/proc/$1/cmdline")
  printf 'proc\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$id" "$exe" "$argv"
}
show "$m"
[ -d "/proc/$m" ] || exit 0
tr '\0' '\n' 2>/dev/null < "/proc/$m/environ" | grep -qx 'HAPROXY_MWORKER=1' && echo mworker
echo "cwd $(readlink "/proc/$m/cwd" 2>/dev/null || echo -)"
if [ -e "/proc/$m/task/$m/children" ]; then
  for c in /proc/$m/task/*/children; do
    k=; read -r k 2>/dev/null < "$c"
    for q in $k; do show "$q"; done
  done
else
  for f in /proc/[0-9]*/stat; do
    line=; read -r line 2>/dev/null < "$f" || continue
    q=@{f#/proc/}; q=@{q%/stat}
    rest=@{line##*) }
    set -- $rest
    [ "$2" = "$m" ] && show "$q"
  done
fi
`.replaceAll('@{', '${')

function parseProc(line: string): HaproxyProc {
  const [, pid, state, ppid, exeId, exe, ...argv] = line.split('\t')
  return {
    pid: Number(pid),
    state: state ?? '?',
    ppid: Number(ppid),
    exeId: exeId ?? '-',
    exe: exe ?? '-',
    argv: argv.length > 0 && argv[argv.length - 1] === '' ? argv.slice(0, -1) : argv
  }
}

export function parseSnapshot(stdout: string, masterPid: number): HaproxySnapshot {
  const snap: HaproxySnapshot = {
    pidFile: null,
    liveId: '-',
    master: null,
    children: [],
    mworker: false,
    cwd: '-'
  }
  for (const line of stdout.split('\n')) {
    if (line.startsWith('pidfile ')) snap.pidFile = /^\d+$/.test(line.slice(8)) ? Number(line.slice(8)) : null
    else if (line.startsWith('live ')) snap.liveId = line.slice(5).trim() || '-'
    else if (line === 'mworker') snap.mworker = true
    else if (line.startsWith('cwd ')) snap.cwd = line.slice(4)
    else if (line.startsWith('proc\t')) {
      const p = parseProc(line)
      if (p.pid === masterPid) snap.master = p
      else if (p.ppid === masterPid) snap.children.push(p)
    }
  }
  snap.children.sort((a, b) => a.pid - b.pid)
  return snap
}

/** Reads the master `masterPid` (0: only the pid file and the live file) and its children. */
export async function probe(
  host: Host,
  pidFile: string,
  livePath: string,
  masterPid: number
): Promise<HaproxySnapshot> {
  const r = await host.run(['sh', '-c', PROBE, 'sh', pidFile, livePath, String(masterPid)], {
    sudo: host.sudo,
    timeoutMs: 30_000
  })
  if (r.code !== 0) throw new Error(`${host.name}: cannot read the process state: ${r.stderr.trim()}`)
  return parseSnapshot(r.stdout, masterPid)
}

export const alive = (p: HaproxyProc | null | undefined): p is HaproxyProc =>
  p !== null && p !== undefined && p.state !== 'Z' && p.state !== 'X'

/** The master is in a reload: its command line carries the old workers' pids after -sf/-st. */
export function reloading(master: HaproxyProc): boolean {
  return master.argv.some(a => a === '-sf' || a === '-st')
}

/** Live children of the master. */
export function workers(snap: HaproxySnapshot): HaproxyProc[] {
  return snap.children.filter(p => alive(p))
}

/** Options that take the words after them up to the next option (pid lists). */
const PID_LISTS = new Set(['-sf', '-st'])
/** Options of the running master that a config check must not get, with how many values follow. */
const RUN_ONLY: Record<string, number> = { '-D': 0, '-W': 0, '-Ws': 0, '-db': 0, '-x': 1, '-S': 1, '-p': 1 }

/**
 * The master's command line as it was started: what a reload hands over (-sf/-st pid lists and
 * -x sockpair@N) taken out. Returns argv0 and the other arguments.
 */
export function startArgs(argv: readonly string[]): { argv0: string; args: string[] } {
  const [argv0 = '', ...rest] = argv
  const args: string[] = []
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    if (PID_LISTS.has(a)) {
      while (i + 1 < rest.length && /^\d+$/.test(rest[i + 1]!)) i++
    } else if (a === '-x' && /^sockpair@/.test(rest[i + 1] ?? '')) i++
    else args.push(a)
  }
  return { argv0, args }
}

/** `<binary> -c <the master's config arguments>`: the config check with the running master's files. */
export function checkArgv(binary: string, masterArgs: readonly string[]): string[] {
  const out: string[] = [binary, '-c']
  for (let i = 0; i < masterArgs.length; i++) {
    const a = masterArgs[i]!
    if (a === '--') {
      out.push(...masterArgs.slice(i))
      break
    }
    if (a in RUN_ONLY) i += RUN_ONLY[a]!
    else if (PID_LISTS.has(a)) while (i + 1 < masterArgs.length && /^\d+$/.test(masterArgs[i + 1]!)) i++
    else out.push(a)
  }
  return out
}

/** The master runs in the background by itself (-D): the action may start it again after a crash. */
export function daemonizes(masterArgs: readonly string[]): boolean {
  return masterArgs.includes('-D')
}

/** "HAProxy version 2.6.12-1+deb12u4 2023/..." → "2.6.12-1+deb12u4". */
export function parseVersion(output: string): string | null {
  const m = /version (\d+\.\d+[^\s]*)/i.exec(output)
  return m ? m[1]! : null
}

/** A one-line account of the master and its workers, for errors and reports. */
export function describe(snap: HaproxySnapshot, oldWorkerPids: readonly number[]): string {
  if (!alive(snap.master)) return `master gone (pid file: ${snap.pidFile ?? 'none'})`
  const old = new Set(oldWorkerPids)
  const ws = workers(snap)
  const now = ws.filter(w => !old.has(w.pid))
  const left = ws.filter(w => old.has(w.pid))
  const runsLive = (w: HaproxyProc) => (w.exeId === snap.liveId ? 'live file' : 'another file')
  return (
    `master ${snap.master.pid}${reloading(snap.master) ? ' (reloading)' : ''}, ` +
    `workers: ${now.map(w => `${w.pid} (${runsLive(w)})`).join(', ') || 'none'}, ` +
    `old workers left: ${left.map(w => w.pid).join(', ') || 'none'}`
  )
}
