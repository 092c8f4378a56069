/**
 * The worker pool: each host's phase (run, commit, abort) in its own log group, `concurrency`
 * at a time — live when one runs alone, held back and printed whole otherwise — and a heartbeat
 * that says which hosts are busy while their lines are held.
 */
import { formatDuration } from '../duration.js'
import type { Printer } from './host-log.js'
import { passed, untouched, type Slot } from './slot.js'

export type Phase = 'prestage' | 'run' | 'commit' | 'abort' | 'release' | 'plan' | 'status' | 'hold'

const PHASE_NAMES: Record<Exclude<Phase, 'run'>, string> = {
  plan: 'plan',
  status: 'status',
  prestage: 'pre-staging',
  commit: 'commit',
  abort: 'fleet rollback',
  release: 'pre-staged file removed',
  hold: 'left held'
}

export class Pool {
  constructor(
    private readonly out: Printer,
    private readonly batchName: (k: number) => string
  ) {}

  /** Runs fn for each slot, `concurrency` at a time; stops starting new ones once stop() says so. */
  async each(
    items: Slot[],
    kind: Phase,
    concurrency: number,
    fn: (slot: Slot) => Promise<void>,
    stop: () => boolean = () => false
  ): Promise<void> {
    const workers = Math.min(concurrency, items.length)
    const live = workers === 1
    let next = 0
    const worker = async () => {
      while (next < items.length && !stop()) {
        const slot = items[next++]!
        await this.phase(slot, kind, live, () => fn(slot))
      }
    }
    await Promise.all(Array.from({ length: workers }, worker))
  }

  /** Runs one host's phase inside its own group: live when it runs alone, held back otherwise. */
  private async phase(slot: Slot, kind: Phase, live: boolean, fn: () => Promise<void>): Promise<void> {
    const out = this.out
    const label = slot.target.label
    const what = kind === 'run' ? this.batchName(slot.batch) : PHASE_NAMES[kind]
    const t0 = Date.now()
    const closing = () => {
      const r = slot.report
      // A plan's host says what a deploy would do (its engine result is `untouched`).
      const result = r?.plan
        ? r.plan.verdict === 'upgrade'
          ? 'would upgrade'
          : r.plan.verdict
        : (r?.result ?? 'failed')
      const at = r?.failedStep && kind !== 'abort' && !passed(r) ? ` at ${r.failedStep}` : ''
      return `${label}: ${result}${at} (${what}, ${formatDuration(Date.now() - t0)})`
    }
    const guarded = async () => {
      try {
        await fn()
      } catch (e) {
        // The engine catches its own failures; this is a bug of ours: say so, never hide it.
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
}

/** While hosts in parallel hold their lines back, a line every `ms` says which are busy. */
export function heartbeat(out: Printer, slots: Slot[], ms: number): NodeJS.Timeout {
  const timer = setInterval(() => {
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
  }, ms)
  timer.unref?.()
  return timer
}
