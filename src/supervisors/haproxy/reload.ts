/**
 * HAProxy's reload on one host, forward and back: USR2 to the master and the wait for new workers
 * that run the live file (the master keeps its pid); the old workers' drain; the revert, which is
 * the same reload with the old binary back at the live path, or, when the master itself is gone
 * (a new binary that could not run as the master, a new worker that died and took the master
 * with it), a start of the old binary with the master's own command line.
 */
import { formatDuration } from '../../duration.js'
import { StepError } from '../../engine/step.js'
import { check, type Host } from '../../host/host.js'
import { waitUntilSoon } from '../../engine/wait.js'
import type { SupervisorContext } from '../supervisor.js'
import type { MasterFacts } from './inspect.js'
import { alive, daemonizes, describe, probe, reloading, workers, type HaproxySnapshot } from './protocol.js'

/** What the supervisor knows of one host during a run. */
export class HaproxyHost {
  private known: MasterFacts | null = null
  /** The live file's "dev:inode" when the reload was sent: new workers run it. */
  reloadedId: string | null = null
  /** Workers of the new binary, once the reload went through. */
  newWorkerPids: number[] = []

  constructor(
    readonly host: Host,
    readonly pidFile: string,
    readonly pollIntervalMs: number
  ) {}

  facts(): MasterFacts {
    if (this.known === null) throw new Error(`${this.host.name}: the running master is not known yet`)
    return this.known
  }

  learn(facts: MasterFacts): void {
    this.known = facts
  }

  read(): Promise<HaproxySnapshot> {
    const f = this.facts()
    return probe(this.host, this.pidFile, f.livePath, f.pid)
  }

  describe(snap: HaproxySnapshot): string {
    return describe(snap, this.facts().oldWorkerPids)
  }
}

