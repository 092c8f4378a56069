/**
 * One host's hot upgrade: the strategy's steps (through the chosen supervisor), wrapped by the
 * layers the run asks for (release store, lock, watchdog, journal), run by the engine. The fleet
 * holds one per host; the post step uses `recover`.
 */
import { HostRun, type RunSpec } from '../engine/index.js'
import type { HostReport, Logger } from '../engine/types.js'
import type { Host } from '../host/host.js'
import { hotUpgrade, type HotUpgradeHost, type UpgradePlan } from '../strategies/hot-upgrade/index.js'
import type { HostPlan } from '../strategies/strategy.js'
import { supervisorFor } from '../supervisors/index.js'

export type { UpgradePlan } from '../strategies/hot-upgrade/index.js'

/** What a run adds around a host's steps (src/app.ts: the release store, then safety). */
export type HostWrap = (plan: HostPlan) => RunSpec

export class HostUpgrade {
  private readonly hp: HostPlan
  private readonly engine: HostRun

  constructor(
    readonly host: Host,
    readonly plan: UpgradePlan,
    readonly log: Logger,
    wrap?: HostWrap
  ) {
    const supervisor = plan.supervisor ?? supervisorFor('nginx')
    this.hp = plan.strategy
      ? plan.strategy.plan(host, plan.source, log)
      : hotUpgrade(plan, supervisor).plan(host, plan.source)
    const spec: RunSpec = wrap
      ? wrap(this.hp)
      : { steps: this.hp.steps, checkpoint: this.hp.checkpoint, repair: () => this.hp.repair() }
    this.engine = new HostRun(host, spec, { log, signal: plan.signal })
  }

  get report(): HostReport {
    return this.engine.report
  }

  /** Every step up to the drain; with park, the old process is held and `commit` or `abort` must follow. */
  run(options: { park?: boolean } = {}): Promise<HostReport> {
    return this.engine.run({ hold: options.park })
  }

  /** Pre-staging: preflight, upload and verify only; null when ready for `run`, else the final report. */
  prestage(): Promise<HostReport | null> {
    return this.engine.prepare()
  }

  /** A pre-staged host that will not run (the run stopped): what was staged is removed, it ends untouched. */
  release(reason: string): Promise<HostReport> {
    return this.engine.release(reason)
  }

  /** After a park: the fleet passed; the old process is retired. */
  commit(): Promise<HostReport> {
    return this.engine.commit()
  }

  /** After a park, with hold: true: the host stays held beyond this run (record, watchdog, lock released). */
  leave(): Promise<HostReport> {
    return this.engine.leave()
  }

  /** After a park: go back to the old process, because another host failed. */
  abort(reason: string): Promise<HostReport> {
    const names = (this.plan.supervisor ?? supervisorFor('nginx')).names
    this.log.info(
      this.plan.strategy
        ? `${this.host.name} [rollback] ${reason}: back to its previous release (${this.plan.strategy.title})`
        : `${this.host.name} [rollback] ${reason}: back to the ${names.old} ${this.hp.state.running?.pid}`
    )
    return this.engine.abort(reason)
  }

  /**
   * Finishes a host that an interrupted run left mid-upgrade (the post step), from what the host
   * shows now and what that run knew before it changed anything (`saved`). With `complete`
   * (only the retire remained) and a new process that serves alone, the upgrade is completed;
   * otherwise the host is rolled back. Every undo reads the host first, so nothing is done twice.
   */
  async recover(
    saved: { masterPid: number; livePath: string; liveSha256: string },
    options: { complete: boolean; reason: string }
  ): Promise<HostReport> {
    const hp = this.adopt(saved)
    if (!hp)
      return this.engine.conclude('failed', 'the post step finishes upstream hosts through the load balancer')
    const { session } = hp
    const names = (this.plan.supervisor ?? supervisorFor('nginx')).names
    const report = this.engine.report
    let seen: Awaited<ReturnType<typeof session.assess>>
    try {
      seen = await session.assess()
    } catch (e) {
      return this.engine.conclude('failed', (e as Error).message)
    }
    const old = saved.masterPid
    if (seen.state === 'old-gone') {
      // The retire went through before the run was interrupted (or the server was restarted since).
      report.newPid = seen.serving ?? undefined
      this.log.info(`${this.host.name} [recover] the ${names.old} ${old} is gone: ${seen.detail}`)
      return seen.serving !== null
        ? this.engine.conclude('upgraded')
        : this.engine.conclude(
            'failed',
            `the ${names.old} ${old} is gone and no ${names.new} serves: ${seen.detail}`
          )
    }
    if (options.complete && seen.state === 'retire-left') {
      report.newPid = seen.serving ?? undefined
      this.log.info(
        `${this.host.name} [recover] only the retire of the ${names.old} ${old} remained: completing`
      )
      return this.engine.recover({
        undo: hp.revertSteps,
        steps: [hp.retire],
        reason: options.reason
      })
    }
    return this.engine.recover({ undo: hp.revertSteps, reason: options.reason })
  }

  /**
   * mode: abort of a host a hold run left on its new process (a supervisor whose revert is a
   * hand-over, which could not park its old process): the rollback's own undos, from what that
   * run knew (`saved`: the old process, gone by design, and the old binary). The previous binary
   * goes back at the live path, then the hand-over back to it; each undo reads the host first.
   */
  handBack(
    saved: { masterPid: number; livePath: string; liveSha256: string },
    reason: string
  ): Promise<HostReport> {
    const hp = this.adopt(saved)
    if (!hp) return this.engine.conclude('failed', 'a hand-back is for the hot upgrade')
    return this.engine.recover({ undo: hp.revertSteps, reason })
  }

  /** The session and state learn what an earlier run knew before it changed anything. */
  private adopt(saved: { masterPid: number; livePath: string; liveSha256: string }): HotUpgradeHost | null {
    if (!('session' in this.hp)) return null
    const hp = this.hp as HotUpgradeHost
    hp.session.adopt({ pid: saved.masterPid, livePath: saved.livePath, liveSha256: saved.liveSha256 })
    hp.state.running = {
      pid: saved.masterPid,
      livePath: saved.livePath,
      liveSha256: saved.liveSha256,
      runningSha256: saved.liveSha256,
      exeReplaced: false,
      version: null,
      arch: ''
    }
    const report = this.engine.report
    report.oldPid = saved.masterPid
    report.binaryPath = saved.livePath
    report.previousSha256 = saved.liveSha256
    return hp
  }
}
