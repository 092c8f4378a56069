/**
 * What the upgrade needs to know about nginx's master/worker protocol (and servers that speak
 * it): where the pid files are, how to read the process tree from /proc in one round trip, how
 * to tell the new master from old workers, and how to ask the binary for its config test and
 * version. Nothing else in the upgrade knows nginx.
 */
import { check, type Host } from '../../host/host.js'
import { GATE_CLOSED, type Gate } from '../../host/remote-shell.js'

export interface Proc {
  pid: number
  /** /proc state letter; Z (zombie) and X count as gone. */
  state: string
  ppid: number
  /** Session id: a daemonized master leads its own session. */
  sid: number
  /** readlink /proc/<pid>/exe, with " (deleted)" when the file was replaced. */
  exe: string
  /** The process title (nginx rewrites argv: "nginx: master process /srv/app/sbin/nginx -c ..."). */
  title: string
}

/** One read of the host's protocol state. */
export interface Snapshot {
  /** pid in the pid file, null when absent or not a number. */
  pid: number | null
  /** pid in `<pid-file>.oldbin`, null when absent. */
  oldbinPid: number | null
  oldbinExists: boolean
  /** The processes named in the pid files and their children. */
  procs: Map<number, Proc>
}

// One round trip (written with @{ for sh's ${, which a template literal would take): both pid files
// and every process that is, or is a child of, the pids they name or the pids watched (given after
// the pid file: the masters of an upgrade stay in view while their pid files are being renamed).
// Children come from /proc/<pid>/task/*/children when the kernel has it (no scan of every process:
// a probe stays fast on a busy host); otherwise every /proc/<pid>/stat is read.
export const PROBE = String.raw`
pf=$1; shift
rd() { p=; [ -r "$1" ] && read -r p 2>/dev/null < "$1"; case $p in ''|*[!0-9]*) p=-;; esac; echo "$p"; }
m=$(rd "$pf"); o=$(rd "$pf.oldbin")
echo "pidfile $m"
echo "oldbin $o"
[ -e "$pf.oldbin" ] && echo "oldbinfile"
show() {
  line=; read -r line 2>/dev/null < "/proc/$1/stat" || return 0
  rest=@{line##*) }
  set -- "$1" $rest
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || exe=-
  title=$(tr '\0\t\n' '   ' 2>/dev/null < "/proc/$1/cmdline")
  printf 'proc\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$5" "$exe" "$title"
}
w=" $m $o $* "
if [ -e "/proc/$$/task/$$/children" ]; then
  seen=' '
  for p in $m $o "$@"; do
    case $p in ''|*[!0-9]*) continue;; esac
    kids=
    # init's children are never listed: a pid file naming pid 1 must not reveal every command line.
    [ "$p" = 1 ] || for c in /proc/$p/task/*/children; do
      k=; read -r k 2>/dev/null < "$c"; kids="$kids $k"
    done
    for q in $p $kids; do
      case $seen in *" $q "*) continue;; esac
      seen="$seen$q "
      show "$q"
    done
  done
else
  for f in /proc/[0-9]*/stat; do
    line=; read -r line 2>/dev/null < "$f" || continue
    pid=@{f#/proc/}; pid=@{pid%/stat}
    rest=@{line##*) }
    set -- $rest
    case $w in *" $pid "*) show "$pid";; *" $2 "*) [ "$2" = 1 ] || show "$pid";; esac
  done
fi
`.replaceAll('@{', '${')

function pidOf(text: string | undefined): number | null {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null
}

export function parseSnapshot(stdout: string): Snapshot {
  const snap: Snapshot = { pid: null, oldbinPid: null, oldbinExists: false, procs: new Map() }
  for (const line of stdout.split('\n')) {
    if (line.startsWith('pidfile ')) snap.pid = pidOf(line.slice(8))
    else if (line.startsWith('oldbin ')) snap.oldbinPid = pidOf(line.slice(7))
    else if (line === 'oldbinfile') snap.oldbinExists = true
    else if (line.startsWith('proc\t')) {
      const [, pid, state, ppid, sid, exe, title] = line.split('\t')
      snap.procs.set(Number(pid), {
        pid: Number(pid),
        state: state ?? '?',
        ppid: Number(ppid),
        sid: Number(sid),
        exe: exe ?? '-',
        title: (title ?? '').trim()
      })
    }
  }
  return snap
}

/** Reads the protocol state; `watch`: pids (old and new master) kept in view whatever the pid files say. */
export async function probe(host: Host, pidFile: string, watch: readonly number[] = []): Promise<Snapshot> {
  const pids = watch.filter(p => Number.isInteger(p) && p > 0).map(String)
  const r = await host.run(['sh', '-c', PROBE, 'sh', pidFile, ...pids], {
    sudo: host.sudo,
    timeoutMs: 30_000
  })
  if (r.code !== 0) throw new Error(`${host.name}: cannot read the process state: ${r.stderr.trim()}`)
  return parseSnapshot(r.stdout)
}

export function isAlive(snap: Snapshot, pid: number | null): boolean {
  if (pid === null) return false
  const p = snap.procs.get(pid)
  return p !== undefined && p.state !== 'Z' && p.state !== 'X'
}

export function liveChildren(snap: Snapshot, pid: number): Proc[] {
  return [...snap.procs.values()].filter(p => p.ppid === pid && p.state !== 'Z' && p.state !== 'X')
}

const WORKER_TITLE = /^nginx: (worker|cache manager|cache loader) process/

/** The old master's workers: its live children minus the new master (a child too, see PROTOCOL.md). */
export function oldWorkers(snap: Snapshot, oldPid: number, newPid: number | null): Proc[] {
  return liveChildren(snap, oldPid).filter(
    p => p.pid !== newPid && (newPid !== null || WORKER_TITLE.test(p.title))
  )
}

