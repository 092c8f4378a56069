/**
 * The read-only modes over the fleet: plan (what a deploy would do on each host) and status (what
 * each host runs and keeps). Every host is read, many at a time; none is changed, so there are no
 * batches, no canary and no holding. A plan succeeds when every host would upgrade or is
 * unchanged; status when every host could be read.
 */
import type { HostReport, Logger } from '../engine/types.js'
import { connectFailed, connectSlot, type Connect } from '../fleet/connect.js'
import { HostLog, Printer } from '../fleet/host-log.js'
import { Pool } from '../fleet/pool.js'
import type { Slot } from '../fleet/slot.js'
import type { Settings } from '../settings.js'
import type { ReadOnlyMode } from '../settings/modes.js'
import type { UpgradeSource } from '../strategies/strategy.js'
import type { Supervisor } from '../supervisors/supervisor.js'
import { planHost, planToken } from './plan.js'
import { statusHost } from './status.js'

/** Hosts read at the same time, at least (nothing changes on them). */
const READ_WIDTH = 16

export interface ModeResult {
  mode: ReadOnlyMode
  /** plan: every host would upgrade or is unchanged; status: every host was read. */
  ok: boolean
  /** plan: planned or refused; status: listed or failed. */
  result: 'planned' | 'refused' | 'listed' | 'failed'
  hosts: HostReport[]
  /** plan: upgrade, unchanged, refused; status: listed, failed. */
  counts: Record<string, number>
  durationMs: number
  supervisor: string
}

export interface ModeRun {
  settings: Settings & { mode: ReadOnlyMode }
  supervisor: Supervisor
  connect: Connect
  log: Logger
  /** plan: the binary a deploy would send. */
  source?: UpgradeSource
  signal?: AbortSignal
}

export async function runReadOnly(o: ModeRun): Promise<ModeResult> {
  const { settings } = o
  const started = Date.now()
  const out = new Printer(o.log)
  const slots: Slot[] = settings.hosts.map(target => ({ target, batch: 0, log: new HostLog(target.label) }))
  const via = settings.jumpHost ? ` through the jump host ${settings.jumpHost.label}` : ''
  const token = planToken()
  const pool = new Pool(out, () => settings.mode)
  try {
    await pool.each(
      slots,
      settings.mode,
      Math.max(settings.maxParallel, READ_WIDTH),
      async slot => {
        const host = await connectSlot(slot, o.connect, via).catch((e: Error) => {
          connectFailed(slot, e, { via, jumpHost: settings.jumpHost !== undefined })
          return null
        })
        if (host === null) return
        const common = { settings, supervisor: o.supervisor, log: slot.log, signal: o.signal }
        const report =
          settings.mode === 'plan'
            ? await planHost(host, { ...common, source: o.source!, token })
            : await statusHost(host, common)
        if (slot.connectStep) report.steps.unshift(slot.connectStep)
        slot.report = report
      },
      () => o.signal?.aborted === true
    )
  } finally {
    await Promise.allSettled(slots.map(async s => (await s.connecting?.catch(() => undefined))?.close()))
    await out.idle()
  }
  return tallyMode(settings.mode, slots, started, o.supervisor.names.id)
}

function tallyMode(mode: ReadOnlyMode, slots: Slot[], started: number, supervisor: string): ModeResult {
  const hosts = slots.map(s => {
    const r = s.report ?? notReached(s)
    // Not connected (or not reached: the run was cancelled): a deploy would not get through either.
    if (mode === 'plan' && !r.plan)
      r.plan = { verdict: 'refused', step: r.failedStep, message: r.error ?? 'not reached' }
    return r
  })
  const counts: Record<string, number> = {}
  const key = (h: HostReport) =>
    mode === 'plan' ? h.plan!.verdict : h.result === 'unchanged' ? 'listed' : 'failed'
  for (const h of hosts) counts[key(h)] = (counts[key(h)] ?? 0) + 1
  const ok = mode === 'plan' ? !counts.refused : !counts.failed
  return {
    mode,
    ok,
    result: mode === 'plan' ? (ok ? 'planned' : 'refused') : ok ? 'listed' : 'failed',
    hosts,
    counts,
    durationMs: Date.now() - started,
    supervisor
  }
}

function notReached(s: Slot): HostReport {
  const now = new Date().toISOString()
  return {
    host: s.target.label,
    result: 'failed',
    startedAt: now,
    endedAt: now,
    durationMs: 0,
    steps: s.connectStep ? [s.connectStep] : [],
    drain: [],
    health: [],
    error: 'not reached: the run was cancelled'
  }
}

/** The job's failure message for a plan with refusals or a status with unreadable hosts. */
export function modeFailureMessage(run: ModeResult): string {
  const bad = run.hosts.filter(h =>
    run.mode === 'plan' ? h.plan?.verdict === 'refused' : h.result !== 'unchanged'
  )
  const what = run.mode === 'plan' ? 'a deploy would be refused on' : 'could not read'
  const causes = bad.map(
    h =>
      `${h.host}${(h.plan?.step ?? h.failedStep) ? ` at ${h.plan?.step ?? h.failedStep}` : ''}: ${h.plan?.message ?? h.error ?? 'no error recorded'}`
  )
  return `${run.mode}: ${what} ${bad.length} of ${run.hosts.length} host(s): ${causes.join('; ')}`
}
