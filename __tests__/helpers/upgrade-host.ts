/**
 * Helpers for the hot-upgrade integration tests (upgrade, faults, zero-downtime): a real SshHost
 * to a sandbox host, plans for HostUpgrade, and the host's state read from the machine's side
 * (pid file, masters, live binary sha256, leftovers) to assert that nothing changed, or what did.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, renameSync, writeFileSync, chmodSync, chownSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { SshHost } from '../../src/host/ssh-host.js'
import type { UpgradePlan } from '../../src/fleet/host-upgrade.js'
import type { Logger } from '../../src/engine/types.js'
import { httpGet, type Sandbox, type SandboxHost } from '../../test/sandbox/sandbox.js'

export const LIVE = '/srv/app/sbin/nginx'

export function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

export async function connect(sb: Sandbox, h: SandboxHost): Promise<SshHost> {
  return SshHost.connect({
    target: {
      host: h.address,
      port: h.sshPort,
      user: sb.user,
      label: `${sb.user}@${h.address}:${h.sshPort}`
    },
    credentials: { privateKey: sb.privateKey() },
    hostKeys: { knownHosts: sb.knownHosts(), fingerprints: [], insecureSkip: false },
    sudo: false,
    connectTimeoutMs: 20_000
  })
}

/** A plan like the action's with the sandbox's fast test settings. */
export function planFor(
  localPath: string,
  over: Partial<Omit<UpgradePlan, 'health' | 'source'>> & {
    health?: Partial<UpgradePlan['health']>
    source?: Partial<UpgradePlan['source']>
  } = {}
): UpgradePlan {
  const { health, source, ...rest } = over
  const bytes = readFileSync(localPath)
  const isScript = bytes.subarray(0, 2).toString('latin1') === '#!'
  return {
    pidFile: '/run/nginx.pid',
    startTimeoutMs: 10_000,
    pollIntervalMs: 100,
    drainTimeoutMs: 20_000,
    drainTimeoutAction: 'rollback',
    ...rest,
    source: {
      localPath,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      arch: isScript ? null : 'x86_64',
      bytes: bytes.length,
      ...source
    },
    health: {
      url: 'http://{host}:8080/health',
      checks: 3,
      intervalMs: 200,
      timeoutMs: 10_000,
      ...health
    }
  }
}

/** A logger that keeps every line, for assertions on messages. */
export function memoryLogger(): Logger & { lines: string[]; text(): string } {
  const lines: string[] = []
  return {
    lines,
    text: () => lines.join('\n'),
    info: m => void lines.push(m),
    warn: m => void lines.push(`warning: ${m}`),
    error: m => void lines.push(`error: ${m}`),
    group: (title, fn) => {
      lines.push(`## ${title}`)
      return fn()
    }
  }
}

export interface HostState {
  pid: number | null
  pidAlive: boolean
  masters: number[]
  liveSha256: string
  oldbin: boolean
  leftovers: string[]
}

/** The host as seen from the machine: pid file, masters, the live binary, and files an upgrade may leave. */
export function hostState(sb: Sandbox, h: SandboxHost): HostState {
  const pid = sb.readPid(h)
  const sbin = sb.hostPath(h, '/srv/app/sbin')
  const leftovers = ['.nginx.zerodown-new', '.nginx.zerodown-prev'].filter(f => existsSync(`${sbin}/${f}`))
  return {
    pid,
    pidAlive: pid !== null && sb.isAlive(pid),
    masters: sb.nginxMasters(h),
    liveSha256: sha256(sb.hostPath(h, LIVE)),
    oldbin: existsSync(sb.hostPath(h, '/run/nginx.pid.oldbin')),
    leftovers
  }
}

/** device:inode of the file a process runs (stat -L /proc/<pid>/exe), and of the live file. */
export function exeIdentity(sb: Sandbox, h: SandboxHost, pid: number): { proc: string; live: string } {
  const r = sb.exec(h, ['stat', '-L', '-c', '%d:%i', `/proc/${pid}/exe`, LIVE])
  const [proc, live] = r.stdout.trim().split('\n')
  return { proc: proc ?? `(stat failed: ${r.stderr.trim()})`, live: live ?? '' }
}

/**
 * Writes a file into the host (owned by the deploy user, like the rest of /srv/app), by a rename,
 * so that a running executable can be replaced too.
 */
export function writeHostFile(
  sb: Sandbox,
  h: SandboxHost,
  remotePath: string,
  text: string,
  mode = 0o644
): void {
  const p = sb.hostPath(h, remotePath)
  const tmp = `${p}.zd-test-tmp`
  writeFileSync(tmp, text)
  chmodSync(tmp, mode)
  const uid = Number(execFileSync('id', ['-u', sb.user], { encoding: 'utf8' }).trim())
  const gid = Number(execFileSync('id', ['-g', sb.user], { encoding: 'utf8' }).trim())
  chownSync(tmp, uid, gid)
  renameSync(tmp, p)
}

/** The host's nginx.conf with some text replaced (throws when `from` is not in it). */
export function confWith(sb: Sandbox, h: SandboxHost, from: string | RegExp, to: string): string {
  const conf = readFileSync(sb.hostPath(h, h.confPath), 'utf8')
  const out = conf.replace(from, to)
  if (out === conf) throw new Error(`confWith: ${String(from)} not found in ${h.confPath}`)
  return out
}

/** Asserts-friendly: GET /health on the host, or the error's message. */
export async function health(h: SandboxHost): Promise<string> {
  try {
    const r = await httpGet(h.address, h.httpPort, '/health', 5000)
    return `${r.status} ${r.body.trim()}`
  } catch (e) {
    return `error: ${(e as Error).message}`
  }
}

/** Runs argv inside the host as the deploy user, detached, output to a log file in the host. */
export function spawnAsDeployUser(sb: Sandbox, h: SandboxHost, shellLine: string): void {
  const r = sb.exec(h, [
    'setpriv',
    `--reuid=${sb.user}`,
    `--regid=${sb.user}`,
    '--init-groups',
    '--',
    'sh',
    '-c',
    `cd /srv/app && (${shellLine}) </dev/null >>/srv/app/logs/test-start.log 2>&1 &`
  ])
  if (r.status !== 0) throw new Error(`spawnAsDeployUser failed (${r.status}): ${r.stderr}`)
}

/** Runs a bash line inside the host as the sandbox's user without sudo (an attacker); detached children allowed. */
export function asAttacker(sb: Sandbox, h: SandboxHost, line: string): void {
  const r = sb.exec(h, [
    'setpriv',
    `--reuid=${sb.noSudoUser}`,
    `--regid=${sb.noSudoUser}`,
    '--init-groups',
    '--',
    'bash',
    '-c',
    line
  ])
  if (r.status !== 0) throw new Error(`attacker's command failed (${r.status}): ${r.stderr}`)
}
