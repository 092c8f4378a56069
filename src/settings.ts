/**
 * Every input, read once, validated and typed. Nothing here touches the network: a bad value
 * fails here, before any connection, with the input's name, the problem and the fix.
 */
import { parseDuration } from './duration.js'
import { isVersionText } from './releases/versions.js'

export type Mode = 'deploy' | 'rollback'
export type DrainTimeoutAction = 'rollback' | 'proceed'

export interface HostTarget {
  /** The host's address as written (a name, IPv4, or IPv6 without brackets). */
  host: string
  port: number
  user: string
  /** `user@host:port` as people read it; used in logs and reports. */
  label: string
}

export interface Settings {
  hosts: HostTarget[]
  privateKey?: string
  passphrase?: string
  password?: string
  knownHosts?: string
  hostFingerprints: string[]
  insecureSkipHostKeyCheck: boolean
  sudo: boolean
  connectTimeoutMs: number

  mode: Mode
  /** Local path of the new binary (deploy mode). */
  binary?: string
  /** Remote live path; undefined means: the running master's executable. */
  binaryPath?: string
  pidFile: string

  startTimeoutMs: number
  healthUrl?: string
  healthCommand?: string
  healthExpect?: RegExp
  healthChecks: number
  healthIntervalMs: number
  healthTimeoutMs: number
  pollIntervalMs: number
  drainTimeoutMs: number
  drainTimeoutAction: DrainTimeoutAction

  releaseDir?: string
  keepReleases: number
  version?: string
  allowDowngrade: boolean
  rollbackTo?: string

  canary: number
  maxParallel: number
  rollbackFleet: boolean
  jumpHost?: HostTarget
  /** The jump host's own credentials; when none is given it uses the hosts' (private-key, ...). */
  jumpPrivateKey?: string
  jumpPassphrase?: string
  jumpPassword?: string
  /** An ssh-agent's socket (SSH_AUTH_SOCK on the runner), used when no private-key is given. */
  agentSocket?: string

  lockLeaseMs: number
  watchdog: boolean
}

/** A bad input: the message names the input, the problem and the fix. */
export class SettingsError extends Error {
  constructor(
    readonly input: string,
    problem: string,
    fix: string
  ) {
    super(`Input '${input}': ${problem}. ${fix}`)
    this.name = 'SettingsError'
  }
}

/** Reads one input by its action.yml name; '' when unset (like @actions/core's getInput). */
export type InputReader = (name: string) => string

function text(read: InputReader, name: string): string | undefined {
  const raw = read(name)
  if (raw.includes('\0')) throw new SettingsError(name, 'contains a NUL byte', 'Remove it')
  const value = raw.trim()
  return value === '' ? undefined : value
}

/** A single-line value: no newlines, bounded length. */
function line(read: InputReader, name: string, max = 1024): string | undefined {
  const value = text(read, name)
  if (value === undefined) return undefined
  if (/[\r\n]/.test(value)) throw new SettingsError(name, 'contains a line break', 'Give a single line')
  if (value.length > max)
    throw new SettingsError(name, `is ${value.length} characters long (at most ${max})`, 'Shorten it')
  return value
}

function bool(read: InputReader, name: string, fallback: boolean): boolean {
  const value = line(read, name)
  if (value === undefined) return fallback
  if (/^(true|yes|on|1)$/i.test(value)) return true
  if (/^(false|no|off|0)$/i.test(value)) return false
  throw new SettingsError(name, `'${value}' is not a boolean`, 'Use true or false')
}

function integer(read: InputReader, name: string, fallback: number, min: number, max: number): number {
  const value = line(read, name)
  if (value === undefined) return fallback
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
    throw new SettingsError(
      name,
      `'${value}' is not a whole number from ${min} to ${max}`,
      `Use e.g. ${fallback}`
    )
  return Number(value)
}

function duration(
  read: InputReader,
  name: string,
  fallback: string,
  minMs = 1,
  maxMs = 24 * 3_600_000
): number {
  const value = line(read, name) ?? fallback
  const ms = parseDuration(value)
  if (ms === null)
    throw new SettingsError(
      name,
      `'${value}' is not a duration`,
      'Write e.g. 250ms, 30s, 5m, or a number of seconds'
    )
  if (ms < minMs || ms > maxMs)
    throw new SettingsError(
      name,
      `${value} is out of range`,
      `Use a duration from ${minMs}ms to ${maxMs / 3_600_000}h`
    )
  return ms
}

