/**
 * Every input, read once, validated and typed. Nothing here touches the network: a bad value
 * fails here, before any connection, with the input's name, the problem and the fix. The readers
 * of each concern are in settings/; this module puts them together and checks how they combine.
 */
import { formatDuration } from './duration.js'
import { redactUrls } from './remote-text.js'
import { supervisorIds } from './supervisors/index.js'
import {
  checkJumpCredentials,
  checkKnownHosts,
  checkPins,
  fingerprints,
  hostList,
  parseHostTarget,
  privateKey,
  USERNAME
} from './settings/hosts.js'
import {
  bool,
  duration,
  integer,
  line,
  oneOf,
  regex,
  remotePath,
  rollbackToInput,
  text,
  userName,
  versionInput
} from './settings/read.js'
import { canHold, drainTimeoutAction, pidFile, upgradeSignal } from './settings/supervisor.js'
import { type InputReader, type Settings, SettingsError } from './settings/types.js'
import { upstreamSettings } from './settings/upstream.js'
import { applyHold } from './settings/hold.js'
import { checkMode, MODES } from './settings/modes.js'
import { sudoHelperSetting } from './settings/sudo-helper.js'

export * from './settings/types.js'
export { checkRemotePath } from './settings/read.js'
export { parseHostTarget } from './settings/hosts.js'

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

/** Reads and validates every input. Throws SettingsError on the first bad one. */
export function readSettings(read: InputReader, env: Record<string, string | undefined> = {}): Settings {
  const user = line(read, 'user') ?? 'root'
  if (!USERNAME.test(user))
    throw new SettingsError('user', `'${user}' is not a valid user name`, 'Use letters, digits, _ . -')
  const port = integer(read, 'port', 22, 1, 65535)
  const hosts = hostList(read, user, port)
  const mode = oneOf(read, 'mode', MODES, 'deploy')
  const supervisor = oneOf(read, 'supervisor', supervisorIds(), 'nginx')

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
    idleConnections: integer(read, 'idle-connections', 64, 0, 100_000),
    rollbackFleet: bool(read, 'rollback-fleet', canHold(supervisor)),
    prestage: bool(read, 'prestage', false),
    jumpHost: undefined,
    jumpPrivateKey: privateKey(read, 'jump-private-key'),
    jumpPassphrase: text(read, 'jump-passphrase'),
    jumpPassword: text(read, 'jump-password'),
    agentSocket: env.SSH_AUTH_SOCK?.trim() || undefined,

    lockLeaseMs: duration(read, 'lock-lease', '15m', 10_000),
    watchdog: bool(read, 'watchdog', true),
    strategy: 'hot-upgrade',
    hold: false,
    holdTimeoutMs: 0
  }
  settings.strategy = oneOf(read, 'strategy', ['hot-upgrade', 'upstream'] as const, 'hot-upgrade')
  settings.upstream = upstreamSettings(read, settings, user, port)
  const jump = line(read, 'jump-host')
  if (jump !== undefined) settings.jumpHost = parseHostTarget('jump-host', jump, user, port)

  checkKnownHosts(settings.knownHosts)
  applyHold(read, settings)
  checkMode(settings)
  settings.sudoHelper = sudoHelperSetting(read, settings)
  checkCombinations(settings)
  checkPins(settings)
  return settings
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
