/**
 * The deploy lock of a host: a directory `<release-dir>/lock` created with mkdir (atomic on
 * every POSIX file system), holding an `owner` file that says who holds it (repository, run,
 * commit, since when) and whose mtime is the lease: the holder touches it while it works. A
 * second deploy fails fast naming the holder; a lock whose lease ran out (its run is gone) is
 * taken over with a warning. Every remote value goes in as a positional parameter of a fixed
 * script, never into the script text.
 */
import { posix } from 'node:path'
import { renewalDue, type Host } from '../host/host.js'
import { formatDuration } from '../duration.js'
import { GATE_CLOSED } from '../host/remote-shell.js'
import { describeHolder, LockHeldError, LockLostError, type LockRole } from './lock-errors.js'
import { ACQUIRE, INSPECT, RELEASE, RENEW } from './lock-scripts.js'
import { ownerLines, parseHolder, type LockHolder, type LockOwner } from './lock-owner.js'

export { describeHolder, LockHeldError, LockLostError, type LockRole }
export { lockOwnerFromEnv, newToken, type LockHolder, type LockOwner } from './lock-owner.js'

export interface LockOptions {
  /** The lock directory: lockPath(releaseDir). */
  path: string
  /** This run's token (one per run: post releases with it). */
  token: string
  leaseMs: number
  owner: LockOwner
  /** How often the lease is renewed while held. Default: a third of the lease, at most 1 minute. */
  renewEveryMs?: number
  /** Warnings (a takeover, a lost renewal). */
  warn?: (message: string) => void
  /** What the lock guards, for the message of a lost lock. Default: the host. */
  role?: LockRole
}

export function lockPath(releaseDir: string): string {
  return posix.join(releaseDir, 'lock')
}