function oneOf<T extends string>(read: InputReader, name: string, allowed: readonly T[], fallback: T): T {
  const value = line(read, name) ?? fallback
  if (!(allowed as readonly string[]).includes(value))
    throw new SettingsError(
      name,
      `'${value}' is not one of ${allowed.join(', ')}`,
      `Use one of ${allowed.join(', ')}`
    )
  return value as T
}

/** An absolute POSIX path with no `..`, NUL, or line breaks. */
export function checkRemotePath(name: string, value: string): string {
  // First, so that no message echoes an escape sequence into the log. Any C0 control or DEL.
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new SettingsError(name, 'contains a control character', 'Remove it')
  if (!value.startsWith('/'))
    throw new SettingsError(name, `'${value}' is not an absolute path`, 'Start it with /')
  if (value.split('/').some(part => part === '..'))
    throw new SettingsError(name, `'${value}' contains a '..' segment`, 'Give the path without ..')
  if (value.length > 4096) throw new SettingsError(name, 'is longer than 4096 characters', 'Shorten it')
  if (value.endsWith('/') && value !== '/') return value.replace(/\/+$/, '')
  return value
}

function remotePath(read: InputReader, name: string, fallback?: string): string | undefined {
  const value = line(read, name, 4096) ?? fallback
  return value === undefined ? undefined : checkRemotePath(name, value)
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/
const USERNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

/** Parses one `[user@]host[:port]` item; IPv6 addresses go in brackets: `[::1]:22`. */
export function parseHostTarget(
  input: string,
  item: string,
  defaultUser: string,
  defaultPort: number
): HostTarget {
  let rest = item
  let user = defaultUser
  const at = rest.lastIndexOf('@')
  if (at >= 0) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
  }
  if (!USERNAME.test(user))
    throw new SettingsError(
      input,
      `'${item}': user '${user}' is not a valid user name`,
      'Use letters, digits, _ . -'
    )
  let host: string
  let port = defaultPort
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest)
  if (bracket) {
    host = bracket[1]!
    if (bracket[2] !== undefined) port = Number(bracket[2])
    if (!IPV6.test(host))
      throw new SettingsError(input, `'${item}': '${host}' is not an IPv6 address`, 'Check it')
  } else {
    const colon = rest.lastIndexOf(':')
    if (colon >= 0 && rest.indexOf(':') === colon) {
      const portText = rest.slice(colon + 1)
      if (!/^\d+$/.test(portText))
        throw new SettingsError(
          input,
          `'${item}': port '${portText}' is not a number`,
          'Write host:port, e.g. web1:22'
        )
      port = Number(portText)
      rest = rest.slice(0, colon)
    } else if (colon >= 0) {
      throw new SettingsError(
        input,
        `'${item}': an IPv6 address must be in brackets`,
        'Write [2001:db8::1]:22'
      )
    }
    host = rest
    if (!HOSTNAME.test(host))
      throw new SettingsError(
        input,
        `'${item}': '${host}' is not a host name or address`,
        'Use letters, digits, . - only'
      )
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new SettingsError(input, `'${item}': port ${port} is out of range`, 'Use a port from 1 to 65535')
  const shown = host.includes(':') ? `[${host}]` : host
  return { host, port, user, label: port === 22 ? `${user}@${shown}` : `${user}@${shown}:${port}` }
}

function hostList(read: InputReader, user: string, port: number): HostTarget[] {
  const raw = text(read, 'hosts')
  if (raw === undefined)
    throw new SettingsError(
      'hosts',
      'is required',
      'List the hosts as [user@]host[:port], one per line or comma-separated'
    )
  const items = raw
    .split(/[\n,]/)
    .map(s => s.trim())
    .filter(s => s !== '' && !s.startsWith('#'))
  if (items.length === 0)
    throw new SettingsError('hosts', 'lists no host', 'Give at least one [user@]host[:port]')
  if (items.length > 1000)
    throw new SettingsError('hosts', `lists ${items.length} hosts (at most 1000)`, 'Split the rollout')
  const targets = items.map(item => parseHostTarget('hosts', item, user, port))
  const seen = new Set<string>()
  for (const t of targets) {
    const key = `${t.host}:${t.port}`
    if (seen.has(key)) throw new SettingsError('hosts', `lists ${key} twice`, 'List each host once')
    seen.add(key)
  }
  return targets
}

