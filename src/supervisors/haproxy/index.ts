/**
 * HAProxy in master-worker mode as a Supervisor. USR2 to the master (its pid never changes) makes
 * it re-execute the live file and fork new workers, which take the listeners over; the old workers
 * soft-stop by themselves and exit once their connections end. There is no old process to hold:
 * the master already runs the new file and the old workers are leaving, so a rollback is another
 * reload with the old binary back at the live path (canHold false, revert `handoff`); so hold: true
 * leaves the master on the new binary with the old one kept, and abort reloads back to it (handBack).
 */
import { quote } from '../../host/quote.js'
import { StepError } from '../../engine/step.js'
import type { Host } from '../../host/host.js'
import type {
  DrainOptions,
  RepairAdvice,
  Running,
  Supervisor,
  SupervisorContext,
  SupervisorOptions,
  SupervisorSession
} from '../supervisor.js'
import { inspectMaster, verifyBinary } from './inspect.js'
import { alive, reloading, workers } from './protocol.js'
import { HaproxyHost, reload, startAgain, waitOldWorkers } from './reload.js'
import { haproxyWatchdog } from './watchdog.js'

class HaproxySession implements SupervisorSession {
  private readonly s: HaproxyHost

  constructor(
    host: Host,
    private readonly options: SupervisorOptions,
    private readonly binaryPath?: string
  ) {
    this.s = new HaproxyHost(host, options.pidFile, options.pollIntervalMs)
  }

  async inspect(ctx: SupervisorContext): Promise<Running> {
    const facts = await inspectMaster(
      this.s.host,
      {
        pidFile: this.s.pidFile,
        binaryPath: this.binaryPath,
        releaseDir: this.options.releaseDir,
        masterUser: this.options.masterUser
      },
      ctx.note
    )
    this.s.learn(facts)
    return facts
  }

  verify(ctx: SupervisorContext, stagedPath: string): Promise<{ version: string | null }> {
    return verifyBinary(this.s.host, this.s.facts(), stagedPath, ctx.note)
  }

  start(ctx: SupervisorContext, o: { startTimeoutMs: number; intervalMs: number }): Promise<number> {
    return reload(this.s, ctx, { ...o, step: 'reload', before: this.s.facts().oldWorkerPids })
  }

  serving(): Promise<{ pid: number; workers: number[] }> {
    return Promise.resolve({ pid: this.s.facts().pid, workers: [...this.s.newWorkerPids] })
  }

  async stillServing(was: { pid: number; workers: number[] }): Promise<void> {
    const snap = await this.s.read()
    if (!alive(snap.master))
      throw new StepError(
        'health',
        `the master ${was.pid} exited during the health gate (${this.s.describe(snap)})`
      )
    const now = workers(snap).map(w => w.pid)
    const gone = was.workers.filter(w => !now.includes(w))
    if (gone.length > 0)
      throw new StepError(
        'health',
        `workers of the new binary exited: ${gone.join(', ')} (workers now: ${now.join(', ') || 'none'})`
      )
  }

  drain(ctx: SupervisorContext, o: DrainOptions): Promise<boolean> {
    return waitOldWorkers(this.s, { ...o, note: ctx.note })
  }

  async busyOld(): Promise<number[]> {
    const old = new Set(this.s.facts().oldWorkerPids)
    return workers(await this.s.read())
      .filter(w => old.has(w.pid))
      .map(w => w.pid)
  }

  async retire(ctx: SupervisorContext, o: { unfinished: boolean; intervalMs: number }): Promise<void> {
    const snap = await this.s.read()
    const f = this.s.facts()
    if (!alive(snap.master) || reloading(snap.master))
      throw new StepError('retire', `the master is not serving steadily: ${this.s.describe(snap)}`)
    const left = workers(snap).filter(w => f.oldWorkerPids.includes(w.pid))
    if (left.length > 0 && o.unfinished)
      ctx.note(
        `old workers ${left.map(w => w.pid).join(', ')} still finish their connections: they soft-stopped at the reload ` +
          `and exit by themselves (HAProxy's hard-stop-after bounds them); the new workers serve every new connection`
      )
    else
      ctx.note(
        `no old worker left; the master ${f.pid} serves with workers ${this.s.newWorkerPids.join(', ')}`
      )
  }

