/** The point of no return (the supervisor's retire), and the kept old binary's removal after it. */
import type { Step } from '../../engine/step.js'
import type { Logger } from '../../engine/types.js'
import { visible } from '../../host/trace.js'
import { PLAN_LEFTOVERS, sidePaths } from './install.js'
import { running, type HotUpgradeParts } from './steps.js'

/**
 * The point of no return: the old server is retired. With `tidyLater`, the kept old binary's
 * removal is sent without waiting for its answer, which comes with the next step's (the release
 * store's record): `tidyStep` then awaits it. Without, it is awaited here (a retire run alone).
 */
export function retireStep(p: HotUpgradeParts, o: { tidyLater?: boolean } = {}): Step {
  return {
    name: p.names.steps.retire,
    stage: 'commit',
    onCancel: 'finish',
    async run(ctx) {
      await p.session.retire(ctx, {
        unfinished: p.state.drainUnfinished === true,
        intervalMs: p.plan.pollIntervalMs
      })
      p.state.keptRemoval = removeKept(p, ctx.log)
      if (!o.tidyLater) await p.state.keptRemoval
    }
  }
}

/** The kept old binary's removal, sent by the retire step, awaited (a failure only warns). */
export function tidyStep(p: HotUpgradeParts): Step {
  return {
    name: 'tidy',
    stage: 'after',
    async run(ctx) {
      ctx.sent?.() // it sends nothing: the removal went with the retire
      await p.state.keptRemoval
    }
  }
}

/**
 * After success nothing of ours stays beside the live binary (on a distribution host that is
 * /usr/sbin, where no package owns a stray file): the old build lives in the release store.
 * Past the point of no return, so a failure only warns.
 */
async function removeKept(p: HotUpgradeParts, log: Logger): Promise<void> {
  const live = running(p).livePath
  const { previous } = sidePaths(live)
  const removing = p.host.run(['rm', '-f', '--', previous], { sudo: p.host.sudo }).catch(e => e as Error)
  // What a plan killed outright left (the helper has no command for it: left to be removed by hand).
  const plans =
    p.host.sudo && p.host.privileged
      ? null
      : p.host.run(['sh', '-c', PLAN_LEFTOVERS, 'sh', live], { sudo: p.host.sudo }).catch(e => e as Error)
  const r = await removing
  if (r instanceof Error || r.code !== 0)
    log.warn(
      `${p.host.name}: cannot remove the kept old binary ${previous} (${r instanceof Error ? r.message : r.stderr.trim()}); remove it by hand`
    )
  const left = await plans
  if (left && !(left instanceof Error))
    for (const f of left.stdout.split('\n').filter(l => l !== ''))
      log.info(`${p.host.name} [tidy] removed ${visible(f)}, left by a plan that stopped an hour ago or more`)
}
