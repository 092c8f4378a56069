/**
 * nginx (and servers that speak its master/worker protocol: Angie, freenginx, Tengine, OpenResty)
 * as a Supervisor: USR2 starts a new master beside the old one, WINCH stops the old workers, the
 * old master waits with its sockets (it can be held), QUIT retires it; HUP brings it back.
 */
import { StepError } from '../../engine/step.js'
import type { Host } from '../../host/host.js'
import type { TrustedServer } from '../../host/trust.js'
import { commandLine } from '../../host/quote.js'
import type {
  DrainOptions,
  RepairAdvice,
  Running,
  Supervisor,
  SupervisorContext,
  SupervisorOptions,
  SupervisorSession
} from '../supervisor.js'
import { changedSinceStart } from './config-files.js'
import { waitForDrain } from './drain.js'
import { sendStart } from './ahead.js'
import { quitOldMaster, sendQuit, startNewMaster, stopOldWorkers } from './handover.js'
import {
  inspectMaster,
  masterReads,
  sendVerify,
  verifyBinary,
  type ConfigDump,
  type MasterReads
} from './inspect.js'
import {
  acceptingWorkers,
  describe,
  isAlive,
  oldWorkers,
  probe,
  steadyChildren,
  type Snapshot
} from './protocol.js'
import { assessMasters, repairMasters, restoreMasters } from './revert.js'
import { NginxHost } from './state.js'
import { nginxWatchdog } from './watchdog.js'

class NginxSession implements SupervisorSession {
  private readonly s: NginxHost

  constructor(
    host: Host,
    private readonly options: SupervisorOptions
  ) {
    this.s = new NginxHost(host, options.pidFile, options.pollIntervalMs)
  }

  /** The probe and the master's reads sent ahead by prefetch, taken by the next inspect. */
  private first: Promise<Snapshot> | null = null
  private early: MasterReads | null = null

  prefetch(server?: TrustedServer): void {
    this.first = probe(this.s.host, this.options.pidFile)
    this.first.catch(() => undefined)
    this.early = server ? masterReads(this.s.host, server) : null
  }

  async inspect(ctx: SupervisorContext): Promise<Running> {
    // After a lost connection its answer may be lost too: read again.
    const [first, early] = ctx.retrying ? [null, null] : [this.first, this.early]
    this.first = this.early = null
    const facts = await inspectMaster(this.s.host, this.options, ctx, first, early)
    this.s.learn(facts)
    return facts
  }

  /** The config test sent behind the upload (verifyAhead), for that staging file. */
  private verifyEarly: { path: string; sent: ReturnType<typeof sendVerify> } | null = null

  verifyAhead(stagingPath: string, gate: string): void {
    if (this.s.host.privileged) return
    const sent = sendVerify(this.s.host, this.s.facts(), stagingPath, gate)
    sent.catch(() => undefined) // taken by verify, or dropped when the upload failed
    this.verifyEarly = { path: stagingPath, sent }
  }

  async verify(ctx: SupervisorContext, stagedPath: string): Promise<{ version: string | null }> {
    // After a lost connection its answer may be lost too: sent again.
    const early = this.verifyEarly?.path === stagedPath && !ctx.retrying ? this.verifyEarly.sent : undefined
    this.verifyEarly = null
    const v = await verifyBinary(this.s.host, this.s.facts(), stagedPath, ctx.note, early)
    // Needed only at the cut-over: issued now, answered with the next step's commands.
    const result = this.readDump(v)
    result.catch(() => undefined)
    this.dumpReads = { dump: v, result }
    // A plan goes no further: what it found is said now.
    if (ctx.readOnly) await this.learnDump(ctx)
    return { version: v.version }
  }

  /**
   * What the config test's dump leads to: the old master's workers (for worker_processes auto)
   * and the config files' times since the old master started.
   */
  private dumpReads: { dump: ConfigDump; result: ReturnType<NginxSession['readDump']> } | null = null

  private readDump(d: ConfigDump) {
    return Promise.all([
      d.workers === 'auto' ? this.s.read() : null,
      changedSinceStart(this.s.host, this.s.facts().pid, d.configFiles)
    ])
  }

  /** The dump's reads, awaited at the cut-over (read again when their answer was lost). */
  private async learnDump(ctx: SupervisorContext): Promise<void> {
    const d = this.dumpReads
    if (d === null) return
    const [snap, change] = await d.result.catch(() => this.readDump(d.dump))
    this.dumpReads = null
    // nginx starts worker_processes workers; auto: as many as the old master has (one per CPU).
    const old = snap ? acceptingWorkers(snap, this.s.facts().pid).length : 0
    this.s.expectedWorkers = Math.max(1, d.dump.workers === 'auto' ? old : d.dump.workers)
    this.s.configChange = change
    if (change)
      ctx.note(
        `the configuration changed since the old master started (${change.masterStarted}): ${change.files.join(', ')}. ` +
          'The new master loads it as it is now; the old one runs what it read then'
      )
  }