  async revert(ctx: SupervisorContext): Promise<void> {
    const snap = await this.s.read()
    if (!alive(snap.master)) return startAgain(this.s, ctx, this.s.pollIntervalMs)
    const ws = workers(snap)
    const settled = !reloading(snap.master) && snap.master.exeId === snap.liveId
    if (settled && ws.length > 0 && ws.every(w => w.exeId === snap.liveId)) {
      ctx.note(`the master ${snap.master.pid} and its workers run the old binary already: nothing to reload`)
      return
    }
    await reload(this.s, ctx, {
      startTimeoutMs: 30_000,
      intervalMs: this.s.pollIntervalMs,
      step: 'rollback',
      before: ws.map(w => w.pid)
    })
  }

  async repairAdvice(): Promise<RepairAdvice> {
    const f = this.s.facts()
    const snap = await this.s.read()
    const sudo = this.s.host.sudo ? 'sudo ' : ''
    const check = {
      says: `the master's workers run ${f.livePath} (the same dev:inode as the file)`,
      command: `stat -L -c %d:%i ${quote(f.livePath)}; for c in $(cat /proc/$(cat ${quote(this.s.pidFile)})/task/*/children); do stat -L -c "$c %d:%i" /proc/$c/exe; done`
    }
    if (alive(snap.master))
      return {
        state: this.s.describe(snap),
        commands: [
          '# reload the master: it re-executes the binary at the live path',
          `${sudo}kill -USR2 ${f.pid}`
        ],
        check
      }
    return {
      state: this.s.describe(snap),
      commands: [
        '# HAProxy is down: start it again with its own command line',
        `cd ${quote(f.cwd)} && ${sudo}${[f.argv0, ...f.args].map(quote).join(' ')}`
      ],
      check
    }
  }

  async describe(): Promise<string> {
    return this.s.describe(await this.s.read())
  }

  async assess(): ReturnType<SupervisorSession['assess']> {
    const snap = await this.s.read()
    const detail = this.s.describe(snap)
    if (!alive(snap.master) || reloading(snap.master)) return { state: 'in-between', serving: null, detail }
    const ws = workers(snap)
    const old = new Set(this.s.facts().oldWorkerPids)
    const onLive = ws.filter(w => w.exeId === snap.liveId && !old.has(w.pid))
    if (onLive.length === 0) return { state: 'in-between', serving: null, detail }
    const left = ws.filter(w => old.has(w.pid))
    return { state: left.length === 0 ? 'old-gone' : 'retire-left', serving: snap.master.pid, detail }
  }

  adopt(saved: { pid: number; livePath: string; liveSha256: string }): void {
    this.s.learn({
      pid: saved.pid,
      livePath: saved.livePath,
      liveSha256: saved.liveSha256,
      runningSha256: saved.liveSha256,
      exeReplaced: false,
      version: null,
      arch: '',
      argv0: saved.livePath,
      args: [],
      cwd: '/',
      oldWorkerPids: []
    })
  }
}

export const haproxy: Supervisor = {
  names: {
    id: 'haproxy',
    title: 'HAProxy (master-worker)',
    steps: { start: 'reload', retire: 'retire' },
    // "the old generation is left to exit by itself": the strategy puts these in its sentences
    old: 'old generation',
    new: 'new generation',
    retiring: 'left to exit by itself (its workers soft-stopped at the reload)'
  },
  defaultPidFile: '/run/haproxy.pid',
  capabilities: { canHold: false, handBack: true, revert: 'handoff', samePid: true },
  watchdog: haproxyWatchdog,
  open: (host, options) => new HaproxySession(host, options, options.binaryPath)
}
