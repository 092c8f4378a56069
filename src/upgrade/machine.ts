/**
 * The hot-upgrade state machine for one host. Steps run in order; each checks its precondition
 * and its effect by reading the host back. A step that changed the host registers its undo;
 * on failure the undos run in reverse, so the old master serves again and its binary is back.
 *
 *   preflight → upload → verify → swap → usr2 → winch → health → drain → [park] → quit
 */
import { check, ConnectionLostError, type Host } from '../host/host.js'
import { formatDuration } from '../duration.js'
import {
  remoteSha256,
  restorePrevious,
  sidePaths,
  stageBinary,
  stageHostFile,
  swapBinary
} from './install.js'
import { runHealthGate, type HealthPlan } from './health.js'
import { waitForDrain } from './drain.js'
import { changedSinceStart } from './config-files.js'
import { commandLine } from '../host/quote.js'
import { preflight, verifyBinary, type HostFacts } from './preflight.js'
import {
  exePath,
  isAlive,
  liveChildren,
  acceptingWorkers,
  newMasterCandidates,
  oldWorkers,
  probe,
  SIGNALS,
  steadyChildren,
  type Snapshot
} from './supervisors/nginx.js'
import { waitUntil, waitUntilSoon } from './wait.js'
import { StepError, type HostReport, type Logger, type StepName, type StepReport } from './types.js'

export interface UpgradePlan {
  pidFile: string
  /** Remote live path; undefined: the running master's executable. */
  binaryPath?: string
  /** The new binary (a hook may name another one per host after preflight). */
  source: UpgradeSource
  /** Called around the steps (the release store); each may throw to refuse. */
  hooks?: UpgradeHooks
  /**
   * Aborted when the job is cancelled: the machine stops at the step it is in (a wait stops at
   * once) and rolls back what changed. Once only the old master's QUIT remains, it completes.
   */
  signal?: AbortSignal
  startTimeoutMs: number
  pollIntervalMs: number
  drainTimeoutMs: number
  drainTimeoutAction: 'rollback' | 'proceed'
  health: HealthPlan
}

/** The new binary and where it comes from. */
export interface UpgradeSource {
  sha256: string
  /** A local file to upload; arch from its ELF header (null for a #! script). */
  localPath?: string
  arch?: string | null
  bytes?: number
  /** Or a file already on the host (a release from its store): copied to staging, nothing sent. */
  hostPath?: string
  version?: string
}

export interface HookContext {
  host: Host
  facts: HostFacts
  source: UpgradeSource
  report: HostReport
  note: (s: string) => void
}

export interface UpgradeHooks {
  /** After preflight, before anything changes; may return the binary for this host. */
  afterPreflight?(ctx: HookContext): Promise<UpgradeSource | void>
  /** After verify (the new binary is staged and passed its config test), before the swap. */
  afterVerify?(ctx: HookContext): Promise<void>
  /** The old master is gone: the host serves the new binary. A throw here is only a warning. */
  afterUpgrade?(ctx: HookContext): Promise<void>
  /** Before pre-flight reads anything (the deploy lock). A throw refuses the host: nothing changed. */
  beforeStart?(ctx: StartContext): Promise<void>
  /** Before the swap: the last moment the host has only the old binary (arm the watchdog). */
  beforeSwap?(ctx: HookContext): Promise<void>
  /** After the drain, before the old master's QUIT: the point of no return (confirm the watchdog). A throw rolls back. */
  beforeQuit?(ctx: HookContext): Promise<void>
  /** Before the undos of a rollback run (give the watchdog time, or wait for it if it acted first). */
  beforeRollback?(ctx: HookContext): Promise<void>
  /** The host is parked: its old master waits for the rest of the fleet. A throw is only a warning. */
  onParked?(ctx: HookContext): Promise<void>
  /** The host's run is over, whatever the result but parked (disarm the watchdog, release the lock). */
  settled?(ctx: SettledContext): Promise<void>
}

export interface StartContext {
  host: Host
  report: HostReport
  note: (s: string) => void
}

export interface SettledContext {
  host: Host
  /** null when pre-flight did not get that far. */
  facts: HostFacts | null
  report: HostReport
  log: Logger
}

