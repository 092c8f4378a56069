/**
 * Many hosts: a canary first, then batches of max-parallel hosts in parallel, one SSH connection
 * per host, and an honest overall result.
 *
 * With rollback-fleet (the default) every host stops after its drain with its old master parked
 * (holding only its listening sockets, see PROTOCOL.md "Fleets"). When every host has passed,
 * one QUIT per host commits the fleet; when any host fails, no further host starts and every
 * parked host goes back to its original master (HUP old, QUIT new, old binary back). With
 * rollback-fleet: false each host commits as soon as it passes, and a failure only stops the run.
 *
 * Logs: GitHub groups cannot nest or interleave. Each host logs into its own HostLog; a host
 * running alone streams its lines live, one group per step, hosts running in parallel hold theirs
 * back and print them as one group per host when its phase ends. All output goes through one
 * queue (Printer), so groups never mix.
 */
import { formatDuration } from './duration.js'
import type { Host } from './host/host.js'
import type { HostTarget, Settings } from './settings.js'
import { HostUpgrade, type UpgradePlan } from './upgrade/machine.js'
import type { HostReport, HostResult, Logger, LogWhere, StepName, StepReport } from './upgrade/types.js'

/** A host that failed by itself (not one rolled back because another failed). */
export interface HostFailure {
  host: string
  step?: StepName
  error: string
  /** What became of it: rolled-back (its own rollback worked) or failed. */
  result: HostResult
}

export interface RolloutResult {
  result: HostResult
  hosts: HostReport[]
  durationMs: number
  counts: Record<HostResult, number>
  /** Hosts that failed by themselves, in host order; empty on success. */
  failures: HostFailure[]
}

export interface RolloutDeps {
  /** Opens the one connection of a host; its own messages (reconnects) go to that host's log. */
  connect(target: HostTarget, log: Logger): Promise<Host>
  log: Logger
  /** While hosts in parallel hold their lines back, a line this often says which are busy. Default 30 s. */
  heartbeatMs?: number
}

export function planFrom(settings: Settings, source: UpgradePlan['source']): UpgradePlan {
  return {
    pidFile: settings.pidFile,
    binaryPath: settings.binaryPath,
    releaseDir: settings.releaseDir,
    masterUser: settings.masterUser,
    source,
    startTimeoutMs: settings.startTimeoutMs,
    pollIntervalMs: settings.pollIntervalMs,
    drainTimeoutMs: settings.drainTimeoutMs,
    drainTimeoutAction: settings.drainTimeoutAction,
    health: {
      url: settings.healthUrl,
      command: settings.healthCommand,
      expect: settings.healthExpect,
      checks: settings.healthChecks,
      intervalMs: settings.healthIntervalMs,
      timeoutMs: settings.healthTimeoutMs
    }
  }
}

/**
 * The batches, as host indexes in rollout order. With canary > 0, batch 0 holds the first
 * `canary` hosts (run at most maxParallel at a time); the rest follow in batches of maxParallel.
 */
export function planBatches(hostCount: number, canary: number, maxParallel: number): number[][] {
  const width = Math.max(1, Math.floor(maxParallel))
  const head = Math.min(Math.max(0, Math.floor(canary)), hostCount)
  const batches: number[][] = []
  if (head > 0) batches.push(range(0, head))
  for (let i = head; i < hostCount; i += width) batches.push(range(i, Math.min(i + width, hostCount)))
  return batches
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i)
}

/**
 * The overall result. upgraded (or unchanged) only when every host ended so; rolled-back only
 * when no host was left on the new version and every changed host is back; anything else,
 * a partial rollout included, is failed.
 */
export function overall(reports: HostReport[]): { result: HostResult; counts: Record<HostResult, number> } {
  const counts: Record<HostResult, number> = {
    upgraded: 0,
    'rolled-back': 0,
    unchanged: 0,
    failed: 0,
    untouched: 0,
    parked: 0
  }
  for (const r of reports) counts[r.result]++
  let result: HostResult
  if (counts.failed > 0 || counts.parked > 0) result = 'failed'
  else if (counts['rolled-back'] > 0) result = counts.upgraded > 0 ? 'failed' : 'rolled-back'
  else if (counts.untouched > 0) result = 'failed'
  else if (counts.upgraded > 0) result = 'upgraded'
  else result = 'unchanged'
  return { result, counts }
}

