/**
 * Helpers for the integration tests of the SSH layer: SshHost options for a sandbox host, the
 * host's sshd log (LogLevel VERBOSE) read from a mark, and the sshd session process of a
 * connection (to cut it like a network failure would).
 */
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs'
import type { Sandbox, SandboxHost } from '../../test/sandbox/sandbox.js'
import type { Host } from '../../src/host/host.js'
import type { SshHostOptions } from '../../src/host/ssh-host.js'

/** Options that connect to `h` as the deploy user with the sandbox key and known_hosts. */
export function hostOptions(
  sb: Sandbox,
  h: SandboxHost,
  over: Partial<SshHostOptions> & { user?: string } = {}
): SshHostOptions {
  const { user = sb.user, ...rest } = over
  return {
    target: { host: h.address, port: h.sshPort, user, label: `${user}@${h.address}:${h.sshPort}` },
    credentials: { privateKey: sb.privateKey() },
    hostKeys: { knownHosts: sb.knownHosts(), fingerprints: [], insecureSkip: false },
    sudo: false,
    connectTimeoutMs: 15_000,
    reconnectAttempts: 2,
    ...rest
  }
}

function sshdLogPath(h: SandboxHost): string {
  return `${h.root}/sshd.log`
}

/** The current end of the host's sshd log; pass it to sshdLogSince. */
export function sshdLogMark(h: SandboxHost): number {
  return statSync(sshdLogPath(h)).size
}

/** What sshd logged since the mark. */
export function sshdLogSince(h: SandboxHost, mark: number): string {
  return readFileSync(sshdLogPath(h)).subarray(mark).toString('utf8')
}

export const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** Polls until `fn` returns a truthy value or the time is up; returns the last value. */
export async function until<T>(fn: () => T, timeoutMs = 5000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs
  let v = fn()
  while (!v && Date.now() < end) {
    await sleep(stepMs)
    v = fn()
  }
  return v
}

function procParent(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
}

function procCmdline(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ')
}

/**
 * The sshd process that serves this Host's connection (`sshd: zd@notty`): the nearest ancestor
 * of a command run on the host's long-lived shell. Killing it cuts the connection.
 */
export async function sshSessionPid(host: Host): Promise<number> {
  const r = await host.run(['sh', '-c', 'echo "$PPID"'])
  let pid = Number(r.stdout.trim())
  for (let i = 0; i < 5 && pid > 1; i++) {
    if (/^sshd: \S+@/.test(procCmdline(pid))) return pid
    pid = procParent(pid)
  }
  throw new Error(`no sshd session process above ${r.stdout.trim()}`)
}

/** sha256 (hex) of a local file. */
export function sha256Of(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

/** device:inode of the file a process runs (stat -L /proc/<pid>/exe). */
export function exeInode(pid: number): string {
  const s = statSync(`/proc/${pid}/exe`)
  return `${s.dev}:${s.ino}`
}

export function fileInode(path: string): string {
  const s = statSync(path)
  return `${s.dev}:${s.ino}`
}

/** The link target of /proc/<pid>/exe (shows " (deleted)" once the file was replaced). */
export function exeLink(pid: number): string {
  return readlinkSync(`/proc/${pid}/exe`)
}

/** Live processes that are children of this process and whose command line matches. */
export function childPids(pattern: RegExp): number[] {
  return readdirSync('/proc')
    .filter(n => /^\d+$/.test(n))
    .map(Number)
    .filter(pid => {
      try {
        return procParent(pid) === process.pid && pattern.test(procCmdline(pid))
      } catch {
        return false // exited meanwhile
      }
    })
}

/** The sshd session processes (`sshd: user@notty`) serving connections to a sandbox host. */
export function sshdSessions(h: SandboxHost): number[] {
  return readdirSync('/proc')
    .filter(n => /^\d+$/.test(n))
    .map(Number)
    .filter(pid => {
      try {
        return readlinkSync(`/proc/${pid}/ns/mnt`) === h.mntNs && /^sshd: \S+@notty/.test(procCmdline(pid))
      } catch {
        return false
      }
    })
}