/**
 * A master's long-lived helpers: its workers and its cache manager. A cache loader is left out: it
 * exits by design a minute after start, which is no crash.
 */
export function steadyChildren(snap: Snapshot, pid: number): Proc[] {
  return liveChildren(snap, pid).filter(p => /^nginx: (worker|cache manager) process/.test(p.title))
}

/** Workers that serve: "worker process", not "worker process is shutting down" (after WINCH or QUIT). */
export function acceptingWorkers(snap: Snapshot, pid: number): Proc[] {
  return liveChildren(snap, pid).filter(p => /^nginx: worker process$/.test(p.title))
}

/**
 * Children of the old master that are not its workers: a new master, whether or not it wrote
 * its pid file yet (a broken binary may never write one).
 */
export function newMasterCandidates(snap: Snapshot, oldPid: number): Proc[] {
  return liveChildren(snap, oldPid).filter(p => !WORKER_TITLE.test(p.title))
}

/** The path the kernel reports for a process's executable, without the " (deleted)" suffix. */
export function exePath(proc: Proc): { path: string; replaced: boolean } {
  const replaced = proc.exe.endsWith(' (deleted)')
  return { path: replaced ? proc.exe.slice(0, -' (deleted)'.length) : proc.exe, replaced }
}

export interface MasterCommand {
  /** argv[0] as the master was started (nginx execs it again on USR2). */
  argv0: string
  /** The other arguments, as far as the process title keeps them. */
  args: string[]
  /** The -p/-c/-g/-e arguments, to run the config test like the running master. */
  configArgs: string[]
}

/** Reads the master's command line back from its title ("nginx: master process <argv...>"). */
/** Whether a process title is an nginx master's (not a worker's, not another program's). */
export const isMasterTitle = (title: string): boolean => title.startsWith('nginx: master process')

export function parseMasterTitle(title: string): MasterCommand | null {
  const m = /^nginx: master process (.*)$/.exec(title.trim())
  const words = (m ? m[1]! : title).trim().split(/\s+/).filter(Boolean)
  if (words.length === 0) return null
  const [argv0, ...args] = words as [string, ...string[]]
  const configArgs: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (['-p', '-c', '-g', '-e'].includes(a) && i + 1 < args.length) {
      if (a === '-g') {
        // -g takes one argument that may hold spaces ("daemon on; worker_processes 2;"); the title joined it.
        const rest: string[] = []
        for (i++; i < args.length && !/^-[pcge]$/.test(args[i]!); i++) rest.push(args[i]!)
        i--
        configArgs.push('-g', rest.join(' '))
      } else {
        configArgs.push(a, args[++i]!)
      }
    } else if (/^-[pce]./.test(a)) {
      configArgs.push(a.slice(0, 2), a.slice(2))
    }
  }
  return { argv0, args, configArgs }
}

/** What the config dump says about the two settings that make a binary upgrade impossible or unsafe. */
export function configHazards(configDump: string, gArg: string): { daemonOff: boolean; masterOff: boolean } {
  const text = configDump.replace(/#[^\n]*/g, '') + '\n' + gArg
  return {
    daemonOff: /(^|[;\s{])daemon\s+off\s*;/m.test(text),
    masterOff: /(^|[;\s{])master_process\s+off\s*;/m.test(text)
  }
}

/** "nginx version: nginx/1.27.3" → "1.27.3"; other servers: the first x.y.z in the output. */
export function parseVersion(output: string): string | null {
  const m = /(\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?)/.exec(output)
  return m ? m[1]! : null
}

export const SIGNALS = {
  upgrade: 'USR2',
  stopWorkers: 'WINCH',
  gracefulStop: 'QUIT',
  restartWorkers: 'HUP'
} as const

/** Sends a signal to one pid (from the pid file), never to a process group (see docs/architecture.md). */
/** `gate`: sent with a gate of the host's shell; 'gate-closed' when the host did not run it. */
export async function signal(
  host: Host,
  sig: string,
  pid: number,
  gate?: Gate
): Promise<'sent' | 'gate-closed'> {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal pid ${pid}`)
  const argv = ['kill', '-s', sig, '--', String(pid)]
  const r = await host.run(argv, { sudo: host.sudo, gate })
  if (gate?.need && r.code === GATE_CLOSED) return 'gate-closed'
  check(host, argv, r)
  return 'sent'
}

/** A one-line account of the masters and workers, for error messages. */
export function describe(snap: Snapshot, oldPid: number): string {
  const parts = [
    `pid file: ${snap.pid ?? 'none'}`,
    `.oldbin: ${snap.oldbinExists ? (snap.oldbinPid ?? 'unreadable') : 'none'}`
  ]
  if (!isAlive(snap, oldPid)) parts.push(`old master ${oldPid} gone`)
  else {
    const all = oldWorkers(snap, oldPid, null).length
    const serving = acceptingWorkers(snap, oldPid).length
    parts.push(
      `old master ${oldPid} alive with ${all} workers${serving < all ? ` (${all - serving} shutting down)` : ''}`
    )
  }
  const news = newMasterCandidates(snap, oldPid)
  for (const n of news)
    parts.push(`new master ${n.pid} (${n.title || n.exe}) with ${steadyChildren(snap, n.pid).length} workers`)
  if (snap.pid !== null && snap.pid !== oldPid && !news.some(n => n.pid === snap.pid))
    parts.push(`pid ${snap.pid} ${isAlive(snap, snap.pid) ? 'alive' : 'not running'}`)
  return parts.join('; ')
}
