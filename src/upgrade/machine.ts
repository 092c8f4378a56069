/**
 * The hot-upgrade state machine for one host. Steps run in order; each checks its precondition
 * and its effect by reading the host back. A step that changed the host registers its undo;
 * on failure the undos run in reverse, so the old master serves again and its binary is back.
 *
 *   preflight → upload → verify → swap → usr2 → winch → health → drain → [park] → quit
 */
import { check, type Host } from '../host/host.js'
import { formatDuration } from '../duration.js'
import { remoteSha256, restorePrevious, sidePaths, stageBinary, swapBinary } from './install.js'
import { runHealthGate, type HealthPlan } from './health.js'
import { waitForDrain } from './drain.js'
import { preflight, verifyBinary, type HostFacts } from './preflight.js'
import {
  exePath,
  isAlive,
  liveChildren,
  newMasterCandidates,
  oldWorkers,
  probe,
  SIGNALS,
  type Snapshot
} from './supervisors/nginx.js'
import { waitUntil } from './wait.js'
import { StepError, type HostReport, type Logger, type StepName, type StepReport } from './types.js'

export interface UpgradePlan {
  pidFile: string
  /** Remote live path; undefined: the running master's executable. */
  binaryPath?: string
  /** The new binary: a local file to upload; arch from its ELF header (null for a #! script). */
  source: { localPath: string; sha256: string; arch?: string | null; bytes?: number }
  startTimeoutMs: number
  pollIntervalMs: number
  drainTimeoutMs: number
  drainTimeoutAction: 'rollback' | 'proceed'
  health: HealthPlan
}

export async function signal(host: Host, sig: string, pid: number): Promise<void> {
  // Always the one pid from the pid file, never a process group (see PROTOCOL.md).
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`refusing to signal pid ${pid}`)
  const argv = ['kill', '-s', sig, '--', String(pid)]
  check(host, argv, await host.run(argv, { sudo: host.sudo }))
}

export class HostUpgrade {
  readonly report: HostReport
  private facts: HostFacts | null = null
  private undos: { step: StepName; fn: () => Promise<void> }[] = []
  private started = Date.now()

  constructor(
    readonly host: Host,
    readonly plan: UpgradePlan,
    readonly log: Logger
  ) {
    this.report = {
      host: host.name,
      result: 'untouched',
      startedAt: new Date().toISOString(),
      steps: [],
      drain: [],
      health: []
    }
  }

  private async step(name: StepName, fn: (note: (s: string) => void) => Promise<void>): Promise<void> {
    const rec: StepReport = {
      name,
      startedAt: new Date().toISOString(),
      endedAt: '',
      ms: 0,
      outcome: 'ok',
      observations: []
    }
    this.report.steps.push(rec)
    const t0 = Date.now()
    const note = (s: string) => {
      rec.observations.push(s)
      this.log.info(`${this.host.name} [${name}] ${s}`)
    }
    try {
      await this.log.group(`${this.host.name}: ${name}`, () => fn(note))
    } catch (e) {
      rec.outcome = 'failed'
      rec.observations.push((e as Error).message)
      throw e instanceof StepError ? e : new StepError(name, (e as Error).message)
    } finally {
      rec.ms = Date.now() - t0
      rec.endedAt = new Date().toISOString()
      this.log.info(`${this.host.name} [${name}] ${rec.outcome} in ${formatDuration(rec.ms)}`)
    }
  }

  private finish(): HostReport {
    this.report.endedAt = new Date().toISOString()
    this.report.durationMs = Date.now() - this.started
    return this.report
  }