/** Several sets of hooks as one: each hook runs them in order; afterPreflight keeps the last binary chosen. */
export function mergeHooks(...sets: (UpgradeHooks | undefined)[]): UpgradeHooks {
  const list = sets.filter((h): h is UpgradeHooks => h !== undefined)
  type Each = Exclude<keyof UpgradeHooks, 'afterPreflight'>
  const each =
    <C>(key: Each) =>
    async (ctx: C): Promise<void> => {
      for (const h of list) await (h[key] as ((c: C) => Promise<void>) | undefined)?.call(h, ctx)
    }
  return {
    async afterPreflight(ctx: HookContext): Promise<UpgradeSource | void> {
      let chosen: UpgradeSource | undefined
      for (const h of list) {
        const c = await h.afterPreflight?.(chosen ? { ...ctx, source: chosen } : ctx)
        if (c) chosen = c
      }
      return chosen
    },
    afterVerify: each<HookContext>('afterVerify'),
    afterUpgrade: each<HookContext>('afterUpgrade'),
    beforeStart: each<StartContext>('beforeStart'),
    beforeSwap: each<HookContext>('beforeSwap'),
    beforeQuit: each<HookContext>('beforeQuit'),
    beforeRollback: each<HookContext>('beforeRollback'),
    onParked: each<HookContext>('onParked'),
    settled: each<SettledContext>('settled')
  }
}

