/**
 * Go servers built on cloudflare/tableflip (and any server that behaves the same) as a Supervisor:
 * the upgrade signal makes the serving process start the live file again as its child, which
 * inherits the listening sockets and names itself in the pid file once ready; the old process
 * then stops accepting, drains and exits by itself. It cannot be held for a fleet, and going back
 * is another hand-over, to the old binary, once the old process has gone; so hold: true leaves a
 * host on its new process with the old binary kept, and abort hands back to it (handBack).
 */
import type { Host } from '../../host/host.js'
import type { UpgradeSignal } from '../../settings.js'
import type {
  DrainOptions,
  RepairAdvice,
  Running,
  Supervisor,
  SupervisorContext,
  SupervisorOptions,
  SupervisorSession
} from '../supervisor.js'
import { checkRetired, checkServing, startHandoff, waitForParent } from './handoff.js'
import { inspectServer } from './inspect.js'
import { describe, isAlive } from './protocol.js'
import { assessHandoff, repairHandoff, revertHandoff } from './revert.js'
import { TableflipHost } from './state.js'
import { tableflipWatchdog } from './watchdog.js'

class TableflipSession implements SupervisorSession {
  private readonly s: TableflipHost

  constructor(
    host: Host,
    options: SupervisorOptions,
    extra: { signal: UpgradeSignal; parentWaitMs: number }
  ) {
    this.s = new TableflipHost(host, { ...options, ...extra })
  }

  async inspect(ctx: SupervisorContext): Promise<Running> {
    const facts = await inspectServer(this.s, m => ctx.note(m))
    this.s.learn(facts)
    return facts
  }

  // tableflip has no config test; verify-command (the strategy's) runs the server's own check.
  verify(ctx: SupervisorContext): Promise<{ version: string | null }> {
    ctx.note('the tableflip protocol has no check of its own for a new binary; verify-command runs yours')
    return Promise.resolve({ version: null })
  }

  start(ctx: SupervisorContext, o: { startTimeoutMs: number; intervalMs: number }): Promise<number> {
    return startHandoff(this.s, ctx, o)
  }

  serving(): Promise<{ pid: number; workers: number[] }> {
    return Promise.resolve({ pid: this.s.newPid!, workers: [] })
  }

  stillServing(was: { pid: number; workers: number[] }): Promise<void> {
    return checkServing(this.s, was.pid)
  }

  drain(ctx: SupervisorContext, o: DrainOptions): Promise<boolean> {
    return waitForParent(this.s, ctx, o)
  }

  async busyOld(): Promise<number[]> {
    const old = this.s.facts().pid
    return isAlive(await this.s.read(), old) ? [old] : []
  }

  retire(ctx: SupervisorContext, o: { unfinished: boolean; intervalMs: number }): Promise<void> {
    return checkRetired(this.s, ctx, o)
  }

  revert(ctx: SupervisorContext): Promise<void> {
    return revertHandoff(this.s, m => ctx.note(m))
  }

  repairAdvice(): Promise<RepairAdvice> {
    return repairHandoff(this.s)
  }

  async describe(): Promise<string> {
    return describe(await this.s.read(), this.s.facts().pid, this.s.newPid)
  }

  assess(): ReturnType<SupervisorSession['assess']> {
    return assessHandoff(this.s)
  }

  adopt(saved: { pid: number; livePath: string; liveSha256: string }): void {
    this.s.learn({ ...saved, runningSha256: saved.liveSha256, exeReplaced: false, version: null, arch: '' })
  }
}

/** The tableflip supervisor for servers that start a hand-over on `signal`. */
export function tableflip(o: { signal: UpgradeSignal; parentWaitMs: number }): Supervisor {
  return {
    names: {
      id: 'tableflip',
      title: 'tableflip (Go hand-over)',
      steps: { start: 'handoff', retire: 'retire' },
      old: 'old process',
      new: 'new process',
      retiring: 'left to exit by itself'
    },
    defaultPidFile: undefined,
    capabilities: { canHold: false, handBack: true, revert: 'handoff', samePid: false },
    watchdog: tableflipWatchdog(o.signal),
    open: (host, options) => new TableflipSession(host, options, o)
  }
}