  /**
   * Runs every step up to the drain. With park, the old master is left alive (holding only its
   * sockets) and `commit` or `abort` must follow; otherwise the old master is QUIT here.
   */
  async run(options: { park?: boolean } = {}): Promise<HostReport> {
    try {
      const unchanged = await this.prepare()
      if (unchanged) {
        this.report.result = 'unchanged'
        return this.finish()
      }
      await this.swapIn()
      if (options.park) {
        this.report.result = 'parked'
        return this.report
      }
      await this.quitOld()
      this.report.result = 'upgraded'
      this.undos = []
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /** After a park: QUIT the old master; the fleet passed. */
  async commit(): Promise<HostReport> {
    try {
      await this.quitOld()
      this.report.result = 'upgraded'
      this.undos = []
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /** After a park: go back to the old master, because another host failed. */
  async abort(reason: string): Promise<HostReport> {
    await this.fail(new StepError('rollback', reason))
    return this.finish()
  }

  /** Pre-flight, upload and verify: nothing the host serves changes. Returns true when unchanged. */
  private async prepare(): Promise<boolean> {
    await this.step('preflight', async note => {
      this.facts = await preflight(this.host, this.plan, note)
      this.report.oldPid = this.facts.masterPid
      this.report.binaryPath = this.facts.livePath
    })
    const facts = this.facts!
    if (facts.liveSha256 === this.plan.source.sha256 && !facts.masterExeReplaced) {
      this.report.sha256 = this.report.previousSha256 = facts.liveSha256
      this.report.result = 'unchanged'
      this.log.info(
        `${this.host.name}: the live binary already has sha256 ${facts.liveSha256.slice(0, 12)}; nothing to do`
      )
      return true
    }
    await this.step('upload', async note => {
      this.undos.push({ step: 'upload', fn: () => this.removeStaging() })
      const staged = await stageBinary(this.host, {
        localPath: this.plan.source.localPath,
        sha256: this.plan.source.sha256,
        livePath: facts.livePath,
        onProgress: p => this.progress(note, p.transferred, p.total)
      })
      note(
        staged.sent
          ? `sent ${(staged.bytes / 1e6).toFixed(1)} MB in ${formatDuration(staged.uploadMs)}, sha256 checked on the host`
          : 'the staging file already holds this binary (sha256 checked): nothing sent'
      )
    })
    await this.step('verify', async note => {
      const v = await verifyBinary(this.host, facts, sidePaths(facts.livePath).staging, note)
      this.report.version = v.version ?? undefined
      this.report.previousVersion = facts.version ?? undefined
    })
    this.report.sha256 = this.plan.source.sha256
    this.report.previousSha256 = facts.liveSha256
    return false
  }

  private lastProgress = 0
  private progress(note: (s: string) => void, transferred: number, total: number): void {
    const now = Date.now()
    if (transferred < total && now - this.lastProgress < 2000) return
    this.lastProgress = now
    note(
      `upload ${Math.floor((transferred / Math.max(total, 1)) * 100)}% (${(transferred / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB)`
    )
  }

  private async removeStaging(): Promise<void> {
    const { staging } = sidePaths(this.facts!.livePath)
    await this.host.run(['rm', '-f', '--', staging], { sudo: this.host.sudo })
  }

  /** swap → usr2 → winch → health → drain. */
  private async swapIn(): Promise<void> {
    const facts = this.facts!
    const oldPid = facts.masterPid
    await this.step('swap', async note => {
      await swapBinary(this.host, facts.livePath, this.plan.source.sha256)
      this.undos.push({ step: 'swap', fn: () => this.restoreBinary() })
      note(
        `${facts.livePath} is the new binary; the old one is kept as ${sidePaths(facts.livePath).previous}`
      )
    })

    let newPid = 0
    await this.step('usr2', async note => {
      this.undos.push({ step: 'usr2', fn: () => this.restoreMasters() })
      await signal(this.host, SIGNALS.upgrade, oldPid)
      note(`sent USR2 to the old master ${oldPid}`)
      newPid = await this.waitForNewMaster(oldPid, note)
      this.report.newPid = newPid
    })

    await this.step('winch', async note => {
      await signal(this.host, SIGNALS.stopWorkers, oldPid)
      note(
        `sent WINCH to the old master ${oldPid}: its workers stop accepting; only the new binary serves now`
      )
    })

    await this.step('health', async note => {
      const snap = await probe(this.host, this.plan.pidFile)
      const workers = liveChildren(snap, newPid).map(p => p.pid)
      await runHealthGate(this.host, this.plan.health, {
        pidFile: this.plan.pidFile,
        newPid,
        workers,
        note,
        record: (ok, detail, atMs) => this.report.health.push({ atMs, ok, detail })
      })
    })

    await this.step('drain', async note => {
      const drained = await waitForDrain(this.host, {
        pidFile: this.plan.pidFile,
        oldPid,
        newPid,
        intervalMs: this.plan.pollIntervalMs,
        timeoutMs: this.plan.drainTimeoutMs,
        note,
        record: (atMs, count) => this.report.drain.push({ atMs, oldWorkers: count })
      })
      if (!drained) {
        const msg = `old workers still busy after drain-timeout ${formatDuration(this.plan.drainTimeoutMs)}`
        if (this.plan.drainTimeoutAction === 'rollback') throw new StepError('drain', msg)
        note(
          `${msg}; drain-timeout-action is proceed: the old master is told to QUIT, its workers finish on their own`
        )
      }
    })
  }

  private async quitOld(): Promise<void> {
    const oldPid = this.facts!.masterPid
    const newPid = this.report.newPid!
    await this.step('quit', async note => {
      await signal(this.host, SIGNALS.gracefulStop, oldPid)
      note(`sent QUIT to the old master ${oldPid}`)
      const done = await waitUntil(30_000, this.plan.pollIntervalMs, async () => {
        const snap = await probe(this.host, this.plan.pidFile)
        return !isAlive(snap, oldPid) && !snap.oldbinExists && snap.pid === newPid && isAlive(snap, newPid)
          ? snap
          : undefined
      })
      if (!done) {
        const snap = await probe(this.host, this.plan.pidFile)
        throw new StepError(
          'quit',
          `the old master ${oldPid} did not exit within 30s (${describe(snap, oldPid)})`
        )
      }
      note(`the old master is gone; ${newPid} serves alone`)
    })
  }

  /** Waits for the new master: .oldbin holds the old pid, the pid file a live child running the new file, with workers. */
  private async waitForNewMaster(oldPid: number, note: (s: string) => void): Promise<number> {
    const live = this.facts!.livePath
    let revertedPolls = 0
    let last: Snapshot | null = null
    const found = await waitUntil(
      this.plan.startTimeoutMs,
      Math.min(this.plan.pollIntervalMs, 100),
      async elapsed => {
        const snap = (last = await probe(this.host, this.plan.pidFile))
        if (!isAlive(snap, oldPid)) throw new StepError('usr2', `the old master ${oldPid} died after USR2`)
        const pid = snap.pid
        if (snap.oldbinPid === oldPid && pid !== null && pid !== oldPid && isAlive(snap, pid)) {
          const p = snap.procs.get(pid)!
          const exe = exePath(p)
          if (p.ppid === oldPid && exe.path === live && !exe.replaced && liveChildren(snap, pid).length > 0)
            return pid
        }
        // The old master takes its pid file back when the new binary exits (or cannot exec).
        const reverted =
          !snap.oldbinExists && pid === oldPid && newMasterCandidates(snap, oldPid).length === 0
        revertedPolls = reverted && elapsed > 300 ? revertedPolls + 1 : 0
        if (revertedPolls >= 3)
          throw new StepError(
            'usr2',
            'the new binary exited at once: the old master took its pid file back and has no new master child'
          )
        return undefined
      }
    )
    if (found === undefined) {
      const snap = last ?? (await probe(this.host, this.plan.pidFile))
      throw new StepError(
        'usr2',
        `no new master within start-timeout ${formatDuration(this.plan.startTimeoutMs)}: ${describe(snap, oldPid)}`
      )
    }
    note(`new master ${found} is up with ${liveChildren(last!, found).length} workers`)
    return found
  }

  /**
   * Undo of usr2/winch/health/drain, driven by what the host shows: HUP the old master if its
   * workers are gone, stop every new master (QUIT, TERM, KILL), wait until the pid file holds
   * the old pid again and .oldbin is gone.
   */
  async restoreMasters(): Promise<void> {
    const oldPid = this.facts!.masterPid
    const pidFile = this.plan.pidFile
    let snap = await probe(this.host, pidFile)
    if (!isAlive(snap, oldPid))
      throw new Error(`the old master ${oldPid} is not running: it cannot be restored`)
    if (oldWorkers(snap, oldPid, this.newMasterOf(snap, oldPid)).length === 0) {
      await signal(this.host, SIGNALS.restartWorkers, oldPid)
      this.log.info(`${this.host.name} [rollback] sent HUP to the old master ${oldPid}: its workers return`)
      await waitUntil(10_000, 50, async () => {
        snap = await probe(this.host, pidFile)
        return oldWorkers(snap, oldPid, this.newMasterOf(snap, oldPid)).length > 0 ? true : undefined
      })
    }
    for (const [sig, waitMs] of [
      [SIGNALS.gracefulStop, 10_000],
      ['TERM', 5_000],
      ['KILL', 5_000]
    ] as const) {
      snap = await probe(this.host, pidFile)
      const news = newMasterCandidates(snap, oldPid)
      if (news.length === 0) break
      for (const p of news) await signal(this.host, sig, p.pid).catch(() => undefined)
      this.log.info(
        `${this.host.name} [rollback] sent ${sig} to the new master ${news.map(p => p.pid).join(', ')}`
      )
      await waitUntil(waitMs, 50, async () => {
        snap = await probe(this.host, pidFile)
        return newMasterCandidates(snap, oldPid).length === 0 ? true : undefined
      })
    }
    const ok = await waitUntil(10_000, 50, async () => {
      snap = await probe(this.host, pidFile)
      const restored =
        snap.pid === oldPid &&
        !snap.oldbinExists &&
        newMasterCandidates(snap, oldPid).length === 0 &&
        oldWorkers(snap, oldPid, null).length > 0
      return restored ? true : undefined
    })
    if (!ok) throw new Error(`the old master did not take over again: ${describe(snap, oldPid)}`)
    this.log.info(
      `${this.host.name} [rollback] the old master ${oldPid} serves again with ${liveChildren(snap, oldPid).length} workers`
    )
  }

  private newMasterOf(snap: Snapshot, oldPid: number): number | null {
    return newMasterCandidates(snap, oldPid)[0]?.pid ?? null
  }

  private async restoreBinary(): Promise<void> {
    const facts = this.facts!
    await restorePrevious(this.host, facts.livePath, facts.liveSha256)
    const now = await remoteSha256(this.host, facts.livePath)
    if (now !== facts.liveSha256)
      throw new Error(`${facts.livePath} has sha256 ${now} after the restore, expected ${facts.liveSha256}`)
    this.log.info(`${this.host.name} [rollback] ${facts.livePath} is the old binary again`)
  }

  /** Records the failure and rolls back what was changed, in reverse order. */
  private async fail(error: Error): Promise<void> {
    const failedStep = error instanceof StepError ? error.step : 'preflight'
    this.report.failedStep = failedStep
    this.report.error = error.message
    this.log.error(`${this.host.name}: ${failedStep} failed: ${error.message}`)
    const changed = this.undos.some(u => u.step !== 'upload')
    if (this.undos.length === 0) {
      this.report.result = 'failed'
      return
    }
    const undos = this.undos.reverse()
    this.undos = []
    try {
      await this.step('rollback', async note => {
        for (const u of undos) {
          await u.fn()
          note(`undid ${u.step}`)
        }
      })
      this.report.result = changed ? 'rolled-back' : 'failed'
    } catch (e) {
      this.report.result = 'failed'
      this.report.rollbackError = (e as Error).message
      this.report.repair = await this.repairAdvice()
    }
  }

  /** The exact state of a host whose rollback failed, and the commands that repair it. */
  private async repairAdvice(): Promise<string[]> {
    const facts = this.facts!
    const oldPid = facts.masterPid
    const { previous } = sidePaths(facts.livePath)
    const sudo = this.host.sudo ? 'sudo ' : ''
    let state = 'unknown (the host could not be read)'
    try {
      state = describe(await probe(this.host, this.plan.pidFile), oldPid)
    } catch {
      /* keep unknown */
    }
    return [
      `# state: ${state}`,
      `# if the old master ${oldPid} is alive: bring its workers back and stop the new master`,
      `${sudo}kill -HUP ${oldPid}; ${sudo}kill -QUIT "$(cat ${this.plan.pidFile})"`,
      `# put the old binary back (sha256 ${facts.liveSha256})`,
      `${sudo}mv -f ${previous} ${facts.livePath}`,
      `# check: the pid file holds ${oldPid} and ${this.plan.pidFile}.oldbin is gone`,
      `cat ${this.plan.pidFile}; ls -l ${this.plan.pidFile}.oldbin`
    ]
  }
}

/** A one-line account of the masters and workers, for error messages. */
export function describe(snap: Snapshot, oldPid: number): string {
  const parts = [
    `pid file: ${snap.pid ?? 'none'}`,
    `.oldbin: ${snap.oldbinExists ? (snap.oldbinPid ?? 'unreadable') : 'none'}`
  ]
  parts.push(
    `old master ${oldPid} ${isAlive(snap, oldPid) ? `alive with ${oldWorkers(snap, oldPid, null).length} workers` : 'gone'}`
  )
  const news = newMasterCandidates(snap, oldPid)
  for (const n of news)
    parts.push(`new master ${n.pid} (${n.title || n.exe}) with ${liveChildren(snap, n.pid).length} workers`)
  if (snap.pid !== null && snap.pid !== oldPid && !news.some(n => n.pid === snap.pid))
    parts.push(`pid ${snap.pid} ${isAlive(snap, snap.pid) ? 'alive' : 'not running'}`)
  return parts.join('; ')
}
