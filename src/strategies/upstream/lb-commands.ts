/**
 * What runs on the load balancer, as argv lists (the Host runs them; src/host/quote.ts quotes
 * them). Every remote value is a positional parameter of a fixed script, never part of its text.
 * Kamal style: building a command is apart from running it, so each one is unit-tested as data.
 */

/** A script and its arguments: `sh -c SCRIPT sh ARGS...`. */
function script(text: string, args: string[]): string[] {
  return ['sh', '-c', text.trim(), 'sh', ...args]
}

/**
 * Replaces the managed file atomically, and only if it still is what the caller read: a temp file
 * in the same folder (so that rename(2) stays on one file system), the original's mode and owner,
 * fsync, then one rename. A symlink at the path is refused (rename would replace the link, not
 * what it points to). Prints `written <sha256>`, or `changed <sha256>` (exit 4) when the file
 * changed since it was read, or `symlink` (exit 3).
 */
const WRITE = String.raw`
set -eu
f=$1; expect=$2; data=$3
[ -L "$f" ] && { echo symlink; exit 3; }
cur=$(sha256sum < "$f" | cut -d' ' -f1)
[ "$cur" = "$expect" ] || { echo "changed $cur"; exit 4; }
d=$(dirname -- "$f"); b=$(basename -- "$f")
tmp=$(mktemp "$d/.$b.zerodown-XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
printf '%s' "$data" | base64 -d > "$tmp"
chmod --reference="$f" -- "$tmp"
chown --reference="$f" -- "$tmp" 2>/dev/null || true
sync -- "$tmp" 2>/dev/null || sync
mv -fT -- "$tmp" "$f"
trap - EXIT
echo "written $(sha256sum < "$f" | cut -d' ' -f1)"
`

export function writeManagedFile(path: string, expectSha256: string, content: string): string[] {
  return script(WRITE, [path, expectSha256, Buffer.from(content, 'utf8').toString('base64')])
}

/** Reads the managed file with its sha256 in one round trip: `sha <hex>`, then the text. */
const READ = String.raw`
set -eu
f=$1
[ -L "$f" ] && { echo symlink; exit 3; }
[ -f "$f" ] || { echo missing; exit 2; }
echo "sha $(sha256sum < "$f" | cut -d' ' -f1)"
cat -- "$f"
`

export function readManagedFile(path: string): string[] {
  return script(READ, [path])
}

/** The config test with the running master's own binary and arguments (-p, -c, -g, -e). */
export function configTest(exe: string, configArgs: string[]): string[] {
  return [exe, '-t', ...configArgs]
}

/** The whole configuration as the running master would load it (to find includes and the log). */
export function configDump(exe: string, configArgs: string[]): string[] {
  return [exe, '-T', ...configArgs]
}

/** A reload: HUP to the master. */
export function reload(pid: number): string[] {
  return ['kill', '-s', 'HUP', '--', String(pid)]
}

/**
 * ESTABLISHED TCP connections to one backend (TIME-WAIT and the rest are not counted: they carry
 * no request). One line per connection; the caller counts them.
 */
export function establishedTo(ip: string, port: number): string[] {
  const dst = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`
  return ['ss', '-Htn', 'state', 'established', 'dst', dst]
}

/** The addresses a name resolves to on the load balancer (nginx resolved it there at load). */
export function resolve(name: string): string[] {
  return ['getent', 'ahosts', name]
}

/** Size of the access log now (where the canary's window starts). */
export function logSize(path: string): string[] {
  return ['stat', '-L', '-c', '%s', '--', path]
}

/**
 * The log lines after byte `from`, at most `max` bytes (a log rotated meanwhile is read from its
 * start). Prints `size <n>` first so that the next read continues from there.
 */
const LOG_SINCE = String.raw`
set -eu
f=$1; from=$2; max=$3
size=$(stat -L -c %s -- "$f")
[ "$size" -ge "$from" ] || from=0
echo "size $size"
tail -c +"$((from + 1))" -- "$f" | head -c "$max"
`

export function logSince(path: string, from: number, maxBytes: number): string[] {
  return script(LOG_SINCE, [path, String(from), String(maxBytes)])
}

/** The differences between what the action last wrote and the file now (unified diff). */
export function diffFiles(ours: string, now: string): string[] {
  return [
    'diff',
    '-u',
    '--label',
    'written by zerodown',
    '--label',
    'on the load balancer now',
    '--',
    ours,
    now
  ]
}

/** Saves a copy of a text (what the action wrote, the file as the run found it) beside its state. */
const SAVE = String.raw`
set -eu
dir=$1; name=$2; data=$3
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.$name.XXXXXX")
printf '%s' "$data" | base64 -d > "$tmp"
mv -fT -- "$tmp" "$dir/$name"
`

export function saveState(dir: string, name: string, content: string): string[] {
  return script(SAVE, [dir, name, Buffer.from(content, 'utf8').toString('base64')])
}

export function removeState(dir: string, name: string): string[] {
  return ['rm', '-f', '--', `${dir}/${name}`]
}

/** Parses `getent ahosts` output: the distinct addresses, in order. */
export function parseResolved(stdout: string): string[] {
  const out: string[] = []
  for (const line of stdout.split('\n')) {
    const ip = line.trim().split(/\s+/)[0]
    if (ip && /^[0-9a-fA-F:.]+$/.test(ip) && !out.includes(ip)) out.push(ip)
  }
  return out
}

/** host:port, [v6]:port, or a bare host (port 80) → its parts; null for unix: sockets. */
export function splitAddress(address: string): { host: string; port: number } | null {
  if (address.startsWith('unix:')) return null
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(address)
  if (v6) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : 80 }
  const m = /^([^:]+)(?::(\d+))?$/.exec(address)
  if (!m) return null
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 80 }
}
