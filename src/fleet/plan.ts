/** The plan of a rollout: which hosts run in which batch, and how the plan is told. */
import type { Settings } from '../settings.js'

/**
 * The batches, as host indexes in rollout order. With canary > 0, batch 0 holds the first
 * `canary` hosts (run at most maxParallel at a time); the rest follow in batches of maxParallel.
 */
export function planBatches(hostCount: number, canary: number, maxParallel: number): number[][] {
  const width = Math.max(1, Math.floor(maxParallel))
  const head = Math.min(Math.max(0, Math.floor(canary)), hostCount)
  const batches: number[][] = []
  if (head > 0) batches.push(range(0, head))
  for (let i = head; i < hostCount; i += width) batches.push(range(i, Math.min(i + width, hostCount)))
  return batches
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i)
}

/** How a batch is named in the log: canary, batch 2 of 3, upgrade. */
export function batchNamer(batches: number[][], hasCanary: boolean): (k: number) => string {
  return k => {
    if (hasCanary) return k === 0 ? 'canary' : `batch ${k} of ${batches.length - 1}`
    return batches.length === 1 ? 'upgrade' : `batch ${k + 1} of ${batches.length}`
  }
}

export function describePlan(
  settings: Settings,
  batches: number[][],
  hasCanary: boolean,
  park: boolean
): string {
  const n = settings.hosts.length
  const shard = settings.shard ? ` (shard ${settings.shard.index}/${settings.shard.count} of hosts)` : ''
  const held = settings.hold
    ? '; at the end every host is left held (hold: true), for mode: commit or abort'
    : ''
  if (n === 1) return `rollout: 1 host${shard}${held}`
  return describeMany(settings, batches, hasCanary, park, shard) + held
}

function describeMany(
  settings: Settings,
  batches: number[][],
  hasCanary: boolean,
  park: boolean,
  shard: string
): string {
  const n = settings.hosts.length
  const rest = hasCanary ? batches.slice(1) : batches
  const restHosts = rest.reduce((sum, b) => sum + b.length, 0)
  const parts = [`rollout: ${n} hosts${shard}`]
  if (hasCanary) parts.push(`canary ${batches[0]!.length} host(s) first`)
  if (restHosts > 0)
    parts.push(
      `${hasCanary ? 'then ' : ''}${restHosts} host(s) in ${rest.length} batch(es) of up to ${settings.maxParallel} in parallel (max-parallel)`
    )
  parts.push(
    park
      ? 'each old master stays parked until every host has passed; a failure rolls back the whole fleet (rollback-fleet)'
      : 'each host commits as soon as it passes; a failure stops the rollout without rolling back the others (rollback-fleet: false)'
  )
  return parts.join(', ')
}
