/**
 * Who holds a host's deploy lock: the owner (repository, run, commit, runner) a run writes into
 * the lock's `owner` file, one `key=value` line each, and what a second run reads back from it.
 */
import { randomBytes } from 'node:crypto'
import { hostname, userInfo } from 'node:os'

/** Who runs a deploy, as the lock shows it to a second one. */
export interface LockOwner {
  repository?: string
  runId?: string
  runAttempt?: string
  workflow?: string
  job?: string
  actor?: string
  commit?: string
  ref?: string
  runUrl?: string
  /** The machine (and user) the run comes from. */
  runner?: string
}

/** What a held lock says about its holder. */
export interface LockHolder extends LockOwner {
  token: string
  /** When the holder took it (the host's clock, ISO 8601). */
  since?: string
  /** The holder's lease. */
  leaseMs: number
  /** Time since the holder last renewed the lease (the host's clock). */
  ageMs: number
  /**
   * When the lease was renewed "in the future" of the host's clock (set back since, or the file's
   * time set by hand): how far ahead. Its age cannot be told then; ageMs is 0.
   */
  futureMs?: number
  /** A future-dated lease that this run dated to the host's clock now (it runs out one lease later). */
  redated?: boolean
}

/** A token that names this run on the hosts (letters, digits, - and . only). */
export function newToken(owner: LockOwner): string {
  const run = [owner.runId, owner.runAttempt].filter(Boolean).join('.')
  return `${(run || 'local').replace(/[^A-Za-z0-9.-]/g, '') || 'local'}-${randomBytes(6).toString('hex')}`
}

/** The owner of this process's deploy: GitHub's run variables, or user@machine from a terminal. */
export function lockOwnerFromEnv(env: NodeJS.ProcessEnv = process.env): LockOwner {
  const server = env.GITHUB_SERVER_URL ?? 'https://github.com'
  const runUrl =
    env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
      ? `${server}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}`
      : undefined
  let user = 'unknown'
  try {
    user = userInfo().username
  } catch {
    /* no passwd entry */
  }
  return {
    repository: env.GITHUB_REPOSITORY,
    runId: env.GITHUB_RUN_ID,
    runAttempt: env.GITHUB_RUN_ATTEMPT,
    workflow: env.GITHUB_WORKFLOW,
    job: env.GITHUB_JOB,
    actor: env.GITHUB_ACTOR,
    commit: env.GITHUB_SHA,
    ref: env.GITHUB_REF,
    runUrl,
    runner: env.RUNNER_NAME ? `${env.RUNNER_NAME}` : `${user}@${hostname()}`
  }
}

const OWNER_KEYS: [keyof LockOwner, string][] = [
  ['repository', 'repository'],
  ['runId', 'run_id'],
  ['runAttempt', 'run_attempt'],
  ['workflow', 'workflow'],
  ['job', 'job'],
  ['actor', 'actor'],
  ['commit', 'commit'],
  ['ref', 'ref'],
  ['runUrl', 'run_url'],
  ['runner', 'runner']
]

/** One line per value, printable, bounded: the owner file is read back by people and by parsers. */
function clean(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300)
}

export function ownerLines(owner: LockOwner): string[] {
  const lines: string[] = []
  for (const [key, name] of OWNER_KEYS) {
    const v = owner[key]
    if (v !== undefined && v !== '') lines.push(`${name}=${clean(v)}`)
  }
  return lines
}

export function parseHolder(lines: string[], fallbackLeaseMs: number, ageSeconds: number): LockHolder {
  const kv = new Map<string, string>()
  for (const line of lines) {
    const eq = line.indexOf('=')
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1))
  }
  const holder: LockHolder = {
    token: kv.get('token') ?? '',
    since: kv.get('since'),
    leaseMs: /^\d+$/.test(kv.get('lease') ?? '') ? Number(kv.get('lease')) * 1000 : fallbackLeaseMs,
    ageMs: Math.max(0, ageSeconds) * 1000
  }
  if (ageSeconds < 0) holder.futureMs = -ageSeconds * 1000
  for (const [key, name] of OWNER_KEYS) {
    const v = kv.get(name)
    if (v !== undefined) holder[key] = v
  }
  return holder
}
