/** The honest tally of a rollout: each host's result, the overall one, and the failure message. */
import type { HostReport, HostResult, StepName } from '../engine/types.js'
import { passed, untouched, type Slot } from './slot.js'

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
  /** The supervisor that handed over on the hosts (its id: nginx, haproxy, ...). */
  supervisor?: string
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
  if (counts.failed > 0) result = 'failed'
  // Every host held (hold: true), none left otherwise: the hold run's success; any mix is a failure.
  else if (counts.parked > 0)
    result = counts.parked + counts.unchanged === reports.length ? 'parked' : 'failed'
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

/** The rollout's result from its slots: each host's report, the failures in host order, the overall result. */
export function tally(slots: Slot[], started: number): RolloutResult {
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

/**
 * Whether the run did what its mode asked: upgraded (or nothing to do); with hold: true, every
 * host left held; with mode: abort, every held host back on its original process.
 */
export function succeeded(run: RolloutResult, s: { mode: string; hold: boolean }): boolean {
  if (run.result === 'upgraded' || run.result === 'unchanged') return true
  if (run.result === 'parked') return s.hold
  return run.result === 'rolled-back' && s.mode === 'abort'
}
