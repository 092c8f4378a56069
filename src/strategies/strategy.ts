/**
 * A strategy says how a new version reaches a host, as data: the ordered steps of one host's run.
 * The hot upgrade (hot-upgrade.ts) hands over on the host through a Supervisor; "upstream"
 * shifts traffic through an nginx load balancer. The engine runs whichever list it is given;
 * safety (lock, watchdog, journal) and the release store slot their own steps in at the anchors
 * a strategy names (src/engine/compose.ts).
 */
import type { ExecResult, Host } from '../host/host.js'
import type { Step } from '../engine/step.js'
import type { Logger } from '../engine/types.js'
import type { TrustedServer } from '../host/trust.js'
import type { Running } from '../supervisors/supervisor.js'

/** The new binary and where it comes from. */
export interface UpgradeSource {
  sha256: string
  /** A local file to upload; arch from its ELF header (null for a #! script). */
  localPath?: string
  arch?: string | null
  bytes?: number
  /** Or a file already on the host (a release from its store): copied to staging, nothing sent. */
  hostPath?: string
  version?: string
}

/**
 * One host's state for one run: a single object, created per host, that the strategy's steps,
 * the safety steps and the release-store steps read and fill. Nothing else keeps per-host state.
 */
export interface HostState {
  readonly host: Host
  /** This host's binary: the run's, or another chosen after inspection (rollback mode). */
  source: UpgradeSource
  /** What inspection found; null until then. */
  running: Running | null
  /** The pid serving the new version, once started. */
  newPid?: number
  /** The version of the staged binary, once verified. */
  newVersion?: string | null
  /** The drain timed out and the run went on (drain-timeout-action: proceed). */
  drainUnfinished?: boolean
  /**
   * The staging file's sha256 as read with pre-flight's reads (null: none there; undefined: not
   * read). The lock is held from then on, so the upload need not ask again, unless it runs again
   * after a lost connection.
   */
  stagedSha256?: Promise<string | null | undefined>
  /**
   * Whether the live folder and the release store share a mount, as pre-flight's free-space reads
   * showed (false: a hard link cannot join them, so the store copies at once; undefined: not read).
   */
  storeLinkable?: boolean
  /** The kept old binary's removal, sent by the retire and awaited by a later step (never rejects). */
  keptRemoval?: Promise<void>
  /** The swap sent behind the watchdog's start (changeAhead), taken by the swap step. */
  swapAhead?: Promise<ExecResult>
  /** The start's commands went behind that swap (SupervisorSession.startAhead). */
  startSentAhead?: boolean
}

/** Where other layers may slot steps in: names of this strategy's steps. */
export interface StrategyAnchors {
  /** After it, `state.running` is known (the release store picks this host's binary there). */
  readonly inspected: string
  /** After it, `state.newVersion` is known and nothing serving has changed (downgrade check). */
  readonly verified: string
}

/** One host's run as a strategy builds it. */
export interface HostPlan {
  readonly state: HostState
  readonly steps: readonly Step[]
  readonly anchors: StrategyAnchors
  /** After a rollback failed: the host's state (`# state: ...` first) and the repair commands. */
  repair(): Promise<string[]>
  /**
   * Optional: the first step's reads, sent behind the deploy lock's command (SupervisorSession.prefetch);
   * `server`: the running server as the lock's first read found and trusted it.
   */
  prefetch?(server?: TrustedServer): void
  /**
   * Optional: the retire's first commands, sent right behind the watchdog's confirmation and run by
   * the host only if `gate` opened (SupervisorSession.retireAhead).
   */
  retireAhead?(gate: string): void
  /**
   * Optional: the first change's command (the hot upgrade's swap), sent right behind the
   * watchdog's start and run by the host only if `gate` opened.
   */
  changeAhead?(gate: string): void
  /**
   * Before each step of the run (RunSpec.checkpoint), beside the host's own lock: a lock the
   * strategy holds beyond this host (upstream: the load balancer's). A throw stops the run there
   * and it rolls back.
   */
  checkpoint?(step: Step): Promise<void>
}

export interface Strategy {
  /** The id in the `strategy` input: hot-upgrade, upstream. */
  readonly id: string
  readonly title: string
  /** Whether hosts can be held after their change steps until the whole fleet passed. */
  readonly canHold: boolean
  /** The steps of one host; `source` is the run's binary. */
  plan(host: Host, source: UpgradeSource, log: Logger): HostPlan
}
