/**
 * Every input, read once, validated and typed. Nothing here touches the network: a bad value
 * fails here, before any connection, with the input's name, the problem and the fix.
 */
import { formatDuration, parseDuration } from './duration.js'
import { hostKeyLineCount, parsePin, pinNames } from './host/known-hosts.js'
import { redactUrls } from './remote-text.js'
import { parsePercent } from './strategies/upstream/error-rate.js'
import { isVersionText } from './releases/versions.js'
import { sudoHelperSetting } from './settings/sudo-helper.js'

export type Mode = 'deploy' | 'rollback'
export type StrategyId = 'hot-upgrade' | 'upstream'

/** Strategy upstream: traffic shifting through an nginx load balancer. */
export interface UpstreamSettings {
  /** The load balancer, reached like the hosts. */
  host: HostTarget
  /** The file on it that the action manages (included inside http {}). */
  file: string
  /** The upstream block's name. */
  name: string
  /** How a host appears in the block; {host} is the host as written in hosts. */
  server: string
  restartCommand: string
  canaryWeight: number
  canaryDurationMs: number
  /** A share, 0..1. */
  maxErrorRate: number
}
export type DrainTimeoutAction = 'rollback' | 'proceed'

/** The hand-over protocols the action speaks (the `supervisor` input). */
export const SUPERVISORS = ['nginx', 'haproxy', 'tableflip'] as const
export type SupervisorKind = (typeof SUPERVISORS)[number]

/** Where each supervisor's pid file usually is; tableflip servers name their own (Options.PIDFile). */
const DEFAULT_PID_FILE: Record<SupervisorKind, string | undefined> = {
  nginx: '/run/nginx.pid',
  haproxy: '/run/haproxy.pid',
  tableflip: undefined
}

/**
 * Whether a supervisor can keep its old process until the whole fleet passed (rollback-fleet).
 * HAProxy cannot: after a reload the master runs the new file and the old workers leave by
 * themselves. tableflip cannot: the parent exits once the child is Ready().
 */
const CAN_HOLD: Record<SupervisorKind, boolean> = { nginx: true, haproxy: false, tableflip: false }

/** Signals a tableflip server may take for Upgrade(); TERM, INT or QUIT would stop it instead. */
export const UPGRADE_SIGNALS = ['HUP', 'USR1', 'USR2'] as const
export type UpgradeSignal = (typeof UPGRADE_SIGNALS)[number]

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
  /** sudo-helper: privileged commands through this helper (src/settings/sudo-helper.ts). */
  sudoHelper?: string
  connectTimeoutMs: number

  mode: Mode
  /** Local path of the new binary (deploy mode). */
  binary?: string
  /** Remote live path; undefined means: the running master's executable. */
  binaryPath?: string
  supervisor: SupervisorKind
  pidFile: string
  /** One more user the master may run as (besides root and the SSH user). */
  masterUser?: string
  /** The signal that starts a tableflip handoff. */
  upgradeSignal: UpgradeSignal
  /** Run on the host by sh before the swap; `{binary}` stands for the staged file. */
  verifyCommand?: string

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
  /** The summary's rollback link: a workflow file name or a URL. */
  rollbackWorkflow?: string

  canary: number
  maxParallel: number
  rollbackFleet: boolean
  /** Upload and verify on every host before any host is signalled. */
  prestage: boolean
  jumpHost?: HostTarget
  /** The jump host's own credentials; when none is given it uses the hosts' (private-key, ...). */
  jumpPrivateKey?: string
  jumpPassphrase?: string
  jumpPassword?: string
  /** An ssh-agent's socket (SSH_AUTH_SOCK on the runner), used when no private-key is given. */
  agentSocket?: string

  lockLeaseMs: number
  watchdog: boolean

  strategy: StrategyId
  /** Set when strategy is upstream. */
  upstream?: UpstreamSettings
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

/** A user name (as useradd allows) or a uid. */
function userName(read: InputReader, name: string): string | undefined {
  const value = line(read, name, 64)
  if (value === undefined || /^(\d+|[A-Za-z_][A-Za-z0-9_.-]*\$?)$/.test(value)) return value
  throw new SettingsError(
    name,
    `'${value}' is not a user name`,
    'Give the name (or uid) of the user the master runs as'
  )
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
    if (!/^(?:[^\s=]+=)?SHA256:[A-Za-z0-9+/]{43}=?$/.test(fp))
      throw new SettingsError(
        'host-fingerprints',
        `'${fp.slice(0, 80)}' is not a SHA256 fingerprint`,
        'Use host=SHA256:..., with the SHA256:... form that `ssh-keygen -lf <key file>` prints'
      )
  }
  // Padding (SHA256:...=) is dropped here: fingerprints compare as OpenSSH prints them.
  return items.map(fp => fp.replace(/=+$/, ''))
}