export async function signal(host: Host, sig: string, pid: number): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal pid ${pid}`)
  const argv = ['kill', '-s', sig, '--', String(pid)]
  check(host, argv, await host.run(argv, { sudo: host.sudo }))
}

type Outcome = { ok: true; workers: number[] } | { ok: false; why: 'gone' | 'wait-mode' }

/**
 * Where a reload stands: done (new workers run the live file and the master left its reload),
 * failed (the master is gone, or it left its reload in wait mode with no new worker), or
 * undefined (still going). `before`: the workers that served before the signal.
 */
export function reloadOutcome(
  snap: HaproxySnapshot,
  before: readonly number[],
  id: string
): Outcome | undefined {
  if (!alive(snap.master)) return { ok: false, why: 'gone' }
  const old = new Set(before)
  const fresh = workers(snap).filter(w => !old.has(w.pid) && w.exeId === id)
  if (reloading(snap.master) || snap.master.exeId !== id) return undefined
  if (fresh.length > 0) return { ok: true, workers: fresh.map(w => w.pid) }
  return { ok: false, why: 'wait-mode' }
}

/** USR2 to the master, then the wait for new workers running the live file; returns the master's pid. */
export async function reload(
  s: HaproxyHost,
  ctx: SupervisorContext,
  o: { startTimeoutMs: number; intervalMs: number; step: string; before: readonly number[] }
): Promise<number> {
  const pid = s.facts().pid
  const pre = await s.read()
  if (!alive(pre.master)) {
    const msg = `the master ${pid} is gone before the reload (${s.describe(pre)})`
    throw new StepError(o.step, msg)
  }
  const id = pre.liveId
  if (id === '-') {
    const msg = `${s.facts().livePath} is missing: nothing to reload into`
    throw new StepError(o.step, msg)
  }
  s.reloadedId = id
  const already = ctx.retrying ? reloadOutcome(pre, o.before, id) : undefined
  if (already?.ok) ctx.note(`the reload had gone through before the connection was lost: not sent again`)
  else {
    await signal(s.host, 'USR2', pid)
    ctx.note(`sent USR2 to the master ${pid}: it re-executes ${s.facts().argv0}`)
  }
  // A failed reload looks done for a moment before the master re-executes (exe still the old file,
  // no -sf yet): the outcome needs the master on the new file, so it cannot be judged too early.
  let last: HaproxySnapshot = pre
  let failedPolls = 0
  const outcome = await waitUntilSoon(o.startTimeoutMs, Math.min(o.intervalMs, 100), async () => {
    last = await s.read()
    const r = reloadOutcome(last, o.before, id)
    if (r === undefined || r.ok) return r
    failedPolls = alive(last.master) ? failedPolls + 1 : 3
    return failedPolls >= 3 ? r : undefined
  })
  if (outcome === undefined) {
    const msg = `no new worker running ${s.facts().livePath} within start-timeout ${formatDuration(o.startTimeoutMs)}: ${s.describe(last)}`
    throw new StepError(o.step, msg)
  }
  if (!outcome.ok && outcome.why === 'gone') {
    const msg = `the master ${pid} exited during the reload: the new binary could not run as the master, or its new worker failed and took the master and the old workers with it (HAProxy has no old master to fall back on)`
    throw new StepError(o.step, msg)
  }
  if (!outcome.ok) {
    const msg = `the reload failed and the master is in wait mode: it runs the new file but started no worker; the old workers ${o.before.join(', ')} still serve`
    throw new StepError(o.step, msg)
  }
  s.newWorkerPids = outcome.workers
  ctx.note(
    `master ${pid} reloaded: new workers ${outcome.workers.join(', ')} run ${s.facts().livePath}; ` +
      `old workers soft-stop: ${o.before.filter(p => workers(last).some(w => w.pid === p)).join(', ') || 'none left'}`
  )
  return pid
}

/** Waits until no worker of `before` is left; false after timeoutMs. */
export async function waitOldWorkers(
  s: HaproxyHost,
  o: {
    timeoutMs: number
    intervalMs: number
    record(atMs: number, left: number): void
    note(s: string): void
  }
): Promise<boolean> {
  const before = new Set(s.facts().oldWorkerPids)
  let lastCount = -1
  const done = await waitUntilSoon(o.timeoutMs, o.intervalMs, async elapsed => {
    const snap = await s.read()
    if (!alive(snap.master))
      throw new StepError(
        'drain',
        `the master ${s.facts().pid} exited during the drain (${s.describe(snap)})`
      )
    const left = workers(snap).filter(w => before.has(w.pid)).length
    if (left !== lastCount) {
      o.record(elapsed, left)
      o.note(`${left} old worker${left === 1 ? '' : 's'} left after ${(elapsed / 1000).toFixed(1)}s`)
      lastCount = left
    }
    return left === 0 ? true : undefined
  })
  return done === true
}

/**
 * The master is gone: start the old binary (back at the live path) with the master's command line,
 * in its directory. Only for a master that daemonizes (-D): one in the foreground belongs to a
 * service manager, which restarts it itself.
 */
export async function startAgain(s: HaproxyHost, ctx: SupervisorContext, intervalMs: number): Promise<void> {
  const f = s.facts()
  if (!daemonizes(f.args))
    throw new StepError(
      'rollback',
      `the master ${f.pid} is gone and it ran in the foreground (no -D): its service manager must start it again ` +
        `(for example systemctl restart haproxy); the old binary is back at ${f.livePath}`
    )
  const argv = [f.argv0, ...f.args]
  const r = await s.host.run(
    ['sh', '-c', 'cd -- "$1" || exit 97; shift; exec "$@" </dev/null >/dev/null 2>&1', 'sh', f.cwd, ...argv],
    { sudo: s.host.sudo, timeoutMs: 60_000 }
  )
  if (r.code !== 0)
    throw new StepError('rollback', `starting HAProxy again (${argv.join(' ')}) failed with status ${r.code}`)
  ctx.note(`the master was gone: started the old binary again (${argv.join(' ')})`)
  let snap: HaproxySnapshot | null = null
  const up = await waitUntilSoon(30_000, intervalMs, async () => {
    const p = await probe(s.host, s.pidFile, f.livePath, 0)
    if (p.pidFile === null || p.pidFile === f.pid) return undefined
    snap = await probe(s.host, s.pidFile, f.livePath, p.pidFile)
    return alive(snap.master) && workers(snap).some(w => w.exeId === snap!.liveId) ? snap : undefined
  })
  if (!up)
    throw new StepError(
      'rollback',
      `HAProxy did not come back within 30s after its start (${snap ? s.describe(snap) : 'no master'})`
    )
  s.learn({ ...f, pid: up.master!.pid, oldWorkerPids: [] })
  ctx.note(
    `master ${up.master!.pid} serves the old binary with workers ${workers(up)
      .map(w => w.pid)
      .join(', ')}`
  )
}