  async start(ctx: SupervisorContext, o: { startTimeoutMs: number; intervalMs: number }): Promise<number> {
    await this.learnDump(ctx)
    return startNewMaster(this.s, ctx, o)
  }

  startAhead(gate: string): boolean {
    const workers = this.dumpReads?.dump.workers
    if (workers === undefined || this.s.host.privileged) return false
    this.s.startAhead = sendStart(this.s, gate, workers)
    return true
  }

  isolate(ctx: SupervisorContext): Promise<void> {
    return stopOldWorkers(this.s, ctx)
  }

  async serving(): Promise<{ pid: number; workers: number[] }> {
    const pid = this.s.newPid!
    // Straight after WINCH the host was just read (no command between): one round trip saved.
    const snap = this.s.isolatedSnapshot ?? (await this.s.read())
    this.s.isolatedSnapshot = null
    return { pid, workers: steadyChildren(snap, pid).map(p => p.pid) }
  }

  async stillServing(was: { pid: number; workers: number[] }): Promise<void> {
    const snap = (this.s.servingSnapshot = await this.s.read())
    if (!isAlive(snap, was.pid))
      throw new StepError('health', `the new master ${was.pid} exited during the health gate`)
    const gone = was.workers.filter(w => !isAlive(snap, w) || snap.procs.get(w)?.ppid !== was.pid)
    if (gone.length > 0) {
      const now = steadyChildren(snap, was.pid).map(p => p.pid)
      throw new StepError(
        'health',
        `workers of the new master are crashing: ${gone.join(', ')} exited (workers now: ${now.join(', ') || 'none'})`
      )
    }
  }

  /** A failed health gate while the configuration changed under the old master: say so, not only "the new binary". */
  healthFailure(e: StepError): StepError {
    const c = this.s.configChange
    if (c === null) return e
    const facts = this.s.facts()
    const oldTest = commandLine([`/proc/${facts.pid}/exe`, '-t', ...facts.configArgs])
    return new StepError(
      e.step,
      `${e.message}. The configuration changed since the old master started (${c.masterStarted}): ${c.files.join(', ')}; ` +
        `the new master loads it as it is now, so the failure may come from that change rather than from the new binary. ` +
        `Check the change (the old binary's config test: ${oldTest}), then deploy again`
    )
  }

  drain(ctx: SupervisorContext, o: DrainOptions): Promise<boolean> {
    const first = ctx.retrying ? null : this.s.servingSnapshot
    this.s.servingSnapshot = null
    return waitForDrain(this.s.host, {
      first,
      pidFile: this.s.pidFile,
      oldPid: this.s.facts().pid,
      newPid: this.s.newPid!,
      intervalMs: o.intervalMs,
      timeoutMs: o.timeoutMs,
      note: ctx.note,
      record: o.record
    })
  }

  async busyOld(): Promise<number[]> {
    return oldWorkers(await this.s.read(), this.s.facts().pid, this.s.newPid ?? null).map(p => p.pid)
  }

  retire(ctx: SupervisorContext, o: { unfinished: boolean; intervalMs: number }): Promise<void> {
    return quitOldMaster(this.s, ctx, o)
  }

  retireAhead(gate: string): void {
    this.s.quitAhead = sendQuit(this.s, gate)
  }

  async revert(ctx: SupervisorContext): Promise<void> {
    await this.s.settleAhead()
    return restoreMasters(this.s, ctx.note)
  }

  repairAdvice(): Promise<RepairAdvice> {
    return repairMasters(this.s)
  }

  async describe(): Promise<string> {
    return describe(await this.s.read(), this.s.facts().pid)
  }

  assess(): ReturnType<SupervisorSession['assess']> {
    return assessMasters(this.s)
  }

  adopt(saved: { pid: number; livePath: string; liveSha256: string }): void {
    this.s.learn({
      pid: saved.pid,
      livePath: saved.livePath,
      liveSha256: saved.liveSha256,
      runningSha256: saved.liveSha256,
      exeReplaced: false,
      argv0: saved.livePath,
      configArgs: [],
      version: null,
      arch: '',
      oldWorkerPids: []
    })
  }
}

export const nginx: Supervisor = {
  names: {
    id: 'nginx',
    title: 'nginx (master/worker)',
    steps: { start: 'usr2', isolate: 'winch', retire: 'quit' },
    old: 'old master',
    new: 'new master',
    retiring: 'told to QUIT'
  },
  defaultPidFile: '/run/nginx.pid',
  capabilities: { canHold: true, handBack: false, revert: 'old-process', samePid: false },
  watchdog: nginxWatchdog,
  open: (host, options) => new NginxSession(host, options)
}