/** Each fingerprint names a host of the run; a bare one is allowed when there is one host to connect to. */
function checkPins(s: Settings): void {
  const targets = [...s.hosts, ...(s.jumpHost ? [s.jumpHost] : [])]
  for (const item of s.hostFingerprints) {
    const pin = parsePin(item)
    if (pin.host === undefined && targets.length > 1)
      throw new SettingsError(
        'host-fingerprints',
        `'${item.slice(0, 60)}' names no host, and this run connects to ${targets.length} hosts${s.jumpHost ? ' (with the jump host)' : ''}: one host's key would be accepted for every other`,
        'Bind each fingerprint to its host: host=SHA256:... (the host as written in hosts or jump-host)'
      )
    if (pin.host !== undefined && !targets.some(t => pinNames(pin.host!, t.host, t.port)))
      throw new SettingsError(
        'host-fingerprints',
        `'${item.slice(0, 60)}' names ${pin.host}, which is neither in hosts nor the jump-host`,
        'Write the host as in hosts (or [host]:port)'
      )
  }
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
    throw new SettingsError(
      'health-url',
      `'${redactUrls(value)}' is not a URL`,
      'Write e.g. http://127.0.0.1/health'
    )
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new SettingsError(
      'health-url',
      `'${url.protocol}' is not http or https`,
      'Use an http:// or https:// URL'
    )
  return value
}

