/**
 * What the action trusts on a host before anything runs with privilege (see SECURITY.md, "What
 * the action trusts on a host"). The pid file names the process that is signalled, whose
 * executable is read, run and copied into the store; the folders hold files root creates. So:
 * the master runs as root, the deploy user or master-user, and every file and folder involved is
 * owned by one of them and writable by no other user. One remote probe reads the facts (stat and
 * /proc only, never running anything found there); a pure function judges them.
 */
import { quote } from './quote.js'
import type { ExecResult, Host } from './host.js'

/** What a path is, as stat reads it (lstat for files that must not be symlinks). */
export interface PathFacts {
  role: Role
  path: string
  uid: number
  gid: number
  owner: string
  /** Permission bits with the sticky bit (stat %a, read as octal). */
  mode: number
  type: 'file' | 'dir' | 'symlink' | 'other'
}

/**
 * pidfile, staging: files (lstat); exe: the file the master runs; *dir: the folder of the pid
 * file, of the live binary, the release store (or its nearest existing folder); *up: their parents.
 */
export type Role =
  'pidfile' | 'piddir' | 'piddir-up' | 'exe' | 'livedir' | 'livedir-up' | 'staging' | 'store' | 'store-up'

export interface TrustFacts {
  /** The SSH user (SUDO_UID when the probe ran through sudo). */
  me: { uid: number; gid: number; name: string }
  /** The user master-user names; uid null when the host has no such user. */
  allowed?: { name: string; uid: number | null }
  master: { pid: number; uid: number; euid: number; name: string }
  paths: PathFacts[]
}

/** A running server whose files passed the trust checks, as the first read of a run found it. */
export interface TrustedServer {
  pid: number
  /** The file it runs (without " (deleted)"). */
  livePath: string
  /** /proc/<pid>/exe read "(deleted)": the file at livePath is not the one it started from. */
  replaced: boolean
  facts: TrustFacts
}

export interface TrustPlan {
  pidFile: string
  pid: number
  /** The file the master runs (without " (deleted)"). */
  livePath: string
  /** Where the staging file goes (beside the live binary). */
  stagingPath: string
  /** The release store; may not exist yet (its nearest existing folder is checked). */
  storeDir: string
  /** master-user: one more user the master may run as. */
  masterUser?: string
}

// Paths are passed as arguments and printed last on their line; nothing found is ever executed.
// Folders are resolved (readlink -f) and checked up to /.
export const PROBE = String.raw`
pf=$1 pid=$2 live=$3 staging=$4 store=$5 allowed=$6 root=$7
if [ "$pid" = - ]; then
  # The pid file's server is not known yet: read here, with the paths named after the file it runs
  # (staging beside it; the store under root unless given). The runner names them too and uses
  # these facts only when both agree.
  pid=$(cat -- "$pf" 2>/dev/null); case $pid in ''|*[!0-9]*) exit 0;; esac
  e=$(readlink "/proc/$pid/exe" 2>/dev/null); live=@{e% (deleted)}
  printf 'running\t%s\t%s\n' "$pid" "$e"
  case $live in /*) ;; *) exit 0;; esac
  staging=@{live%/*}/.@{live##*/}.zerodown-new store=@{store:-$root/@{live##*/}}
  printf 'staging\t%s\n' "$staging"; printf 'storedir\t%s\n' "$store"
fi
echo "me	@{SUDO_UID:-$(id -u)}	@{SUDO_GID:-$(id -g)}	@{SUDO_USER:-$(id -un)}"
if [ -n "$allowed" ]; then printf 'allowed\t%s\t%s\n' "$(id -u -- "$allowed" 2>/dev/null || echo -)" "$allowed"; fi
u=; { while read -r k v; do [ "$k" = Uid: ] && { u=$v; break; }; done < "/proc/$pid/status"; } 2>/dev/null
set -- $u
n=$(getent passwd "$2" 2>/dev/null | cut -d: -f1)
printf 'master\t%s\t%s\t%s\n' "@{1:--}" "@{2:--}" "@{n:-?}"
st() { s=$(stat $3 --printf '%u\t%g\t%a\t%F\t%U' -- "$2" 2>/dev/null) && printf 'P\t%s\t%s\t%s\n' "$1" "$s" "$2"; }
chain() {
  d=$(readlink -m -- "$2" 2>/dev/null) || return 0
  # d is absolute and canonical (readlink -m): its folder is d up to its last slash, no fork.
  while [ ! -e "$d" ] && [ "$d" != / ]; do d=@{d%/*}; d=@{d:-/}; done
  st "$1" "$d"
  while [ "$d" != / ]; do d=@{d%/*}; d=@{d:-/}; st "$1-up" "$d"; done
}
st pidfile "$pf"
chain piddir "$(dirname -- "$pf")"
st exe "/proc/$pid/exe" -L
chain livedir "$(dirname -- "$live")"
st staging "$staging"
chain store "$store"
`.replaceAll('@{', '${')

