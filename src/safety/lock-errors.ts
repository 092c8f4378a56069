/** What the deploy lock tells people: who holds it, and the errors of a lock held or lost. */
import { formatDuration } from '../duration.js'
import type { LockHolder } from './lock.js'

/** "octo/app run 123.1 (https://...), commit abc123456789, by alice, since 2024-...". */
export function describeHolder(h: LockHolder): string {
  const parts: string[] = []
  const run = [h.runId, h.runAttempt].filter(Boolean).join('.')
  parts.push(
    `${h.repository ?? 'a run'}${run ? ` run ${run}` : ''}${h.workflow ? ` (workflow "${h.workflow}"${h.job ? `, job ${h.job}` : ''})` : ''}`
  )
  if (h.runUrl) parts.push(h.runUrl)
  if (h.commit) parts.push(`commit ${h.commit.slice(0, 12)}`)
  if (h.ref) parts.push(h.ref)
  if (h.actor) parts.push(`by ${h.actor}`)
  if (h.runner) parts.push(`from ${h.runner}`)
  if (h.since) parts.push(`since ${h.since}`)
  return parts.join(', ')
}

/** When the holder's lease runs out, said truly: a lease dated in the future never runs out by itself. */
function expiry(h: LockHolder, path: string): string {
  const byHand = `remove it by hand once you are sure: rm -r -- '${path.replaceAll("'", `'\\''`)}'`
  if (h.futureMs === undefined)
    return (
      `its lease was renewed ${formatDuration(h.ageMs)} ago. Nothing was changed on this host. ` +
      `Wait for that run to finish (or cancel it); if it is gone, its lock expires ${formatDuration(Math.max(0, h.leaseMs - h.ageMs))} from now ` +
      `(lock-lease ${formatDuration(h.leaseMs)}) and is then taken over, or ${byHand}`
    )
  let msg = `its lease was renewed at a time ${formatDuration(h.futureMs)} ahead of the host's clock: the clock was set back since (or the file's time was set by hand), so how long ago its holder renewed it cannot be told. Nothing was changed on this host. `
  if (h.redated)
    msg +=
      `This run dated the lease to the host's clock now: if that run still works on the host it goes on renewing it (wait for it); ` +
      `if it is gone, the lock expires ${formatDuration(h.leaseMs)} from now (lock-lease ${formatDuration(h.leaseMs)}) and is then taken over, or ${byHand}`
  else
    msg +=
      `It could not be dated to the host's clock now (the SSH user cannot write it), so it does not expire by itself: ` +
      `if that run is gone, ${byHand}`
  return msg
}

/** Another deploy holds the host's lock, and its lease has not run out. */
export class LockHeldError extends Error {
  constructor(
    readonly host: string,
    readonly path: string,
    readonly holder: LockHolder
  ) {
    super(
      `${host}: another deploy holds the lock ${path}: ${describeHolder(holder)}; ${expiry(holder, path)}`
    )
    this.name = 'LockHeldError'
  }
}

/** Why a run whose lock is lost stops, and what the user does next: the end of both messages below. */
function lostLockAdvice(leaseMs: number): string {
  return (
    `Its lease (lock-lease ${formatDuration(leaseMs)}) ran out without a renewal (the SSH connection stalled for longer than that?), ` +
    `or the lock was rewritten by hand; deploy again once the other run has finished`
  )
}

function hostLockLostMessage(host: string, path: string, who: string): string {
  return `${host}: this run lost the deploy lock ${path} while it worked on the host: ${who}. Stopping here and rolling back, so that two runs never change the host at once. `
}

function lbLockLostMessage(host: string, path: string, who: string): string {
  return `${host}: this run lost the load balancer's deploy lock ${path} while it worked on the hosts behind it: ${who}. Stopping here and rolling back, so that two runs never change the load balancer at once. `
}

/**
 * The lock went to another run while this one worked on the host (its lease ran out unrenewed,
 * or it was rewritten by hand): this run stops at its next step and rolls back. `role`
 * 'load-balancer': the lock of strategy upstream's load balancer, which every backend's run shares.
 */
export class LockLostError extends Error {
  constructor(
    readonly host: string,
    readonly path: string,
    readonly holder: LockHolder | null,
    leaseMs: number,
    readonly role: LockRole = 'host'
  ) {
    const who = holder
      ? `another run holds it now: ${describeHolder(holder)}`
      : 'nobody holds it now (it was removed)'
    const lost = role === 'load-balancer' ? lbLockLostMessage : hostLockLostMessage
    super(lost(host, path, who) + lostLockAdvice(leaseMs))
    this.name = 'LockLostError'
  }
}

/** What a lock guards: a host, or the load balancer in front of the hosts (strategy upstream). */
export type LockRole = 'host' | 'load-balancer'