function fingerprints(read: InputReader): string[] {
  const raw = text(read, 'host-fingerprints')
  if (raw === undefined) return []
  const items = raw
    .split(/[\n,\s]+/)
    .map(s => s.trim())
    .filter(s => s !== '')
  for (const fp of items) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(fp))
      throw new SettingsError(
        'host-fingerprints',
        `'${fp.slice(0, 80)}' is not a SHA256 fingerprint`,
        'Use the SHA256:... form that `ssh-keygen -lf <key file>` prints'
      )
  }
  return items
}

function privateKey(read: InputReader, name: string): string | undefined {
  const raw = read(name)
  if (raw.trim() === '') return undefined
  if (raw.includes('\0')) throw new SettingsError(name, 'contains a NUL byte', 'Paste the key file as it is')
  const key = raw.replace(/\r\n/g, '\n').trim() + '\n'
  if (!/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z0-9 ]*PRIVATE KEY-----\n$/.test(key))
    throw new SettingsError(
      name,
      'is not a private key in OpenSSH or PEM format (no -----BEGIN ... PRIVATE KEY----- block)',
      'Store the whole key file (ssh-keygen -t ed25519 writes one) in a secret and pass it as is; a .pub file is the public half'
    )
  return key
}

function regex(read: InputReader, name: string): RegExp | undefined {
  const value = line(read, name, 2048)
  if (value === undefined) return undefined
  try {
    return new RegExp(value)
  } catch (e) {
    throw new SettingsError(
      name,
      `is not a valid regular expression (${(e as Error).message})`,
      'Fix the pattern'
    )
  }
}