function rollbackWorkflow(read: InputReader): string | undefined {
  const value = line(read, 'rollback-workflow', 2048)
  if (value === undefined || /^[\w.-]+\.ya?ml$/.test(value)) return value
  if (/^https?:\/\/[^\s<>()[\]]+$/.test(value)) return value
  throw new SettingsError(
    'rollback-workflow',
    `'${value}' is neither a workflow file name nor an http(s) URL`,
    "Give the file name in .github/workflows (rollback.yml) or the workflow's URL"
  )
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

function pidFile(read: InputReader, supervisor: SupervisorKind): string {
  const value = remotePath(read, 'pid-file', DEFAULT_PID_FILE[supervisor])
  if (value === undefined)
    throw new SettingsError(
      'pid-file',
      `is required with supervisor ${supervisor} (such servers have no usual pid file)`,
      'Give the file the server writes once it is ready (tableflip: its Options.PIDFile), e.g. /run/app.pid'
    )
  return value
}

function upgradeSignal(read: InputReader, supervisor: SupervisorKind): UpgradeSignal {
  const value = (line(read, 'upgrade-signal') ?? 'HUP').toUpperCase().replace(/^SIG/, '')
  if (!(UPGRADE_SIGNALS as readonly string[]).includes(value))
    throw new SettingsError(
      'upgrade-signal',
      `'${value}' is not one of ${UPGRADE_SIGNALS.join(', ')}`,
      'Give the signal on which the server calls Upgrade() (HUP for most tableflip servers)'
    )
  if (value !== 'HUP' && supervisor !== 'tableflip')
    throw new SettingsError(
      'upgrade-signal',
      `is ${value}, but only supervisor tableflip takes it (${supervisor} has its own protocol)`,
      'Remove upgrade-signal, or set supervisor: tableflip'
    )
  return value as UpgradeSignal
}

/**
 * tableflip's old process stops accepting at the hand-over and exits by itself: after a slow drain
 * there is nothing to go back to without cutting its requests and handing over a second time.
 */
function drainTimeoutAction(read: InputReader, supervisor: SupervisorKind): DrainTimeoutAction {
  const fallback = supervisor === 'tableflip' ? 'proceed' : 'rollback'
  const value = oneOf(read, 'drain-timeout-action', ['rollback', 'proceed'] as const, fallback)
  if (value === 'rollback' && supervisor === 'tableflip')
    throw new SettingsError(
      'drain-timeout-action',
      'is rollback, which supervisor tableflip cannot honour: its old process stopped accepting at the hand-over, and going back after a slow drain would cut its last requests and hand over a second time',
      "Set drain-timeout-action: proceed (the default for tableflip; the old process finishes on its own, within the server's shutdown timeout), or raise drain-timeout"
    )
  return value
}

/** Reads and validates every input. Throws SettingsError on the first bad one. */
export function readSettings(read: InputReader, env: Record<string, string | undefined> = {}): Settings {
  const user = line(read, 'user') ?? 'root'
  if (!USERNAME.test(user))
    throw new SettingsError('user', `'${user}' is not a valid user name`, 'Use letters, digits, _ . -')
  const port = integer(read, 'port', 22, 1, 65535)
  const hosts = hostList(read, user, port)
  const mode = oneOf(read, 'mode', ['deploy', 'rollback'] as const, 'deploy')
  const supervisor = oneOf(read, 'supervisor', SUPERVISORS, 'nginx')

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
    supervisor,
    pidFile: pidFile(read, supervisor),
    masterUser: userName(read, 'master-user'),
    upgradeSignal: upgradeSignal(read, supervisor),
    verifyCommand: text(read, 'verify-command'),

    startTimeoutMs: duration(read, 'start-timeout', '30s'),
    healthUrl: healthUrl(read),
    healthCommand: text(read, 'health-command'),
    healthExpect: regex(read, 'health-expect'),
    healthChecks: integer(read, 'health-checks', 3, 1, 1000),
    healthIntervalMs: duration(read, 'health-interval', '1s'),
    healthTimeoutMs: duration(read, 'health-timeout', '60s'),
    pollIntervalMs: duration(read, 'poll-interval', '250ms', 10),
    drainTimeoutMs: duration(read, 'drain-timeout', '5m'),
    drainTimeoutAction: drainTimeoutAction(read, supervisor),

    releaseDir: remotePath(read, 'release-dir'),
    keepReleases: integer(read, 'keep-releases', 5, 2, 1000),
    version: versionInput(read, 'version'),
    allowDowngrade: bool(read, 'allow-downgrade', false),
    rollbackTo: rollbackToInput(read),
    rollbackWorkflow: rollbackWorkflow(read),

    canary: integer(read, 'canary', hosts.length > 1 ? 1 : 0, 0, hosts.length),
    maxParallel: integer(read, 'max-parallel', 1, 1, 256),
    rollbackFleet: bool(read, 'rollback-fleet', CAN_HOLD[supervisor]),
    prestage: bool(read, 'prestage', false),
    jumpHost: undefined,
    jumpPrivateKey: privateKey(read, 'jump-private-key'),
    jumpPassphrase: text(read, 'jump-passphrase'),
    jumpPassword: text(read, 'jump-password'),
    agentSocket: env.SSH_AUTH_SOCK?.trim() || undefined,

    lockLeaseMs: duration(read, 'lock-lease', '15m', 10_000),
    watchdog: bool(read, 'watchdog', true),
    strategy: 'hot-upgrade'
  }
  settings.strategy = oneOf(read, 'strategy', ['hot-upgrade', 'upstream'] as const, 'hot-upgrade')
  settings.upstream = upstreamSettings(read, settings, user, port)
  const jump = line(read, 'jump-host')
  if (jump !== undefined) settings.jumpHost = parseHostTarget('jump-host', jump, user, port)

  if (settings.knownHosts !== undefined && settings.knownHosts.length > 1_000_000)
    throw new SettingsError(
      'known-hosts',
      'is larger than 1 MB',
      'Give only the lines of the hosts of this rollout'
    )
  if (settings.knownHosts !== undefined && hostKeyLineCount(settings.knownHosts) === 0)
    throw new SettingsError(
      'known-hosts',
      'has no host key line (a line is `host key-type base64-key`, as ssh-keyscan prints it)',
      /SHA256:/.test(settings.knownHosts)
        ? 'SHA256:... fingerprints go in host-fingerprints; known-hosts takes known_hosts lines'
        : 'Paste the output of ssh-keyscan -p PORT HOST, checked out of band (ssh-keygen -lf compares fingerprints)'
    )
  settings.sudoHelper = sudoHelperSetting(read, settings)
  checkCombinations(settings)
  checkPins(settings)
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
  // Checks start every health-interval and the gate needs health-checks passes in a row: the last
  // of them starts (health-checks - 1) x health-interval after the first, at the earliest.
  const gate = (s.healthChecks - 1) * s.healthIntervalMs
  if (s.healthTimeoutMs < gate)
    throw new SettingsError(
      'health-timeout',
      `${formatDuration(s.healthTimeoutMs)} can never be enough: ${s.healthChecks} checks in a row, one every ` +
        `${formatDuration(s.healthIntervalMs)}, take at least ${formatDuration(gate)}`,
      `Raise health-timeout above ${formatDuration(gate)} (leave time for each check to answer), or lower health-checks or health-interval`
    )
}