/** Reads the facts; runs through sudo when the host does (stat of root's folders), executing nothing found. */
export async function probeTrust(host: Host, plan: TrustPlan): Promise<TrustFacts> {
  const r = await host.run(
    [
      'sh',
      '-c',
      PROBE,
      'sh',
      plan.pidFile,
      String(plan.pid),
      plan.livePath,
      plan.stagingPath,
      plan.storeDir,
      plan.masterUser ?? ''
    ],
    { sudo: host.sudo, timeoutMs: 30_000 }
  )
  return factsOf(host, r, plan.pid, plan.livePath)
}

/** The probe's answer for master `pid` running `livePath`: its facts, or an error naming the host. */
export function factsOf(host: Host, r: ExecResult, pid: number, livePath: string): TrustFacts {
  if (r.code !== 0) throw new Error(`${host.name}: cannot read owners and modes: ${r.stderr.trim()}`)
  const facts = parseTrust(r.stdout, pid)
  for (const p of facts.paths) if (p.role === 'exe') p.path = livePath
  return facts
}

const TYPES: Record<string, PathFacts['type']> = {
  'regular file': 'file',
  'regular empty file': 'file',
  directory: 'dir',
  'symbolic link': 'symlink'
}

export function parseTrust(stdout: string, pid: number): TrustFacts {
  const facts: TrustFacts = {
    me: { uid: -1, gid: -1, name: '?' },
    master: { pid, uid: -1, euid: -1, name: '?' },
    paths: []
  }
  const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : -1)
  for (const line of stdout.split('\n')) {
    const f = line.split('\t')
    if (f[0] === 'me') facts.me = { uid: num(f[1]), gid: num(f[2]), name: f[3] ?? '?' }
    else if (f[0] === 'allowed') {
      const uid = num(f[1])
      facts.allowed = { name: f.slice(2).join('\t'), uid: uid < 0 ? null : uid }
    } else if (f[0] === 'master') facts.master = { pid, uid: num(f[1]), euid: num(f[2]), name: f[3] ?? '?' }
    else if (f[0] === 'P' && f.length >= 8)
      facts.paths.push({
        role: f[1] as Role,
        uid: num(f[2]),
        gid: num(f[3]),
        mode: parseInt(f[4] ?? '', 8),
        type: TYPES[f[5] ?? ''] ?? 'other',
        owner: f[6] ?? '?',
        path: f.slice(7).join('\t')
      })
  }
  return facts
}

/** The uids whose files the action trusts: root, the deploy user, and the master's own user (once judged). */
function trustedUids(facts: TrustFacts): Set<number> {
  return new Set([0, facts.me.uid, facts.master.euid].filter(u => u >= 0))
}

/** Why the host is not trusted (clear, with the fix), or null. Pure: unit-tested. */
export function judgeTrust(
  facts: TrustFacts,
  plan: Pick<TrustPlan, 'pidFile' | 'masterUser'>
): string | null {
  const m = facts.master
  const users = new Set([0, facts.me.uid])
  if (facts.allowed?.uid !== null && facts.allowed !== undefined) users.add(facts.allowed.uid)
  if (plan.masterUser !== undefined && facts.allowed?.uid === null) {
    const msg = `master-user ${plan.masterUser} is not a user of the host. Set it to the user the server's master runs as`
    return msg
  }
  if (m.uid < 0 || m.euid < 0) {
    const msg = `cannot read the user of the master ${m.pid} (/proc/${m.pid}/status): it is not trusted`
    return msg
  }
  if (!users.has(m.uid) || !users.has(m.euid)) {
    return masterMessage({
      pid: m.pid,
      who: m.uid === m.euid ? `${m.name} (uid ${m.euid})` : `${m.name} (uid ${m.uid}, effective ${m.euid})`,
      name: m.name,
      allowed: facts.me.name + (facts.allowed ? ` nor master-user ${facts.allowed.name}` : ''),
      pidFile: plan.pidFile
    })
  }
  const uids = trustedUids(facts)
  const gids = new Set([0, facts.me.gid])
  for (const p of facts.paths) {
    const why = pathProblem(p, uids, gids)
    if (why !== null) return `${describe(p, plan.pidFile)} ${why}`
  }
  return null
}