/** The job's failure message: what failed, and how many hosts ended in each state. */
export function failureMessage(run: RolloutResult): string {
  const c = run.counts
  const n = run.hosts.length
  const tally =
    `${n} host${n === 1 ? '' : 's'}: ${c.upgraded} upgraded, ${c['rolled-back']} rolled back, ` +
    `${c.failed} failed, ${c.untouched} untouched` +
    (c.unchanged > 0 ? `, ${c.unchanged} unchanged` : '') +
    (c.parked > 0 ? `, ${c.parked} left parked` : '')
  const causes = run.failures.map(
    f =>
      `${f.host} failed${f.step ? ` at ${f.step}` : ''}${f.result === 'rolled-back' ? ' (rolled back)' : ''}: ${f.error}`
  )
  const parts = [`${run.result}: ${causes.join('; ') || 'the rollout did not complete'}`, tally]
  const unrepaired = run.hosts.filter(h => h.rollbackError !== undefined)
  for (const h of unrepaired)
    parts.push(
      `${h.host} could not be rolled back (${h.rollbackError}); its state and the commands that repair it are in the report output`
    )
  if (run.result === 'rolled-back') parts.push('The old version is serving on every host this run changed')
  else if (c.upgraded > 0 && c.upgraded < n)
    parts.push(`${c.upgraded} host(s) run the new version and the others do not: the fleet is mixed`)
  return parts.join('. ') + '.'
}

// ---------------------------------------------------------------------------------------------
// Output

type Level = 'info' | 'warn' | 'error'

/** All output of a rollout goes through this queue, so that host groups never nest or interleave. */
class Printer {
  private tail: Promise<void> = Promise.resolve()

  constructor(readonly log: Logger) {}

  /** Runs fn once everything queued before it was printed. */
  enqueue(fn: () => Promise<unknown> | void): Promise<void> {
    const next = this.tail.then(async () => {
      await fn()
    })
    this.tail = next.catch(() => undefined)
    return this.tail
  }

  line(level: Level, message: string, where?: LogWhere): void {
    void this.enqueue(() => (level === 'info' ? this.log.info(message) : this.log[level](message, where)))
  }

  idle(): Promise<void> {
    return this.tail
  }
}

/**
 * One host's log. Every line carries the host's name. Lines are held until the host's output is
 * attached, then go straight through. A host running alone (live) keeps the machine's per-step
 * groups, one collapsible group per step; a host whose lines were held prints them inside one
 * group of its own, where the steps become plain lines (groups cannot nest).
 */
class HostLog implements Logger {
  private held: { level: Level; message: string; where?: LogWhere }[] = []
  private sink: Logger | null = null
  private live = false
  /** The latest line, for the heartbeat. */
  last = ''

  constructor(readonly name: string) {}

  info(message: string): void {
    this.emit('info', message)
  }
  warn(message: string, where?: LogWhere): void {
    this.emit('warn', message, where)
  }
  error(message: string, where?: LogWhere): void {
    this.emit('error', message, where)
  }
  group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    return this.sink && this.live ? this.sink.group(title, fn) : fn()
  }

  private emit(level: Level, text: string, where?: LogWhere): void {
    const message = text.includes(this.name) ? text : `${this.name}: ${text}`
    const at = { host: this.name, ...where }
    this.last = message.replace(this.name, '').replace(/^[\s:]+/, '')
    if (!this.sink) this.held.push({ level, message, where: at })
    else if (level === 'info') this.sink.info(message)
    else this.sink[level](message, at)
  }

  /** Prints the held lines to sink, and every new line until detach; live keeps step groups. */
  attach(sink: Logger, live = false): void {
    this.sink = sink
    this.live = live
    const held = this.held
    this.held = []
    for (const l of held) {
      if (l.level === 'info') sink.info(l.message)
      else sink[l.level](l.message, l.where)
    }
  }

  /** Lines still held (a host connected ahead of a batch that never started, say). */
  get pending(): boolean {
    return this.held.length > 0
  }

  detach(): void {
    this.sink = null
    this.live = false
  }
}

// ---------------------------------------------------------------------------------------------
// The rollout

interface Slot {
  target: HostTarget
  batch: number
  log: HostLog
  connecting?: Promise<Host>
  connectStep?: StepReport
  upgrade?: HostUpgrade
  report?: HostReport
  /** Rolled back because another host failed. */
  aborted?: boolean
  /** In a phase whose lines are held back (for the heartbeat). */
  busySince?: number
}

