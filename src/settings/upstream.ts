/** The upstream strategy's inputs: the load balancer, its managed file and the canary. */
import { parseDuration } from '../duration.js'
import { parsePercent } from '../strategies/upstream/error-rate.js'
import { parseHostTarget } from './hosts.js'
import { checkRemotePath, duration, integer, line, text } from './read.js'
import { type InputReader, type Settings, SettingsError, type UpstreamSettings } from './types.js'

const UPSTREAM_INPUTS = ['upstream-host', 'upstream-file', 'upstream-name', 'restart-command'] as const

/** A duration of zero (`0`, `0s`, `0ms`): the same as none. */
function noDuration(value: string): boolean {
  return parseDuration(value) === 0
}

/** With strategy hot-upgrade, an upstream input set by the user is a mistake: it would be ignored. */
function refuseUpstreamInputs(read: InputReader): void {
  // canary-duration has a default (0s) that GitHub and the CLI pass along with every run: only a
  // value other than no duration at all says the user meant the upstream strategy.
  for (const name of [...UPSTREAM_INPUTS, 'canary-duration', 'upstream-watchdog-lease'])
    if (line(read, name) !== undefined && !(name === 'canary-duration' && noDuration(line(read, name)!)))
      throw new SettingsError(
        name,
        'is set but strategy is hot-upgrade',
        'Set strategy: upstream, or remove it'
      )
}

/** upstream-name: the name of the block in the managed file, as nginx spells it (letters, digits, _ . : -). */
function upstreamName(read: InputReader): string {
  const name = line(read, 'upstream-name', 200)!
  if (!/^[A-Za-z0-9_.:-]+$/.test(name))
    throw new SettingsError(
      'upstream-name',
      `'${name}' is not an upstream name`,
      'Use the name after upstream in the block: letters, digits, _ . : -'
    )
  return name
}

/** upstream-server: each host's server line in the block, {host} standing for the host. */
function upstreamServer(read: InputReader): string {
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
  return server
}

/** The upstream strategy's inputs; undefined (and none of them set) for hot-upgrade. */
export function upstreamSettings(
  read: InputReader,
  s: Settings,
  user: string,
  port: number
): UpstreamSettings | undefined {
  if (s.strategy !== 'upstream') {
    refuseUpstreamInputs(read)
    return undefined
  }
  for (const name of UPSTREAM_INPUTS)
    if (line(read, name, 4096) === undefined)
      throw new SettingsError(name, 'is required when strategy is upstream', UPSTREAM_FIX[name])
  const lb = parseHostTarget('upstream-host', line(read, 'upstream-host')!, user, port)
  const name = upstreamName(read)
  const server = upstreamServer(read)
  if (s.binaryPath === undefined)
    throw new SettingsError(
      'binary-path',
      'is required when strategy is upstream (no running server names it, as a pid file does for a hot upgrade)',
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
    maxErrorRate,
    watchdogLeaseMs: duration(read, 'upstream-watchdog-lease', '2m', 5000)
  }
}

const UPSTREAM_FIX: Record<(typeof UPSTREAM_INPUTS)[number], string> = {
  'upstream-host': 'Give the nginx load balancer as [user@]host[:port]',
  'upstream-file':
    'Give the file on the load balancer that holds the upstream block (included inside http {})',
  'upstream-name': 'Give the name of the upstream block',
  'restart-command': 'Give the command that starts the new version on a host, e.g. systemctl restart app'
}
