/**
 * The release store in a plan: read, never written. What a deploy's store steps decide (the live
 * version, a downgrade refused or allowed) is decided the same way and recorded in the host's
 * plan; what a deploy would write (the running build recorded, a corrected live mark) is noted.
 */
import { insertAfter, StepError, type Step } from '../engine/index.js'
import type { HostReport, PlanVerdict } from '../engine/types.js'
import type { Host } from '../host/host.js'
import type { HostPlan } from '../strategies/strategy.js'
import {
  describeChange,
  downgradeProblem,
  releaseRows,
  StoreError,
  versionChange,
  versionText
} from './state.js'
import type { ReleaseOptions } from './steps.js'
import { ReleaseStore } from './store.js'

const short = (s: string) => s.slice(0, 12)

const refuse = (step: 'preflight' | 'verify', e: unknown): never => {
  throw e instanceof StoreError ? new StepError(step, e.message) : e
}

/** The host's plan record, created by the first step that learns something. */
function planOf(report: HostReport): PlanVerdict {
  report.plan ??= { verdict: 'upgrade' }
  return report.plan
}

/** The strategy's steps with the store's read-only part slotted in at its anchors. */
export function withPreviewSteps(plan: HostPlan, o: ReleaseOptions): Step[] {
  const known = { liveVersion: null as string | null }
  const steps = insertAfter(plan.steps, plan.anchors.inspected, previewStore(plan, o, known))
  return insertAfter(steps, plan.anchors.verified, previewVersions(o, known))
}

/**
 * Whether the store (or the folder it would be created in) is writable as a deploy writes it: a
 * plan writes nothing, so this is the only way it sees a deploy refused there.
 */
async function checkWritable(host: Host, dir: string): Promise<void> {
  const r = await host.run(
    [
      'sh',
      '-c',
      'd=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; test -w "$d" || echo "$d"',
      'sh',
      dir
    ],
    { sudo: host.sudo }
  )
  const denied = r.stdout.trim()
  if (r.code === 0 && denied === '') return
  throw new StepError(
    'preflight',
    `release-dir ${dir}: the deploy user cannot write ${denied || dir} on ${host.name}, so a deploy would be refused there. ` +
      'Let the deploy user write that folder, set sudo: true, or set release-dir to a folder it can write'
  )
}

/** After inspection: the store read; the live version; a downgrade by the version input refused as a deploy would. */
function previewStore(plan: HostPlan, o: ReleaseOptions, known: { liveVersion: string | null }): Step {
  const st = plan.state
  return {
    name: 'releases',
    stage: 'prepare',
    async run({ host, report, note }) {
      const r = st.running!
      const store = ReleaseStore.forLive(host, o.releaseDir, r.livePath)
      const state = await store.read().catch(e => refuse('preflight', e))
      await checkWritable(host, store.dir)
      report.releases = releaseRows(state)
      const live = state.releases.find(x => x.sha256 === r.runningSha256)
      known.liveVersion = live?.version ?? versionText(r.version)
      report.previousVersion = known.liveVersion ?? undefined
      if (!live)
        note(
          `release store ${store.dir}: the running build (sha256 ${short(r.runningSha256)}) is not in it yet; a deploy records it first`
        )
      else if (state.live !== r.runningSha256)
        note(
          `release store ${store.dir} names ${state.live ? short(state.live) : 'no release'} live, but the host runs ${short(r.runningSha256)}; a deploy corrects it`
        )
      // As a deploy does: with the version input, a downgrade is refused before anything is sent.
      if (st.source.sha256 === r.runningSha256) return
      checkDowngrade(planOf(report), versionText(o.version), known.liveVersion, o, 'preflight', note)
    }
  }
}

/** After verify: the versions known, the change described, a downgrade refused or allowed. */
function previewVersions(o: ReleaseOptions, known: { liveVersion: string | null }): Step {
  return {
    name: 'versions',
    stage: 'prepare',
    async run({ report, note }) {
      const newVersion = versionText(o.version) ?? versionText(report.version)
      report.version = newVersion ?? undefined
      report.previousVersion = known.liveVersion ?? undefined
      const plan = planOf(report)
      plan.change = describeChange(known.liveVersion, newVersion)
      checkDowngrade(plan, newVersion, known.liveVersion, o, 'verify', note)
      note(`a deploy would change the version ${plan.change}`)
    }
  }
}

function checkDowngrade(
  plan: PlanVerdict,
  newVersion: string | null,
  liveVersion: string | null,
  o: ReleaseOptions,
  step: 'preflight' | 'verify',
  note: (s: string) => void
): void {
  const c = versionChange(newVersion, liveVersion)
  if (c === null || c.order >= 0) return
  const problem = downgradeProblem(newVersion, liveVersion, o.allowDowngrade)
  if (problem) {
    plan.downgrade = 'refused'
    throw new StepError(step, problem)
  }
  plan.downgrade = 'allowed'
  note(`${newVersion} is lower than the live ${liveVersion}: a downgrade, allowed by allow-downgrade`)
}
