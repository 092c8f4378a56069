/** Back in the block: the canary at its weight, watched through the load balancer's log, then full weight. */
import { formatDuration } from '../../duration.js'
import { StepError, type StepContext } from '../../engine/step.js'
import { sleep } from './deps.js'
import { emptyTally, formatTally, verdict } from './error-rate.js'
import { type CanaryPlan, shift, type UpstreamParts } from './parts.js'

export async function backIn(p: UpstreamParts, ctx: StepContext): Promise<void> {
  const full = p.lb.fullState(p.state.address)
  if (full.down) {
    ctx.note(`${p.state.address} was down in the block before this run: it stays down`)
    return
  }
  const c = p.canary
  if (c) {
    const backends = await p.lb.traffic.logAddresses(p.state.address)
    const marks = c.durationMs > 0 ? await p.lb.traffic.logMarks() : new Map<string, number>()
    await shift(p, ctx, { down: false, weight: c.weight }, 'canary')
    if (c.durationMs > 0) await watch(p, ctx, c, marks, backends)
  }
  await shift(p, ctx, full, 'full weight')
}

/** The canary's tries through the load balancer, for canary-duration, against max-error-rate. */
async function watch(
  p: UpstreamParts,
  ctx: StepContext,
  c: CanaryPlan,
  marks: Map<string, number>,
  backends: string[]
): Promise<void> {
  const tally = emptyTally()
  const started = Date.now()
  const limit = `max-error-rate ${(c.maxErrorRate * 100).toFixed(2).replace(/\.?0+$/, '')}%`
  ctx.note(
    `watching the canary for ${formatDuration(c.durationMs)} through the load balancer's log (${limit})`
  )
  for (let lastNote = started; ;) {
    const left = c.durationMs - (Date.now() - started)
    if (left > 0) await sleep(Math.min(1000, left))
    const final = Date.now() - started >= c.durationMs
    await p.lb.traffic.tallySince(marks, backends, tally)
    const v = verdict(tally, c.maxErrorRate, final)
    if (v === 'fail')
      throw new StepError(
        'back-in',
        `the canary failed: ${formatTally(tally)} in ${formatDuration(Date.now() - started)}, above ${limit}`
      )
    if (final) {
      if (tally.tries === 0)
        ctx.note(
          `the canary got no request in ${formatDuration(c.durationMs)}: nothing to judge it by (the load balancer's log shows no try at ${backends.join(', ')})`
        )
      else ctx.note(`the canary passed: ${formatTally(tally)} (${limit})`)
      if (tally.foreign > 0)
        ctx.note(`${tally.foreign} line(s) of the log are not in the zerodown format and were not counted`)
      return
    }
    if (Date.now() - lastNote >= 5000) {
      ctx.note(`canary so far: ${formatTally(tally)}`)
      lastNote = Date.now()
    }
  }
}