type Phase = 'run' | 'commit' | 'abort'

/** Hosts committed or rolled back at the same time, at least. */
const FINISH_WIDTH = 16

function untouched(slot: Slot): HostReport {
  const now = new Date().toISOString()
  return {
    host: slot.target.label,
    result: 'untouched',
    startedAt: now,
    endedAt: now,
    durationMs: 0,
    steps: slot.connectStep ? [slot.connectStep] : [],
    drain: [],
    health: [],
    batch: slot.batch
  }
}

const passed = (r: HostReport | undefined) =>
  r !== undefined && (r.result === 'parked' || r.result === 'upgraded' || r.result === 'unchanged')

export async function runRollout(
  settings: Settings,
  plan: UpgradePlan,
  deps: RolloutDeps
): Promise<RolloutResult> {
  const started = Date.now()
  const out = new Printer(deps.log)
  const batches = planBatches(settings.hosts.length, settings.canary, settings.maxParallel)
  const slots: Slot[] = settings.hosts.map(target => ({
    target,
    batch: 0,
    log: new HostLog(target.label)
  }))
  batches.forEach((b, k) => b.forEach(i => (slots[i]!.batch = k)))
  const park = settings.rollbackFleet && slots.length > 1
  const hasCanary = settings.canary > 0 && slots.length > 1
  const width = settings.maxParallel
  // Commit (QUIT of an old master without workers) and fleet rollback (HUP old, QUIT new) barely
  // touch what a host serves, and a fleet rollback must be quick: at least FINISH_WIDTH at a time.
  const finishWidth = Math.max(width, FINISH_WIDTH)
  const via = settings.jumpHost ? ` through the jump host ${settings.jumpHost.label}` : ''
  const batchName = (k: number): string => {
    if (hasCanary) return k === 0 ? 'canary' : `batch ${k} of ${batches.length - 1}`
    return batches.length === 1 ? 'upgrade' : `batch ${k + 1} of ${batches.length}`
  }

  const connect = (slot: Slot): Promise<Host> => {
    if (!slot.connecting) {
      const rec: StepReport = {
        name: 'connect',
        startedAt: new Date().toISOString(),
        endedAt: '',
        ms: 0,
        outcome: 'ok',
        observations: []
      }
      slot.connectStep = rec
      const t0 = Date.now()
      slot.connecting = deps.connect(slot.target, slot.log).then(
        host => {
          rec.ms = Date.now() - t0
          rec.endedAt = new Date().toISOString()
          rec.observations.push(`connected${via}`)
          slot.log.info(`${slot.target.label} [connect] connected${via} in ${formatDuration(rec.ms)}`)
          return host
        },
        (e: Error) => {
          rec.ms = Date.now() - t0
          rec.endedAt = new Date().toISOString()
          rec.outcome = 'failed'
          rec.observations.push(e.message)
          throw e
        }
      )
      // A connection opened ahead of its batch may fail unobserved: its batch reports it.
      slot.connecting.catch(() => undefined)
    }
    return slot.connecting
  }

  /** Runs one host's phase inside its own group: live when it runs alone, held back otherwise. */
  const phase = async (slot: Slot, kind: Phase, live: boolean, fn: () => Promise<void>): Promise<void> => {
    const label = slot.target.label
    const what = kind === 'run' ? batchName(slot.batch) : kind === 'commit' ? 'commit' : 'fleet rollback'
    const t0 = Date.now()
    const closing = () => {
      const r = slot.report
      const result = r?.result ?? 'failed'
      const at = r?.failedStep && kind !== 'abort' && !passed(r) ? ` at ${r.failedStep}` : ''
      return `${label}: ${result}${at} (${what}, ${formatDuration(Date.now() - t0)})`
    }
    const guarded = async () => {
      try {
        await fn()
      } catch (e) {
        // The machine catches its own failures; this is a bug of ours: say so, never hide it.
        const message = `internal error during ${what}: ${(e as Error).stack ?? (e as Error).message}`
        slot.log.error(message, { step: kind })
        slot.report = slot.upgrade?.report ?? untouched(slot)
        slot.report.result = 'failed'
        slot.report.error ??= message
      }
    }
    if (live) {
      let finish!: () => void
      const finished = new Promise<void>(r => (finish = r))
      // Alone: each step streams as its own group, between a heading and a closing line.
      const printed = out.enqueue(async () => {
        out.log.info(`${label}: ${what}`)
        slot.log.attach(out.log, true)
        await finished
        out.log.info(closing())
        slot.log.detach()
      })
      try {
        await guarded()
      } finally {
        finish()
      }
      await printed
    } else {
      slot.busySince = Date.now()
      try {
        await guarded()
      } finally {
        slot.busySince = undefined
        const title = closing()
        void out.enqueue(() =>
          out.log.group(title, async () => {
            slot.log.attach(out.log)
            slot.log.detach()
          })
        )
      }
    }
  }

  /** Runs fn for each slot, `concurrency` at a time; stops starting new ones once stop() says so. */
  const pool = async (
    items: Slot[],
    kind: Phase,
    concurrency: number,
    fn: (slot: Slot) => Promise<void>,
    stop: () => boolean = () => false
  ): Promise<void> => {
    const workers = Math.min(concurrency, items.length)
    const live = workers === 1
    let next = 0
    const worker = async () => {
      while (next < items.length && !stop()) {
        const slot = items[next++]!
        await phase(slot, kind, live, () => fn(slot))
      }
    }
    await Promise.all(Array.from({ length: workers }, worker))
  }

  const runOne = async (slot: Slot): Promise<void> => {
    let host: Host
    try {
      host = await connect(slot)
    } catch (e) {
      const err = e as Error
      const cause = err.message.startsWith(`${slot.target.label}: `)
        ? err.message.slice(slot.target.label.length + 2)
        : err.message
      // A refused host key says what to do itself; anything else is the address, sshd, credentials.
      const hint =
        err.name === 'HostKeyError'
          ? ''
          : `. Check the host and port in hosts${settings.jumpHost ? ' and jump-host' : ''}, that sshd runs there, ` +
            'the user and key, and connect-timeout'
      const error = `${cause}${via ? ` (connecting${via})` : ''}${hint}`
      slot.log.error(`${slot.target.label} [connect] ${error}`, { step: 'connect' })
      slot.report = { ...untouched(slot), result: 'failed', failedStep: 'connect', error }
      return
    }
    const upgrade = new HostUpgrade(host, plan, slot.log)
    slot.upgrade = upgrade
    upgrade.report.batch = slot.batch
    if (slot.connectStep) upgrade.report.steps.push(slot.connectStep)
    // slot.report is set once the phase is over: until then the host counts as running.
    slot.report = await upgrade.run({ park })
  }

  const heartbeat = setInterval(() => {
    const busy = slots.filter(s => s.busySince !== undefined)
    if (busy.length === 0) return
    out.line(
      'info',
      `still working on ${busy.length} host(s): ` +
        busy
          .map(
            s =>
              `${s.target.label} (${formatDuration(Date.now() - s.busySince!)}; last: ${s.log.last || 'connecting'})`
          )
          .join('; ')
    )
  }, deps.heartbeatMs ?? 30_000)
  heartbeat.unref?.()

  let stopped = false
  /** The job was cancelled: no host starts any more, and the parked ones go back (the machine rolls back the running ones). */
  const cancelled = () => plan.signal?.aborted === true
  try {
    if (slots.length > 1) out.line('info', describePlan(settings, batches, hasCanary, park))
    for (const [k, batch] of batches.entries()) {
      if (cancelled()) {
        stopped = true
        out.line('warn', `the run was cancelled before the ${batchName(k)}: no further host starts`, {
          step: 'rollout'
        })
        break
      }
      const members = batch.map(i => slots[i]!)
      const failedIn = () => members.filter(s => s.report !== undefined && !passed(s.report))
      // The next batch connects while this one runs: connecting changes nothing on a host.
      for (const i of batches[k + 1] ?? []) void connect(slots[i]!)
      if (slots.length > 1)
        out.line(
          'info',
          `${batchName(k)}: ${members.map(s => s.target.label).join(', ')}` +
            (members.length > 1 ? ` (${Math.min(width, members.length)} at a time)` : '')
        )
      // Within a batch larger than max-parallel (a big canary), a failure stops further starts.
      await pool(members, 'run', width, runOne, () => failedIn().length > 0 || cancelled())
      const failed = failedIn()
      if (failed.length > 0) {
        stopped = true
        const upgradedSoFar = slots.filter(s => s.report?.result === 'parked').length
        const where = hasCanary && k === 0 ? 'the canary' : batchName(k)
        out.line(
          cancelled() ? 'warn' : 'error',
          (cancelled()
            ? `the run was cancelled during ${where}: no further host starts`
            : `${failed.map(s => s.target.label).join(', ')} failed in ${where}: no further host starts`) +
            (park
              ? `; the ${upgradedSoFar} host(s) upgraded in this run go back to their old masters (rollback-fleet)`
              : settings.rollbackFleet
                ? ''
                : '; rollback-fleet is false: hosts already upgraded keep the new version'),
          { step: 'rollout' }
        )
        break
      }
    }
  } catch (e) {
    stopped = true
    out.line('error', `the rollout stopped on an internal error: ${(e as Error).message}`, {
      step: 'rollout'
    })
  } finally {
    const parked = slots.filter(s => s.report?.result === 'parked')
    try {
      if (parked.length > 0 && !stopped) {
        out.line(
          'info',
          `every host passed: committing ${parked.length} host(s) (QUIT to each parked old master)`
        )
        await pool(parked, 'commit', finishWidth, async s => {
          s.report = await s.upgrade!.commit()
          if (s.report.result !== 'upgraded')
            s.log.error(`${s.target.label}: the commit failed: ${s.report.error ?? 'unknown error'}`, {
              step: 'quit'
            })
        })
      } else if (parked.length > 0) {
        const cause = slots
          .filter(s => s.report !== undefined && !passed(s.report))
          .map(s => `${s.target.label} failed at ${s.report!.failedStep ?? 'an unknown step'}`)
          .join(', ')
        const reason = `fleet rollback: ${cancelled() ? 'the run was cancelled' : cause || 'the rollout stopped'}`
        await pool(parked, 'abort', finishWidth, async s => {
          s.aborted = true
          s.report = await s.upgrade!.abort(reason)
          if (s.report.result !== 'rolled-back')
            s.log.error(
              `${s.target.label}: the fleet rollback of this host failed: ${s.report.rollbackError ?? s.report.error}; ` +
                `repair it by hand: ${(s.report.repair ?? []).filter(l => !l.startsWith('#')).join('; ')}`,
              { step: 'rollback' }
            )
        })
      }
    } finally {
      clearInterval(heartbeat)
      await Promise.allSettled(
        slots.map(async s => {
          const host = await s.connecting?.catch(() => undefined)
          await host?.close()
        })
      )
      // Lines no phase printed yet (a connection opened ahead of a batch that never started).
      for (const s of slots.filter(x => x.log.pending))
        void out.enqueue(() =>
          out.log.group(`${s.target.label}: ${s.report?.result ?? 'untouched'}`, async () => {
            s.log.attach(out.log)
            s.log.detach()
          })
        )
      await out.idle()
    }
  }

  const hosts = slots.map(s => s.report ?? untouched(s))
  const failures: HostFailure[] = slots
    .filter(s => s.report !== undefined && !s.aborted && !passed(s.report))
    .map(s => ({
      host: s.target.label,
      step: s.report!.failedStep,
      error: s.report!.error ?? 'no error recorded',
      result: s.report!.result
    }))
  // A parked host whose abort failed counts among the failures too.
  for (const s of slots)
    if (s.aborted && s.report?.result === 'failed')
      failures.push({
        host: s.target.label,
        step: 'rollback',
        error: s.report.rollbackError ?? s.report.error ?? 'the fleet rollback failed',
        result: 'failed'
      })
  const { result, counts } = overall(hosts)
  return { result, hosts, durationMs: Date.now() - started, counts, failures }
}

function describePlan(settings: Settings, batches: number[][], hasCanary: boolean, park: boolean): string {
  const n = settings.hosts.length
  if (n === 1) return `rollout: 1 host`
  const rest = hasCanary ? batches.slice(1) : batches
  const restHosts = rest.reduce((sum, b) => sum + b.length, 0)
  const parts = [`rollout: ${n} hosts`]
  if (hasCanary) parts.push(`canary ${batches[0]!.length} host(s) first`)
  if (restHosts > 0)
    parts.push(
      `${hasCanary ? 'then ' : ''}${restHosts} host(s) in ${rest.length} batch(es) of up to ${settings.maxParallel} in parallel (max-parallel)`
    )
  parts.push(
    park
      ? 'each old master stays parked until every host has passed; a failure rolls back the whole fleet (rollback-fleet)'
      : 'each host commits as soon as it passes; a failure stops the rollout without rolling back the others (rollback-fleet: false)'
  )
  return parts.join(', ')
}