// $1 lock dir, $2 token, $3 lease seconds, then owner lines (key=value).
async function sh(host: Host, script: string, args: string[], aside?: boolean): Promise<string[]>
async function sh(
  host: Host,
  script: string,
  args: string[],
  aside: boolean,
  need?: string
): Promise<string[] | null>
/** A lock script's lines; null when it needed a gate that was closed (it did not run). */
async function sh(
  host: Host,
  script: string,
  args: string[],
  aside = false,
  need?: string
): Promise<string[] | null> {
  const gate = need === undefined ? undefined : { need }
  const r = await host.run(['sh', '-c', script, 'sh', ...args], {
    sudo: host.sudo,
    timeoutMs: 30_000,
    aside,
    gate
  })
  if (gate && r.code === GATE_CLOSED) return null
  if (r.code !== 0)
    throw new Error(
      `${host.name}: the lock command failed (status ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
  return r.stdout.split('\n').filter(l => l !== '')
}

function ageOf(line: string | undefined): number {
  const m = /^age=(-?\d+)$/.exec(line ?? '')
  return m ? Number(m[1]) : 0
}

/** Reads a host's lock without touching it; null when nobody holds it. */
export async function readLock(
  host: Host,
  path: string,
  fallbackLeaseMs = 15 * 60_000
): Promise<LockHolder | null> {
  const out = await sh(host, INSPECT, [path])
  if (out[0] === 'absent') return null
  return parseHolder(out.slice(1), fallbackLeaseMs, ageOf(out[0]))
}

/**
 * A held deploy lock; renews its lease until released. Renewals run on the side shell (a channel
 * of their own on the same connection): in the host's shell they would wait behind a health command longer than
 * the lease, and a second run would take the lock over from a run that lives. The other way out,
 * leases measured on the host's clock for both runs, is how the lease is already read (mtime
 * against the host's `date`); it tells nothing about a holder whose renewals are stuck in a queue.
 * A renewal on its own channel fails only when the connection is gone, i.e. when the run cannot
 * act on the host anyway: then the lease runs out, as it should.
 */
export class HostLock {
  private timer: NodeJS.Timeout | null = null
  private released = false
  private renewing: Promise<'renewed' | 'lost'> | null = null
  /** When the lease was last renewed (or taken). */
  private renewedAt = 0
  /** release() began: no renewal starts, and none reports a loss. */
  private stopping = false
  /** When the lock was taken over from a run whose lease had run out: that run. */
  tookOverFrom?: LockHolder
  /** Set when a renewal found the lock in other hands. */
  lost = false
  /** Who held the lock when it was found lost (null: nobody, it was removed). */
  lostTo: LockHolder | null = null

  private constructor(
    readonly host: Host,
    readonly options: LockOptions
  ) {}

  get path(): string {
    return this.options.path
  }

  /** Takes the lock, or throws LockHeldError naming the holder. Idempotent for the same token. */
  static async acquire(host: Host, options: LockOptions): Promise<HostLock> {
    const lock = new HostLock(host, options)
    const lease = String(Math.max(1, Math.ceil(options.leaseMs / 1000)))
    const out = await sh(host, ACQUIRE, [options.path, options.token, lease, ...ownerLines(options.owner)])
    const status = (out[0] ?? '').replace(/^held-future .*/, 'held-future')
    if (status === 'acquired' || status === 'ours') {
      lock.startRenewing()
      return lock
    }
    if (status === 'took-over') {
      lock.tookOverFrom = parseHolder(out.slice(2), options.leaseMs, ageOf(out[1]))
      options.warn?.(
        `${host.name}: took over the deploy lock ${options.path}: its holder (${describeHolder(lock.tookOverFrom)}) ` +
          `had not renewed it for ${formatDuration(lock.tookOverFrom.ageMs)}, longer than its lease of ${formatDuration(lock.tookOverFrom.leaseMs)}; that run is gone. ` +
          `Its upgrade may have been interrupted: pre-flight checks the host for what it left`
      )
      lock.startRenewing()
      return lock
    }
    if (status === 'held-future') {
      const holder = parseHolder(out.slice(2), options.leaseMs, ageOf(out[1]))
      holder.redated = out[0] === 'held-future redated'
      throw new LockHeldError(host.name, options.path, holder)
    }
    if (status === 'held')
      throw new LockHeldError(
        host.name,
        options.path,
        parseHolder(out.slice(2), options.leaseMs, ageOf(out[1]))
      )
    throw new Error(
      `${host.name}: cannot take the deploy lock ${options.path}: ${status.replace(/^error /, '')}. ` +
        `The SSH user must be able to create it: give it the release store (release-dir), or set sudo: true`
    )
  }

  private startRenewing(): void {
    const every =
      this.options.renewEveryMs ?? Math.min(60_000, Math.max(1000, Math.floor(this.options.leaseMs / 3)))
    this.renewedAt = Date.now()
    this.timer = setInterval(() => this.tick(), every)
    this.timer.unref()
  }

  /** A detached host (fleet/idle.ts) renews less often: see renewalDue. */
  private tick(): void {
    if (renewalDue(this.host, this.renewedAt, this.options.leaseMs)) void this.renew().catch(() => undefined)
  }

  /**
   * Touches the lease (one renewal at a time). A lost connection is retried at the next tick; a
   * lock in other hands is reported once and remembered (check() then throws).
   */
  renew(): Promise<'renewed' | 'lost'> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = null))
    return this.renewing
  }

  private async renewOnce(): Promise<'renewed' | 'lost'> {
    if (this.stopping || this.lost) return 'lost'
    const out = await sh(this.host, RENEW, [this.options.path, this.options.token], true)
    if (out[0] === 'renewed') {
      this.renewedAt = Date.now()
      return 'renewed'
    }
    if (this.stopping) return 'lost' // released meanwhile: not a loss
    this.lost = true
    this.lostTo = out.length > 1 ? parseHolder(out.slice(1), this.options.leaseMs, 0) : null
    this.options.warn?.(
      `${this.host.name}: the deploy lock ${this.options.path} is no longer held by this run: ` +
        (this.lostTo ? `another run holds it now (${describeHolder(this.lostTo)})` : 'it was removed')
    )
    return 'lost'
  }

  /** Throws LockLostError when a renewal found the lock in other hands. */
  check(): void {
    if (this.lost)
      throw new LockLostError(this.host.name, this.path, this.lostTo, this.options.leaseMs, this.options.role)
  }

  /**
   * Asks the host now (a renewal), then check(). A renewal that cannot reach the host is not a
   * loss: the step that follows meets the lost connection and the engine reconnects.
   */
  async verify(): Promise<void> {
    await this.renew().catch(() => undefined)
    this.check()
  }

  private releasing: Promise<LockReleased | 'skipped'> | null = null

  /**
   * Sends the release now, behind commands still on their way; run by the host only if `gate` is
   * open. release() then takes its answer, or releases again when the host skipped it.
   */
  releaseAhead(gate?: string): void {
    this.releasing ??= this.releaseOnce(gate)
  }

  /** Releases the lock if this run still holds it, once (a second call gets the first's answer). Never throws. */
  release(): Promise<LockReleased> {
    const first = this.releasing
    const answer = first ? first.then(r => (r === 'skipped' ? this.releaseOnce() : r)) : this.releaseOnce()
    this.releasing = answer
    return answer as Promise<LockReleased>
  }

  private async releaseOnce(gate?: string): Promise<LockReleased | 'skipped'> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.stopping = true
    // A renewal runs on the side shell, not in order with the release: let it end first, so that it never touches a lock
    // that the release is removing.
    await this.renewing?.catch(() => undefined)
    if (this.released) return 'released'
    try {
      const out = await releaseLock(this.host, this.options.path, this.options.token, gate)
      if (out === 'skipped') return out
      this.released = true
      return out
    } catch (e) {
      this.options.warn?.(
        `${this.host.name}: could not release the deploy lock ${this.options.path}: ${(e as Error).message}`
      )
      return 'error'
    }
  }
}

export type LockReleased = 'released' | 'absent' | 'not-ours' | 'error'

/**
 * Removes the lock when `token` holds it (the post step uses this for a run that was killed);
 * with `gate`, only if that gate of the host's shell is open ('skipped' otherwise).
 */
export async function releaseLock(
  host: Host,
  path: string,
  token: string,
  gate?: string
): Promise<'released' | 'absent' | 'not-ours' | 'skipped'> {
  const out = await sh(host, RELEASE, [path, token], false, gate)
  if (out === null) return 'skipped'
  const s = out[0]
  if (s === 'released' || s === 'absent' || s === 'not-ours') return s
  throw new Error(`${host.name}: unexpected answer while releasing ${path}: ${out.join(' ').slice(0, 200)}`)
}
