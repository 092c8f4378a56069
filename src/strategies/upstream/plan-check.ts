/**
 * Checks a rollout against the block before anything changes: every host has its server line,
 * no batch takes out the last server that serves, the canary weight makes sense. Pure: the
 * caller reads the file and turns a problem into the input's error.
 */
import type { ManagedFile, UpstreamServer } from './managed-file.js'

export interface PlanProblem {
  /** The input to blame. */
  input: string
  problem: string
  fix: string
}

/** `{host}` in upstream-server becomes the host's address as written in hosts. */
export function serverAddress(template: string, host: string): string {
  const shown = host.includes(':') ? `[${host}]` : host
  return template.replaceAll('{host}', shown)
}

/** A server takes traffic in normal operation: not down, not a backup. */
export function serves(s: UpstreamServer): boolean {
  return !s.down && !s.backup
}

export interface PlanInput {
  file: ManagedFile
  /** Server address of each host, in host order. */
  addresses: string[]
  /** Host indexes of each batch, in rollout order (hosts of one batch are out at the same time). */
  batches: number[][]
  canaryWeight: number
  /** Whether the first batch is a canary that comes back at canaryWeight. */
  canary: boolean
  hostLabels: string[]
}

export function checkPlan(p: PlanInput): PlanProblem | null {
  const { block } = p.file
  const list = block.servers.map(s => s.address).join(', ')
  const seen = new Map<string, number>()
  for (const [i, address] of p.addresses.entries()) {
    const other = seen.get(address)
    if (other !== undefined)
      return {
        input: 'upstream-server',
        problem: `hosts ${p.hostLabels[other]} and ${p.hostLabels[i]} both map to server ${address}`,
        fix: 'Give each host its own server line; {host} in upstream-server is the host as written in hosts'
      }
    seen.set(address, i)
    if (!block.servers.some(s => s.address === address))
      return {
        input: 'upstream-server',
        problem: `host ${p.hostLabels[i]} is server ${address}, which upstream ${block.name} does not list (it lists: ${list})`,
        fix: 'Write upstream-server so that it gives the address of the server line, e.g. {host}:8080, or add the server to the block'
      }
  }
  const serving = block.servers.filter(serves)
  if (serving.length < 2)
    return {
      input: 'upstream-file',
      problem: `upstream ${block.name} has ${serving.length === 0 ? 'no server' : 'one server'} that serves (not down, not backup)`,
      fix: 'Traffic shifting needs a second server to take the traffic while one is out; add one, or use strategy: hot-upgrade'
    }
  for (const batch of p.batches) {
    const out = new Set(batch.map(i => p.addresses[i]!))
    const left = serving.filter(s => !out.has(s.address))
    if (left.length === 0)
      return {
        input: 'max-parallel',
        problem: `hosts ${batch.map(i => p.hostLabels[i]).join(', ')} would be out at the same time, which takes out every server of upstream ${block.name} that serves`,
        fix: 'Lower max-parallel (or canary) so that at least one serving server stays in'
      }
  }
  if (p.canary && p.batches[0] !== undefined)
    for (const i of p.batches[0]) {
      const s = block.servers.find(x => x.address === p.addresses[i])!
      if (s.down) continue
      const full = s.weight ?? 1
      if (p.canaryWeight > full)
        return {
          input: 'canary-weight',
          problem: `${p.canaryWeight} is more than server ${s.address}'s own weight ${full}: the canary would get more than its share`,
          fix: `Use a canary-weight from 1 to ${full}, or give the server a higher weight in the block`
        }
    }
  return null
}