/** Who the master runs as, and who it may run as, in words. */
interface MasterWho {
  pid: number
  who: string
  name: string
  allowed: string
  pidFile: string
}

function masterMessage(w: MasterWho): string {
  return (
    `the master ${w.pid} runs as ${w.who}, neither root nor the deploy user ${w.allowed}: ` +
    `another user's process can pose as the server by writing its pid into pid-file ${w.pidFile}. ` +
    `Nothing was changed. Check that pid-file is the server's; if the master really runs as that user, set master-user: ${w.name}`
  )
}

function pathProblem(p: PathFacts, uids: Set<number>, gids: Set<number>): string | null {
  const fix = (what: string) => `Nothing was changed. ${what}`
  if ((p.role === 'pidfile' || p.role === 'staging') && p.type !== 'file') {
    const msg = `is a ${p.type === 'symlink' ? 'symbolic link' : p.type}, not a regular file: another user may have planted it. ${fix(`Remove it: rm -f -- ${quote(p.path)}`)}`
    return msg
  }
  if (!uids.has(p.uid)) {
    const msg = `is owned by ${p.owner} (uid ${p.uid}), not by root, the deploy user or the master's user: that user could replace it. ${fix(`Give it to root: chown root ${quote(p.path)}`)}`
    return msg
  }
  const mode = `mode ${(p.mode & 0o7777).toString(8)}`
  const sticky = (p.mode & 0o1000) !== 0
  // A sticky parent folder (/tmp) lets nobody move another user's entry away; the folder a file is
  // created in must be closed to everyone else, since names in it are chosen by the action.
  const parent = p.role.endsWith('-up') && sticky
  if ((p.mode & 0o002) !== 0 && !parent) {
    const msg = `is writable by every user (${mode}): another user could replace the files in it or plant links. ${fix(`Close it: chmod o-w ${quote(p.path)}`)}`
    return msg
  }
  if ((p.mode & 0o020) !== 0 && !gids.has(p.gid) && !parent) {
    const msg = `is writable by its group (gid ${p.gid}, ${mode}), which is not the deploy user's. ${fix(`Close it: chmod g-w ${quote(p.path)}`)}`
    return msg
  }
  return null
}

function describe(p: PathFacts, pidFile: string): string {
  switch (p.role) {
    case 'pidfile':
      return `pid-file ${p.path}`
    case 'piddir':
      return `the folder of pid-file ${pidFile}, ${p.path},`
    case 'exe':
      return `the executable of the master, ${p.path},`
    case 'livedir':
      return `the folder of the live binary, ${p.path},`
    case 'staging':
      return `the staging file ${p.path}`
    case 'store':
      return `the release store's folder ${p.path}`
    default:
      return `${p.path}, a parent folder of the ${p.role === 'piddir-up' ? 'pid file' : p.role === 'store-up' ? 'release store' : 'live binary'},`
  }
}

// The lock checks first, then the supervisor's pre-flight, with the same plan: the second check
// reuses the first's facts (a round trip saved) when they are this fresh.
const FRESH_MS = 30_000
const judged = new WeakMap<Host, { key: string; at: number; facts: TrustFacts }>()

const keyOf = (plan: TrustPlan) => JSON.stringify(plan, Object.keys(plan).sort())

/** One call for pre-flight and the lock: probe, judge, and the facts when trusted. */
export async function checkTrust(host: Host, plan: TrustPlan): Promise<TrustFacts> {
  const last = judged.get(host)
  if (last !== undefined && last.key === keyOf(plan) && Date.now() - last.at < FRESH_MS) return last.facts
  return acceptTrust(host, plan, await probeTrust(host, plan))
}

/** Judges facts read for exactly `plan`: a TrustError, or the facts, kept for the next check. */
export function acceptTrust(host: Host, plan: TrustPlan, facts: TrustFacts): TrustFacts {
  const why = judgeTrust(facts, plan)
  if (why !== null) throw new TrustError(why)
  judged.set(host, { key: keyOf(plan), at: Date.now(), facts })
  return facts
}

export class TrustError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TrustError'
  }
}
