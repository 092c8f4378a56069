/**
 * Shards of a fleet over a workflow matrix: `shard: i/n` runs on the i-th of n contiguous slices
 * of `hosts`, in the order given. Every job of the matrix reads the same list, so each host is in
 * exactly one shard and the slices are the same in every job, whatever the runner.
 */

export interface Shard {
  /** 1-based. */
  index: number
  count: number
}

/**
 * Parses `i/n`; null with the problem when it is not one (the caller names the input). n is at
 * most the number of hosts: an empty shard would upgrade nothing and still report success.
 */
export function parseShard(text: string, hostCount: number): Shard | { problem: string; fix: string } {
  const m = /^\s*(\d{1,4})\s*\/\s*(\d{1,4})\s*$/.exec(text)
  if (!m)
    return {
      problem: `'${text}' is not i/n`,
      fix: 'Give the shard as i/n, e.g. ${{ matrix.shard }}/4 for the i-th of 4 shards (i from 1 to n)'
    }
  const index = Number(m[1])
  const count = Number(m[2])
  if (count < 1 || index < 1 || index > count)
    return {
      problem: `'${text}': the shard number must be from 1 to ${Math.max(count, 1)}`,
      fix: 'Number the shards from 1: 1/n, 2/n, ..., n/n'
    }
  if (count > hostCount)
    return {
      problem: `'${text}' asks for ${count} shards but hosts lists ${hostCount} host(s): a shard would be empty`,
      fix: `Use at most ${hostCount} shards`
    }
  return { index, count }
}

/**
 * The host indexes [from, to) of shard i of n over `total` hosts: contiguous slices, the first
 * `total % n` shards one host larger, so that sizes differ by one at most.
 */
export function shardRange(total: number, shard: Shard): { from: number; to: number } {
  const base = Math.floor(total / shard.count)
  const extra = total % shard.count
  const k = shard.index - 1
  const from = k * base + Math.min(k, extra)
  return { from, to: from + base + (k < extra ? 1 : 0) }
}

/** The hosts of one shard, in the order given. */
export function shardOf<T>(hosts: readonly T[], shard: Shard): T[] {
  const { from, to } = shardRange(hosts.length, shard)
  return hosts.slice(from, to)
}