const UPSTREAM_INPUTS = ['upstream-host', 'upstream-file', 'upstream-name', 'restart-command'] as const

/** A duration of zero (`0`, `0s`, `0ms`): the same as none. */
function noDuration(value: string): boolean {
  return parseDuration(value) === 0
}

/** The upstream strategy's inputs; undefined (and none of them set) for hot-upgrade. */
function upstreamSettings(
  read: InputReader,
  s: Settings,
  user: string,
  port: number
): UpstreamSettings | undefined {
  if (s.strategy !== 'upstream') {
    // canary-duration has a default (0s) that GitHub and the CLI pass along with every run: only a
    // value other than no duration at all says the user meant the upstream strategy.
    for (const name of [...UPSTREAM_INPUTS, 'canary-duration'])
      if (line(read, name) !== undefined && !(name === 'canary-duration' && noDuration(line(read, name)!)))
        throw new SettingsError(
          name,
          'is set but strategy is hot-upgrade',
          'Set strategy: upstream, or remove it'
        )
    return undefined
  }
  for (const name of UPSTREAM_INPUTS)
    if (line(read, name, 4096) === undefined)
      throw new SettingsError(name, 'is required when strategy is upstream', UPSTREAM_FIX[name])
  const lb = parseHostTarget('upstream-host', line(read, 'upstream-host')!, user, port)
  const name = line(read, 'upstream-name', 200)!
  if (!/^[A-Za-z0-9_.:-]+$/.test(name))
    throw new SettingsError(
      'upstream-name',
      `'${name}' is not an upstream name`,
      'Use the name after upstream in the block: letters, digits, _ . : -'
    )
  const server = line(read, 'upstream-server', 300) ?? '{host}:80'
  if (/[\s;{}#'"\\]/.test(server.replaceAll('{host}', 'h')))
    throw new SettingsError(
      'upstream-server',
      `'${server}' is not a server address`,
      'Write it as in the block, e.g. {host}:8080'
    )
  if (!server.includes('{host}'))
    throw new SettingsError(
      'upstream-server',
      `'${server}' has no {host}`,
      'Every host needs its own server line: write e.g. {host}:8080'
    )
  if (s.binaryPath === undefined)
    throw new SettingsError(
      'binary-path',
      'is required when strategy is upstream (there is no master process to read it from)',
      "Give the path of the server's binary on the hosts"
    )
  if (s.healthUrl === undefined && s.healthCommand === undefined)
    throw new SettingsError(
      'health-url',
      'is empty and so is health-command, but strategy upstream puts a host back only after its health gate',
      'Give the URL the restarted server answers on, e.g. http://{host}:8080/health'
    )
  const rateText = line(read, 'max-error-rate') ?? '1%'
  const maxErrorRate = parsePercent(rateText)
  if (maxErrorRate === null)
    throw new SettingsError(
      'max-error-rate',
      `'${rateText}' is not a percentage from 0% to 100%`,
      'Write e.g. 1% or 0.5%'
    )
  const canaryDurationMs = duration(read, 'canary-duration', '0s', 0)
  if (canaryDurationMs > 0 && s.canary === 0)
    throw new SettingsError(
      'canary-duration',
      'is set but canary is 0: no host is watched as a canary',
      'Set canary: 1 (the first host is the canary), or remove canary-duration'
    )
  return {
    host: lb,
    file: checkRemotePath('upstream-file', line(read, 'upstream-file', 4096)!),
    name,
    server,
    restartCommand: text(read, 'restart-command')!,
    canaryWeight: integer(read, 'canary-weight', 1, 1, 1000),
    canaryDurationMs,
    maxErrorRate
  }
}

const UPSTREAM_FIX: Record<(typeof UPSTREAM_INPUTS)[number], string> = {
  'upstream-host': 'Give the nginx load balancer as [user@]host[:port]',
  'upstream-file':
    'Give the file on the load balancer that holds the upstream block (included inside http {})',
  'upstream-name': 'Give the name of the upstream block',
  'restart-command': 'Give the command that starts the new version on a host, e.g. systemctl restart app'
}
