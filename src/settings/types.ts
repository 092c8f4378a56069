/** The typed settings: what every other module reads, and the error a bad input raises. */
import type { HoldSettings } from './hold.js'
import type { Mode } from './modes.js'
export type { Mode }
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
  /** How long the load balancer's watchdog waits without word from the run (upstream-watchdog-lease). */
  watchdogLeaseMs: number
}
export type DrainTimeoutAction = 'rollback' | 'proceed'

/** The hand-over protocol the action speaks (the `supervisor` input): an id of the registry in supervisors/index.ts; settings accept only the ids it knows. */
export type SupervisorKind = string

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

export interface Settings extends HoldSettings {
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
  /** Waiting hosts (pre-staged, parked) that keep their SSH connection open; beyond, they are detached (fleet/idle.ts). */
  idleConnections: number
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