/** Steps a cancelled job stops at; the rollback runs, and a QUIT that remained is completed. */
const CANCELLABLE = new Set<StepName>([
  'preflight',
  'upload',
  'verify',
  'swap',
  'usr2',
  'winch',
  'health',
  'drain'
])
/** Steps that end in a wait: a cancel stops them at once (the wait goes on unheard, reading only). */
const INTERRUPTIBLE = new Set<StepName>(['upload', 'usr2', 'health', 'drain'])
/** Attempts of a step whose SSH connection dropped: the host reconnects, the step reads its state back. */
const STEP_ATTEMPTS = 4

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
  /** This host's binary: plan.source, or what the afterPreflight hook chose. */
  private source: UpgradeSource
  /** The current step runs again after a lost connection: it reads back what it may have done. */
  private retrying = false
  /** HUP went to the old master in this rollback: a retried rollback must not start more workers. */
  private hupSent = false

  constructor(
    readonly host: Host,
    readonly plan: UpgradePlan,
    readonly log: Logger
  ) {
    this.source = plan.source
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
    let open = true
    const note = (s: string) => {
      // A wait given up on by a cancel goes on unheard: its notes would describe a step that is over.
      if (!open) return
      rec.observations.push(s)
      this.log.info(`${this.host.name} [${name}] ${s}`)
    }
    try {
      if (CANCELLABLE.has(name) && this.plan.signal?.aborted) throw this.cancelled(name)
      await this.log.group(`${this.host.name}: ${name}`, () => this.guarded(name, fn, note))
    } catch (e) {
      rec.outcome = 'failed'
      rec.observations.push((e as Error).message)
      throw e instanceof StepError ? e : new StepError(name, (e as Error).message)
    } finally {
      open = false
      rec.ms = Date.now() - t0
      rec.endedAt = new Date().toISOString()
      // After the group: readable with every group collapsed.
      this.log.info(
        `${rec.outcome === 'failed' ? '✗' : '✓'} ${this.host.name} [${name}] ${rec.outcome} in ${formatDuration(rec.ms)}`
      )
    }
  }

  /**
   * A step's body: run again after a lost connection (each step reads the host's state back
   * before it acts), and given up at once on a cancel while it waits.
   */
  private guarded(
    name: StepName,
    fn: (note: (s: string) => void) => Promise<void>,
    note: (s: string) => void
  ): Promise<void> {
    const attempts = async (): Promise<void> => {
      for (let i = 1; ; i++) {
        this.retrying = i > 1
        try {
          return await fn(note)
        } catch (e) {
          if (!(e instanceof ConnectionLostError) || i >= STEP_ATTEMPTS) throw e
          note(
            `${e.message}; reconnecting and reading the host's state back (attempt ${i + 1} of ${STEP_ATTEMPTS})`
          )
        } finally {
          this.retrying = false
        }
      }
    }
    const signal = this.plan.signal
    if (!signal || !INTERRUPTIBLE.has(name)) return attempts()
    const work = attempts()
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(this.cancelled(name))
      signal.addEventListener('abort', onAbort, { once: true })
      void work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  private cancelled(name: StepName): StepError {
    const why = this.plan.signal?.reason
    const detail = why instanceof Error ? why.message : why !== undefined ? String(why) : ''
    return new StepError(name, `the run was cancelled${detail ? ` (${detail})` : ''} during ${name}`)
  }

  /** Registers a step's undo once (a step run again after a lost connection registers it again). */
  private addUndo(step: StepName, fn: () => Promise<void>): void {
    if (!this.undos.some(u => u.step === step)) this.undos.push({ step, fn })
  }

  private context(note: (s: string) => void): HookContext {
    return { host: this.host, facts: this.facts!, source: this.source, report: this.report, note }
  }

  /** The afterUpgrade hook; the host already serves the new binary, so a failure is a warning. */
  private async afterUpgrade(): Promise<void> {
    const hook = this.plan.hooks?.afterUpgrade
    if (!hook) return
    const quit = this.report.steps[this.report.steps.length - 1]
    const note = (s: string) => {
      quit?.observations.push(s)
      this.log.info(`${this.host.name} [${quit?.name ?? 'quit'}] ${s}`)
    }
    try {
      await hook(this.context(note))
    } catch (e) {
      quit?.observations.push((e as Error).message)
      this.log.warn(`${this.host.name}: ${(e as Error).message}`)
    }
  }

  private async finish(): Promise<HostReport> {
    this.report.endedAt = new Date().toISOString()
    this.report.durationMs = Date.now() - this.started
    const settled = this.plan.hooks?.settled
    if (settled)
      await settled({ host: this.host, facts: this.facts, report: this.report, log: this.log }).catch(
        (e: Error) => this.log.warn(`${this.host.name}: ${e.message}`)
      )
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
        await this.plan.hooks
          ?.onParked?.(this.context(s => this.log.info(`${this.host.name} [park] ${s}`)))
          .catch((e: Error) => this.log.warn(`${this.host.name}: ${e.message}`))
        return this.report
      }
      await this.complete()
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /** After a park: QUIT the old master; the fleet passed. */
  async commit(): Promise<HostReport> {
    try {
      await this.complete()
    } catch (e) {
      await this.fail(e as Error)
    }
    return this.finish()
  }

  /** QUIT the old master: past this point there is nothing to undo. */
  private async complete(): Promise<void> {
    await this.quitOld()
    this.report.result = 'upgraded'
    this.undos = []
    await this.removeKept()
    await this.afterUpgrade()
  }

  /**
   * After success nothing of ours stays beside the live binary (on a distribution host that is
   * /usr/sbin, where no package owns a stray file): the old build lives in the release store.
   */
  private async removeKept(): Promise<void> {
    const { previous } = sidePaths(this.facts!.livePath)
    const r = await this.host
      .run(['rm', '-f', '--', previous], { sudo: this.host.sudo })
      .catch(e => e as Error)
    if (r instanceof Error || r.code !== 0)
      this.log.warn(
        `${this.host.name}: cannot remove the kept old binary ${previous} (${r instanceof Error ? r.message : r.stderr.trim()}); remove it by hand`
      )
  }

  /** After a park: go back to the old master, because another host failed. */
  async abort(reason: string): Promise<HostReport> {
    // Not this host's failure: no error annotation for it (the failing host has its own).
    this.log.info(`${this.host.name} [rollback] ${reason}: back to the old master ${this.facts?.masterPid}`)
    await this.fail(new StepError('rollback', reason), { quiet: true })
    return this.finish()
  }

  /** Pre-flight, upload and verify: nothing the host serves changes. Returns true when unchanged. */
  private async prepare(): Promise<boolean> {
    await this.step('preflight', async note => {
      await this.plan.hooks?.beforeStart?.({ host: this.host, report: this.report, note })
      this.facts = await preflight(this.host, this.plan, note, known => {
        // Filled as pre-flight learns them: a refused host still reports what serves.
        if (known.masterPid !== undefined) this.report.oldPid = known.masterPid
        if (known.livePath !== undefined) this.report.binaryPath = known.livePath
        if (known.version) this.report.previousVersion = known.version
      })
      this.report.oldPid = this.facts.masterPid
      this.report.binaryPath = this.facts.livePath
      const chosen = await this.plan.hooks?.afterPreflight?.(this.context(note))
      if (chosen) this.source = chosen
    })
    const facts = this.facts!
    const source = this.source
    if (facts.liveSha256 === source.sha256 && !facts.masterExeReplaced) {
      this.report.sha256 = this.report.previousSha256 = facts.runningSha256
      this.report.result = 'unchanged'
      this.log.info(
        `${this.host.name}: the live binary already has sha256 ${facts.liveSha256.slice(0, 12)}; nothing to do`
      )
      return true
    }
    await this.step('upload', async note => {
      this.addUndo('upload', () => this.removeStaging())
      if (source.hostPath !== undefined) {
        await stageHostFile(this.host, {
          fromPath: source.hostPath,
          sha256: source.sha256,
          livePath: facts.livePath
        })
        note(`copied ${source.hostPath} (sha256 checked) to the staging file on the host: nothing sent`)
        return
      }
      if (source.localPath === undefined) throw new StepError('upload', 'no binary was chosen for this host')
      const staged = await stageBinary(this.host, {
        localPath: source.localPath,
        sha256: source.sha256,
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
      // nginx starts worker_processes workers; auto: as many as the old master has (one per CPU).
      if (v.workers === 'auto')
        this.oldAccepting = acceptingWorkers(await this.read(), facts.masterPid).length
      this.expectedWorkers = v.workers === 'auto' ? Math.max(1, this.oldAccepting) : Math.max(1, v.workers)
      this.configChange = await changedSinceStart(this.host, facts.masterPid, v.configFiles)
      if (this.configChange)
        note(
          `the configuration changed since the old master started (${this.configChange.masterStarted}): ${this.configChange.files.join(', ')}. ` +
            'The new master loads it as it is now; the old one runs what it read then'
        )
      this.report.version = v.version ?? undefined
      this.report.previousVersion = facts.version ?? undefined
      await this.plan.hooks?.afterVerify?.(this.context(note))
    })
    this.report.sha256 = source.sha256
    this.report.previousSha256 = facts.runningSha256
    return false
  }

  private lastProgress = 0
  private uploadStarted = 0
  /** Upload progress: a line every 2 s and one at the end, with percent and MB/s. */
  private progress(note: (s: string) => void, transferred: number, total: number): void {
    const now = Date.now()
    if (this.uploadStarted === 0) this.uploadStarted = this.lastProgress = now
    if (transferred < total && now - this.lastProgress < 2000) return
    this.lastProgress = now
    const seconds = (now - this.uploadStarted) / 1000
    const rate = seconds > 0 ? `, ${(transferred / 1e6 / seconds).toFixed(1)} MB/s` : ''
    note(
      `upload ${Math.floor((transferred / Math.max(total, 1)) * 100)}% (${(transferred / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB${rate})`
    )
  }

  /** The host's state, with the old and new masters kept in view while nginx renames their pid files. */
  private read(): Promise<Snapshot> {
    const watch = [this.facts?.masterPid ?? 0, this.report.newPid ?? 0]
    return probe(this.host, this.plan.pidFile, watch)
  }

  /** The live file is a #! script: its master runs the interpreter or what the script execs, not the live file. */
  private newIsScript = false
  /** The drain timed out with drain-timeout-action proceed: old workers are still busy at QUIT. */
  private drainUnfinished = false
  /** WINCH was sent to the old master: its workers stop accepting, so a rollback must HUP it. */
  private winchSent = false
  /** Workers the new master starts (worker_processes of its config): all must accept before WINCH. */
  private expectedWorkers = 1
  /** The old master's accepting workers at pre-flight. */
  private oldAccepting = 0
  /** Config files changed since the old master started: a failing health gate may be their fault. */
  private configChange: { files: string[]; masterStarted: string } | null = null

  private async removeStaging(): Promise<void> {
    const { staging } = sidePaths(this.facts!.livePath)
    await this.host.run(['rm', '-f', '--', staging], { sudo: this.host.sudo })
  }

  /** swap → usr2 → winch → health → drain. */
  private async swapIn(): Promise<void> {
    const facts = this.facts!
    const oldPid = facts.masterPid
    await this.step('swap', async note => {
      await this.plan.hooks?.beforeSwap?.(this.context(note))
      // Again after a lost connection: the rename may have happened; the host says.
      if (!this.retrying || (await remoteSha256(this.host, facts.livePath)) !== this.source.sha256)
        await swapBinary(this.host, facts.livePath, this.source.sha256)
      this.addUndo('swap', () => this.restoreBinary())
      note(
        `${facts.livePath} is the new binary; the old one is kept as ${sidePaths(facts.livePath).previous}`
      )
      const head = await this.host.run(['head', '-c', '2', '--', facts.livePath], { sudo: this.host.sudo })
      this.newIsScript = head.code === 0 && head.stdout === '#!'
      if (this.newIsScript)
        note(
          'the new binary is a #! script: its master may run another executable (what the script execs), which is accepted'
        )
    })

    let newPid = 0
    await this.step('usr2', async note => {
      this.addUndo('usr2', () => this.restoreMasters())
      // Again after a lost connection: the USR2 may have arrived; the host says.
      const seen = this.retrying ? await probe(this.host, this.plan.pidFile) : null
      if (seen && (seen.oldbinPid === oldPid || newMasterCandidates(seen, oldPid).length > 0))
        note(`USR2 had reached the old master ${oldPid} before the connection was lost: not sent again`)
      else {
        await signal(this.host, SIGNALS.upgrade, oldPid)
        note(`sent USR2 to the old master ${oldPid}`)
      }
      newPid = await this.waitForNewMaster(oldPid, note)
      this.report.newPid = newPid
    })

    await this.step('winch', async note => {
      this.winchSent = true
      await signal(this.host, SIGNALS.stopWorkers, oldPid)
      note(`sent WINCH to the old master ${oldPid}: its workers stop accepting`)
      // The health gate must judge the new binary alone: wait until no old worker accepts.
      let snap: Snapshot | null = null
      const stopped = await waitUntilSoon(10_000, this.plan.pollIntervalMs, async () => {
        snap = await this.read()
        return acceptingWorkers(snap, oldPid).length === 0 ? true : undefined
      })
      if (!stopped) {
        const still = acceptingWorkers(snap!, oldPid).map(p => p.pid)
        throw new StepError(
          'winch',
          `the old master's workers ${still.join(', ')} still accept connections 10s after WINCH: ` +
            'nginx ignores WINCH when it runs with daemon off (under systemd Type=simple, in a container)'
        )
      }
      note(`no old worker accepts any more; only the new binary serves now`)
    })

    await this.step('health', async note => {
      const snap = await this.read()
      const workers = steadyChildren(snap, newPid).map(p => p.pid)
      await runHealthGate(this.host, this.plan.health, {
        pidFile: this.plan.pidFile,
        newPid,
        workers,
        note,
        record: (ok, detail, atMs) => this.report.health.push({ atMs, ok, detail })
      }).catch((e: Error) => {
        throw this.configChange && e instanceof StepError ? this.blameConfig(e) : e
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
        const busy = oldWorkers(await this.read(), oldPid, newPid).map(p => p.pid)
        const detail =
          `${formatDuration(this.plan.drainTimeoutMs)}: ${busy.length} left (${busy.join(', ')}), ` +
          'held by long requests (downloads, websockets, long polls)'
        if (this.plan.drainTimeoutAction === 'rollback')
          throw new StepError(
            'drain',
            `old workers still busy after drain-timeout ${detail}. Raise drain-timeout, or set drain-timeout-action: proceed to let them finish after the old master is told to QUIT`
          )
        this.drainUnfinished = true
        note(
          `old workers still busy after drain-timeout ${detail}; drain-timeout-action is proceed: the old master is told to QUIT, its workers finish on their own`
        )
      }
    })
  }

  /** A failed health gate while the configuration changed under the old master: say so, not only "the new binary". */
  private blameConfig(e: StepError): StepError {
    const c = this.configChange!
    const facts = this.facts!
    const oldTest = commandLine([`/proc/${facts.masterPid}/exe`, '-t', ...facts.configArgs])
    return new StepError(
      e.step,
      `${e.message}. The configuration changed since the old master started (${c.masterStarted}): ${c.files.join(', ')}; ` +
        `the new master loads it as it is now, so the failure may come from that change rather than from the new binary. ` +
        `Check the change (the old binary's config test: ${oldTest}), then deploy again`
    )
  }

  private async quitOld(): Promise<void> {
    const oldPid = this.facts!.masterPid
    const newPid = this.report.newPid!
    await this.step('quit', async note => {
      await this.plan.hooks?.beforeQuit?.(this.context(note))
      await signal(this.host, SIGNALS.gracefulStop, oldPid)
      note(`sent QUIT to the old master ${oldPid}`)
      // After a drain timeout with proceed, busy old workers keep the old master alive until they finish.
      const unfinished = this.drainUnfinished
      const done = await waitUntilSoon(unfinished ? 2000 : 30_000, this.plan.pollIntervalMs, async () => {
        const snap = await this.read()
        return !isAlive(snap, oldPid) && !snap.oldbinExists && snap.pid === newPid && isAlive(snap, newPid)
          ? snap
          : undefined
      })
      if (!done && unfinished) {
        const snap = await this.read()
        const busy = oldWorkers(snap, oldPid, newPid).map(p => p.pid)
        if (snap.pid === newPid && isAlive(snap, newPid) && acceptingWorkers(snap, oldPid).length === 0) {
          note(
            `the old master ${oldPid} is exiting (it accepts nothing) once its ${busy.length} busy workers (${busy.join(', ')}) ` +
              `finish their requests; ${newPid} serves every new connection`
          )
          return
        }
      }
      if (!done) {
        const snap = await this.read()
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
    const found = await waitUntilSoon(
      this.plan.startTimeoutMs,
      Math.min(this.plan.pollIntervalMs, 100),
      async elapsed => {
        const snap = (last = await this.read())
        if (!isAlive(snap, oldPid)) throw new StepError('usr2', `the old master ${oldPid} died after USR2`)
        const pid = snap.pid
        if (snap.oldbinPid === oldPid && pid !== null && pid !== oldPid && isAlive(snap, pid)) {
          const p = snap.procs.get(pid)!
          const exe = exePath(p)
          const runsNew = this.newIsScript
            ? p.exe !== snap.procs.get(oldPid)?.exe // a script execs something else; never the old file
            : exe.path === live && !exe.replaced
          // All its workers, not the first: WINCH then leaves no capacity missing.
          if (p.ppid === oldPid && runsNew && acceptingWorkers(snap, pid).length >= this.expectedWorkers)
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
      const snap = last ?? (await this.read())
      const partial = snap.pid !== null && snap.pid !== oldPid ? acceptingWorkers(snap, snap.pid).length : 0
      if (partial > 0)
        throw new StepError(
          'usr2',
          `the new master ${snap.pid} started only ${partial} of its ${this.expectedWorkers} workers (worker_processes) within start-timeout ${formatDuration(this.plan.startTimeoutMs)}: ${describe(snap, oldPid)}`
        )
      throw new StepError(
        'usr2',
        `no new master within start-timeout ${formatDuration(this.plan.startTimeoutMs)}: ${describe(snap, oldPid)}`
      )
    }
    const exe = last!.procs.get(found)!.exe
    note(
      `new master ${found} is up with all ${acceptingWorkers(last!, found).length} of its workers (worker_processes ${this.expectedWorkers}), running ${exe}; .oldbin holds the old master ${oldPid}`
    )
    return found
  }

  /**
   * Undo of usr2/winch/health/drain, driven by what the host shows: HUP the old master when WINCH
   * was sent or none of its workers accepts (a worker held by a long request after WINCH is
   * "shutting down" and accepts nothing), so that its workers serve BEFORE the new master stops;
   * then stop every new master (QUIT, TERM, KILL; a new master that never started, e.g. a binary
   * that hangs, goes straight to TERM), and wait until the pid file holds the old pid again and
   * .oldbin is gone.
   */
  async restoreMasters(): Promise<void> {
    const oldPid = this.facts!.masterPid
    const info = (s: string) => this.log.info(`${this.host.name} [rollback] ${s}`)
    let snap = await this.read()
    if (!isAlive(snap, oldPid))
      throw new Error(`the old master ${oldPid} is not running: it cannot be restored`)
    if ((this.winchSent && !this.hupSent) || acceptingWorkers(snap, oldPid).length === 0) {
      await signal(this.host, SIGNALS.restartWorkers, oldPid)
      this.hupSent = true
      info(`sent HUP to the old master ${oldPid}: it starts workers again`)
      const back = await waitUntil(10_000, 50, async () => {
        snap = await this.read()
        return acceptingWorkers(snap, oldPid).length > 0 ? true : undefined
      })
      if (!back)
        throw new Error(
          `the old master ${oldPid} started no workers within 10s of HUP: ${describe(snap, oldPid)}`
        )
      info(
        `the old master's workers ${acceptingWorkers(snap, oldPid)
          .map(p => p.pid)
          .join(', ')} accept again`
      )
    }
    for (const [sig, waitMs] of [
      [SIGNALS.gracefulStop, 10_000],
      ['TERM', 5_000],
      ['KILL', 5_000]
    ] as const) {
      snap = await this.read()
      let news = newMasterCandidates(snap, oldPid)
      // A graceful stop is for a master that started: one that wrote its pid file or has workers.
      if (sig === SIGNALS.gracefulStop)
        news = news.filter(p => snap.pid === p.pid || steadyChildren(snap, p.pid).length > 0)
      if (news.length === 0) continue
      // After a KILL its workers would live on, orphaned, and keep accepting: they go too.
      const targets = sig === 'KILL' ? news.flatMap(p => [p, ...liveChildren(snap, p.pid)]) : news
      for (const p of targets) await signal(this.host, sig, p.pid).catch(() => undefined)
      info(`sent ${sig} to the new master ${news.map(p => `${p.pid} (${p.title || p.exe})`).join(', ')}`)
      await waitUntil(waitMs, 50, async () => {
        snap = await this.read()
        return newMasterCandidates(snap, oldPid).length === 0 ? true : undefined
      })
      if (newMasterCandidates(snap, oldPid).length === 0) break
    }
    const ok = await waitUntil(10_000, 50, async () => {
      snap = await this.read()
      const restored =
        snap.pid === oldPid &&
        !snap.oldbinExists &&
        newMasterCandidates(snap, oldPid).length === 0 &&
        acceptingWorkers(snap, oldPid).length > 0
      return restored ? true : undefined
    })
    if (!ok) throw new Error(`the old master did not take over again: ${describe(snap, oldPid)}`)
    info(`the old master ${oldPid} serves again with ${acceptingWorkers(snap, oldPid).length} workers`)
  }

  private async restoreBinary(): Promise<void> {
    const facts = this.facts!
    await restorePrevious(this.host, facts.livePath, facts.liveSha256)
    const now = await remoteSha256(this.host, facts.livePath)
    if (now !== facts.liveSha256)
      throw new Error(`${facts.livePath} has sha256 ${now} after the restore, expected ${facts.liveSha256}`)
    this.log.info(`${this.host.name} [rollback] ${facts.livePath} is the old binary again`)
  }

  /**
   * Finishes a host that an interrupted run left mid-upgrade (the post step), from what the host
   * shows now and what that run knew before it changed anything (`saved`). With `complete`
   * (the drain had ended: only the old master's QUIT remained) and a new master that serves while
   * the old one has no accepting workers, the upgrade is completed; otherwise the host is rolled
   * back. Every undo reads the host first, so nothing is done twice.
   */
  async recover(
    saved: { masterPid: number; livePath: string; liveSha256: string },
    options: { complete: boolean; reason: string }
  ): Promise<HostReport> {
    this.facts = {
      masterPid: saved.masterPid,
      livePath: saved.livePath,
      liveSha256: saved.liveSha256,
      runningSha256: saved.liveSha256,
      masterExeReplaced: false,
      argv0: saved.livePath,
      configArgs: [],
      version: null,
      arch: '',
      oldWorkerPids: []
    }
    this.report.oldPid = saved.masterPid
    this.report.binaryPath = saved.livePath
    this.report.previousSha256 = saved.liveSha256
    const old = saved.masterPid
    let snap: Snapshot
    try {
      snap = await probe(this.host, this.plan.pidFile)
    } catch (e) {
      this.report.result = 'failed'
      this.report.error = (e as Error).message
      return this.finish()
    }
    const serving = snap.pid !== null && snap.pid !== old && isAlive(snap, snap.pid) ? snap.pid : null
    if (!isAlive(snap, old)) {
      // The QUIT went through before the run was interrupted (or the server was restarted since).
      this.report.newPid = serving ?? undefined
      this.report.result = serving !== null ? 'upgraded' : 'failed'
      if (serving === null)
        this.report.error = `the old master ${old} is gone and no master serves: ${describe(snap, old)}`
      this.log.info(`${this.host.name} [recover] the old master ${old} is gone: ${describe(snap, old)}`)
      return this.finish()
    }
    if (
      options.complete &&
      serving !== null &&
      snap.procs.get(serving)?.ppid === old &&
      acceptingWorkers(snap, serving).length > 0 &&
      acceptingWorkers(snap, old).length === 0
    ) {
      this.report.newPid = serving
      this.log.info(`${this.host.name} [recover] only the QUIT of the old master ${old} remained: completing`)
      try {
        await this.quitOld()
        this.report.result = 'upgraded'
        await this.removeKept()
      } catch (e) {
        this.addUndo('swap', () => this.restoreBinary())
        this.addUndo('usr2', () => this.restoreMasters())
        await this.fail(e as Error)
      }
      return this.finish()
    }
    this.addUndo('swap', () => this.restoreBinary())
    this.addUndo('usr2', () => this.restoreMasters())
    await this.fail(new StepError('rollback', options.reason), { quiet: true })
    return this.finish()
  }

  /** Records the failure and rolls back what was changed, in reverse order. */
  private async fail(error: Error, options: { quiet?: boolean } = {}): Promise<void> {
    const failedStep = error instanceof StepError ? error.step : 'preflight'
    this.report.failedStep = failedStep
    this.report.error = error.message
    if (!options.quiet)
      this.log.error(`${this.host.name}: ${failedStep} failed: ${error.message}`, {
        host: this.host.name,
        step: failedStep
      })
    const changed = this.undos.some(u => u.step !== 'upload')
    if (this.undos.length === 0) {
      this.report.result = 'failed'
      return
    }
    const undos = this.undos.reverse()
    this.undos = []
    try {
      await this.step('rollback', async note => {
        // Inside the step, so its lines sit in the rollback's group; run again on a retry (it only extends).
        if (changed && this.facts)
          await this.plan.hooks
            ?.beforeRollback?.(this.context(note))
            .catch((e: Error) => this.log.warn(`${this.host.name}: ${e.message}`))
        // Every undo runs, even after one failed: the old binary goes back even when the masters could not be restored.
        const errors: string[] = []
        for (const u of undos) {
          try {
            await u.fn()
            note(`undid ${u.step}`)
          } catch (e) {
            // A lost connection runs the whole rollback again (each undo reads the host first).
            if (e instanceof ConnectionLostError) throw e
            errors.push(`undo of ${u.step} failed: ${(e as Error).message}`)
            note(errors.at(-1)!)
          }
        }
        if (errors.length > 0) throw new Error(errors.join('; '))
      })
      this.report.result = changed ? 'rolled-back' : 'failed'
    } catch (e) {
      this.report.result = 'failed'
      this.report.repair = await this.repairAdvice()
      this.report.rollbackError = `${(e as Error).message}. Host state: ${this.report.repair[0]!.replace(/^# state: /, '')}`
      this.log.error(
        `${this.host.name}: the rollback failed: ${this.report.rollbackError}. Repair it on the host:\n${this.report.repair.join('\n')}`,
        { host: this.host.name, step: 'rollback' }
      )
    }
  }

  /**
   * The exact state of a host whose rollback failed (read from the host now), and the commands
   * that repair it: only those that the state calls for.
   */
  private async repairAdvice(): Promise<string[]> {
    const facts = this.facts!
    const oldPid = facts.masterPid
    const pidFile = this.plan.pidFile
    const live = facts.livePath
    const { previous } = sidePaths(live)
    const sudo = this.host.sudo ? 'sudo ' : ''
    let snap: Snapshot | null = null
    let liveSha: string | null | undefined
    let keptSha: string | null | undefined
    try {
      snap = await this.read()
      liveSha = await remoteSha256(this.host, live)
      keptSha = await remoteSha256(this.host, previous)
    } catch {
      /* what could not be read stays unknown */
    }
    const binaryOk = liveSha === facts.liveSha256
    const state = [
      snap ? describe(snap, oldPid) : 'the process state could not be read',
      liveSha === undefined
        ? `${live}: unknown`
        : binaryOk
          ? `${live} is the old binary`
          : `${live} is NOT the old binary (sha256 ${liveSha ?? 'missing'}, the old one is ${facts.liveSha256})`
    ]
    if (!binaryOk && keptSha !== undefined)
      state.push(
        keptSha === facts.liveSha256
          ? `the old binary is kept as ${previous}`
          : `${previous} ${keptSha === null ? 'is missing' : 'is not the old binary'}`
      )
    const lines = [`# state: ${state.join('; ')}`]
    const news = snap ? newMasterCandidates(snap, oldPid).map(p => p.pid) : []
    if (snap === null || !isAlive(snap, oldPid)) {
      lines.push(
        `# the old master ${oldPid} is gone: keep the new master if it serves (check its workers), or start the server again with the old binary`
      )
    } else {
      if (acceptingWorkers(snap, oldPid).length === 0)
        lines.push(
          `# the old master ${oldPid} has no serving workers: bring them back`,
          `${sudo}kill -HUP ${oldPid}`
        )
      if (news.length > 0)
        lines.push(
          `# stop the new master (QUIT; if it stays, TERM, then KILL)`,
          `${sudo}kill -QUIT ${news.join(' ')}`
        )
    }
    if (!binaryOk) {
      if (keptSha === facts.liveSha256)
        lines.push(`# put the old binary back`, `${sudo}mv -f ${previous} ${live}`)
      else
        lines.push(
          `# the old binary is no longer on the host: copy it back to ${live} (sha256 ${facts.liveSha256}), e.g. from the previous build, then check it`,
          `sha256sum ${live}`
        )
    }
    lines.push(
      `# check: the pid file holds ${oldPid}, ${pidFile}.oldbin is gone, and ${live} has sha256 ${facts.liveSha256}`,
      `cat ${pidFile}; ls -l ${pidFile}.oldbin; sha256sum ${live}`
    )
    return lines
  }
}

/** A one-line account of the masters and workers, for error messages. */
export function describe(snap: Snapshot, oldPid: number): string {
  const parts = [
    `pid file: ${snap.pid ?? 'none'}`,
    `.oldbin: ${snap.oldbinExists ? (snap.oldbinPid ?? 'unreadable') : 'none'}`
  ]
  if (!isAlive(snap, oldPid)) parts.push(`old master ${oldPid} gone`)
  else {
    const all = oldWorkers(snap, oldPid, null).length
    const serving = acceptingWorkers(snap, oldPid).length
    parts.push(
      `old master ${oldPid} alive with ${all} workers${serving < all ? ` (${all - serving} shutting down)` : ''}`
    )
  }
  const news = newMasterCandidates(snap, oldPid)
  for (const n of news)
    parts.push(`new master ${n.pid} (${n.title || n.exe}) with ${steadyChildren(snap, n.pid).length} workers`)
  if (snap.pid !== null && snap.pid !== oldPid && !news.some(n => n.pid === snap.pid))
    parts.push(`pid ${snap.pid} ${isAlive(snap, snap.pid) ? 'alive' : 'not running'}`)
  return parts.join('; ')
}