function healthUrl(read: InputReader): string | undefined {
  const value = line(read, 'health-url', 2048)
  if (value === undefined) return undefined
  let url: URL
  try {
    url = new URL(value.replaceAll('{host}', 'placeholder.invalid'))
  } catch {
    throw new SettingsError('health-url', `'${value}' is not a URL`, 'Write e.g. http://127.0.0.1/health')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new SettingsError(
      'health-url',
      `'${url.protocol}' is not http or https`,
      'Use an http:// or https:// URL'
    )
  return value
}

/** A version as given: semver (1.27.3, 2.0.0-rc.1) or a Debian version (1.22.1-9+deb12u11, 2:1.0~rc1-1). */
function versionInput(read: InputReader, name: string): string | undefined {
  const value = line(read, name, 256)
  if (value === undefined) return undefined
  if (!isVersionText(value))
    throw new SettingsError(
      name,
      `'${value}' is neither a semantic version nor a Debian version`,
      'Write e.g. 1.27.3, 2.0.0-rc.1 or 1.22.1-9+deb12u11'
    )
  return value
}

/** rollback-to: a version as given, or the sha256 (12 or more hex digits) of a release. */
function rollbackToInput(read: InputReader): string | undefined {
  const value = line(read, 'rollback-to', 256)
  if (value === undefined || /^[0-9a-fA-F]{12,64}$/.test(value)) return value
  return versionInput(read, 'rollback-to')
}

/** Reads and validates every input. Throws SettingsError on the first bad one. */
export function readSettings(read: InputReader, env: Record<string, string | undefined> = {}): Settings {
  const user = line(read, 'user') ?? 'root'
  if (!USERNAME.test(user))
    throw new SettingsError('user', `'${user}' is not a valid user name`, 'Use letters, digits, _ . -')
  const port = integer(read, 'port', 22, 1, 65535)
  const hosts = hostList(read, user, port)
  const mode = oneOf(read, 'mode', ['deploy', 'rollback'] as const, 'deploy')

  const settings: Settings = {
    hosts,
    privateKey: privateKey(read, 'private-key'),
    passphrase: text(read, 'passphrase'),
    password: text(read, 'password'),
    knownHosts: text(read, 'known-hosts'),
    hostFingerprints: fingerprints(read),
    insecureSkipHostKeyCheck: bool(read, 'insecure-skip-host-key-check', false),
    sudo: bool(read, 'sudo', false),
    connectTimeoutMs: duration(read, 'connect-timeout', '20s', 100),

    mode,
    binary: line(read, 'binary', 4096),
    binaryPath: remotePath(read, 'binary-path'),
    pidFile: remotePath(read, 'pid-file', '/run/nginx.pid')!,

    startTimeoutMs: duration(read, 'start-timeout', '30s'),
    healthUrl: healthUrl(read),
    healthCommand: text(read, 'health-command'),
    healthExpect: regex(read, 'health-expect'),
    healthChecks: integer(read, 'health-checks', 3, 1, 1000),
    healthIntervalMs: duration(read, 'health-interval', '1s'),
    healthTimeoutMs: duration(read, 'health-timeout', '60s'),
    pollIntervalMs: duration(read, 'poll-interval', '250ms', 10),
    drainTimeoutMs: duration(read, 'drain-timeout', '5m'),
    drainTimeoutAction: oneOf(read, 'drain-timeout-action', ['rollback', 'proceed'] as const, 'rollback'),

    releaseDir: remotePath(read, 'release-dir'),
    keepReleases: integer(read, 'keep-releases', 5, 2, 1000),
    version: versionInput(read, 'version'),
    allowDowngrade: bool(read, 'allow-downgrade', false),
    rollbackTo: rollbackToInput(read),

    canary: integer(read, 'canary', hosts.length > 1 ? 1 : 0, 0, hosts.length),
    maxParallel: integer(read, 'max-parallel', 1, 1, 256),
    rollbackFleet: bool(read, 'rollback-fleet', true),
    jumpHost: undefined,
    jumpPrivateKey: privateKey(read, 'jump-private-key'),
    jumpPassphrase: text(read, 'jump-passphrase'),
    jumpPassword: text(read, 'jump-password'),
    agentSocket: env.SSH_AUTH_SOCK?.trim() || undefined,

    lockLeaseMs: duration(read, 'lock-lease', '15m', 10_000),
    watchdog: bool(read, 'watchdog', true)
  }
  const jump = line(read, 'jump-host')
  if (jump !== undefined) settings.jumpHost = parseHostTarget('jump-host', jump, user, port)

  if (settings.knownHosts !== undefined && settings.knownHosts.length > 1_000_000)
    throw new SettingsError(
      'known-hosts',
      'is larger than 1 MB',
      'Give only the lines of the hosts of this rollout'
    )
  checkCombinations(settings)
  return settings
}

function checkJumpCredentials(s: Settings): void {
  const own = (
    [
      ['jump-private-key', s.jumpPrivateKey],
      ['jump-passphrase', s.jumpPassphrase],
      ['jump-password', s.jumpPassword]
    ] as const
  ).filter(([, v]) => v !== undefined)
  if (own.length > 0 && s.jumpHost === undefined)
    throw new SettingsError(
      own[0]![0],
      'is set but jump-host is empty',
      'Name the bastion in jump-host, or remove it'
    )
  if (s.jumpPassphrase !== undefined && s.jumpPrivateKey === undefined)
    throw new SettingsError(
      'jump-passphrase',
      'is set but jump-private-key is empty',
      'Pass the key it unlocks in jump-private-key'
    )
}

function checkCombinations(s: Settings): void {
  if (s.privateKey === undefined && s.password === undefined && s.agentSocket === undefined)
    throw new SettingsError(
      'private-key',
      'is empty, no password is given and no ssh-agent is running (SSH_AUTH_SOCK is not set)',
      'Pass an SSH private key from a secret, or load it into an ssh-agent in an earlier step'
    )
  checkJumpCredentials(s)
  if (s.passphrase !== undefined && s.privateKey === undefined)
    throw new SettingsError(
      'passphrase',
      'is set but private-key is empty',
      'Pass the key it unlocks in private-key'
    )
  if (!s.insecureSkipHostKeyCheck && s.knownHosts === undefined && s.hostFingerprints.length === 0)
    throw new SettingsError(
      'known-hosts',
      'is empty and so is host-fingerprints: host keys cannot be verified',
      'Pass known_hosts lines (ssh-keyscan -p PORT HOST) or SHA256 fingerprints (ssh-keygen -lf); insecure-skip-host-key-check: true skips the check'
    )
  if (s.mode === 'deploy' && s.binary === undefined)
    throw new SettingsError(
      'binary',
      'is required when mode is deploy',
      'Give the local path of the new binary'
    )
  if (s.mode === 'rollback' && s.binary !== undefined)
    throw new SettingsError(
      'binary',
      'is set but mode is rollback',
      'Rollback takes the binary from the host; remove binary'
    )
  if (s.rollbackTo !== undefined && s.mode !== 'rollback')
    throw new SettingsError(
      'rollback-to',
      'is set but mode is not rollback',
      'Set mode: rollback, or remove rollback-to'
    )
  if (s.version !== undefined && s.mode === 'rollback')
    throw new SettingsError(
      'version',
      'is set but mode is rollback (a rollback takes the version from the release store)',
      'Name the release to go back to with rollback-to, or remove version'
    )
  if (s.healthTimeoutMs < s.healthIntervalMs)
    throw new SettingsError(
      'health-timeout',
      'is shorter than health-interval',
      'Give the gate time for its checks'
    )
}
