/**
 * The hot upgrade as a strategy: a hand-over on the host through a Supervisor (nginx today).
 * `hotUpgrade(plan).plan(host, source, log)` gives one host's steps; the engine runs them.
 */
import { quote } from '../../host/quote.js'
import { privilegedCommand } from '../../host/advice.js'
import type { Step } from '../../engine/step.js'
import type { Host } from '../../host/host.js'
import type { Supervisor, SupervisorSession } from '../../supervisors/supervisor.js'
import type { HostPlan, HostState, Strategy, UpgradeSource } from '../strategy.js'
import { remoteSha256, sendSwap, sidePaths, SWAPPED_GATE } from './install.js'
import type { UpgradePlan } from './plan.js'
import {
  changeSteps,
  inspectSteps,
  readAhead,
  restoreBinary,
  stageSteps,
  type HotUpgradeParts
} from './steps.js'
import { retireStep, tidyStep } from './retire.js'

export { planFrom, type UpgradePlan } from './plan.js'

/** One host's hot upgrade: its steps, plus what the post step needs to finish an interrupted one. */
export interface HotUpgradeHost extends HostPlan {
  readonly session: SupervisorSession
  /** The steps whose undos bring the old version back (the file, then the processes), in run order. */
  readonly revertSteps: readonly Step[]
  /** The retire step alone (the post step completes a run that only had it left). */
  readonly retire: Step
}

export function hotUpgrade(
  plan: UpgradePlan,
  supervisor: Supervisor
): Strategy & {
  plan(host: Host, source: UpgradeSource): HotUpgradeHost
} {
  return {
    id: 'hot-upgrade',
    title: `hot upgrade (${supervisor.names.title})`,
    canHold: supervisor.capabilities.canHold,
    plan(host: Host, source: UpgradeSource): HotUpgradeHost {
      const state: HostState = { host, source, running: null }
      const session = supervisor.open(host, {
        pidFile: plan.pidFile,
        binaryPath: plan.binaryPath,
        pollIntervalMs: plan.pollIntervalMs,
        releaseDir: plan.releaseDir,
        masterUser: plan.masterUser
      })
      const p: HotUpgradeParts = {
        host,
        plan,
        state,
        session,
        names: supervisor.names,
        revert: supervisor.capabilities.revert
      }
      const change = changeSteps(p)
      return {
        state,
        session,
        steps: [
          ...inspectSteps(p),
          ...stageSteps(p),
          ...change,
          retireStep(p, { tidyLater: true }),
          tidyStep(p)
        ],
        anchors: { inspected: 'preflight', verified: 'verify' },
        revertSteps: change.slice(0, 2),
        retire: retireStep(p),
        repair: () => repairAdvice(p),
        prefetch: server => {
          session.prefetch?.(server)
          if (server) readAhead(p, server.livePath)
        },
        retireAhead: gate => session.retireAhead?.(gate),
        changeAhead: gate => {
          const live = state.running?.livePath
          const swap = live ? sendSwap(host, live, state.source.sha256, gate) : null
          if (swap === null) return
          state.swapAhead = swap
          // The start right behind it, needing the swap's own gate.
          state.startSentAhead = session.startAhead?.(SWAPPED_GATE) ?? false
        }
      }
    }
  }
}

/**
 * The exact state of a host whose rollback failed (read from the host now), and the commands
 * that repair it: only those that the state calls for.
 */
async function repairAdvice(p: HotUpgradeParts): Promise<string[]> {
  const r = p.state.running!
  const live = r.livePath
  const { previous } = sidePaths(live)
  const procs = await p.session.repairAdvice()
  let liveSha: string | null | undefined
  let keptSha: string | null | undefined
  try {
    liveSha = await remoteSha256(p.host, live)
    keptSha = await remoteSha256(p.host, previous)
  } catch {
    /* what could not be read stays unknown */
  }
  const binaryOk = liveSha === r.liveSha256
  const state = [
    procs.state,
    liveSha === undefined
      ? `${live}: unknown`
      : binaryOk
        ? `${live} is the old binary`
        : `${live} is NOT the old binary (sha256 ${liveSha ?? 'missing'}, the old one is ${r.liveSha256})`
  ]
  if (!binaryOk && keptSha !== undefined)
    state.push(
      keptSha === r.liveSha256
        ? `the old binary is kept as ${previous}`
        : `${previous} ${keptSha === null ? 'is missing' : 'is not the old binary'}`
    )
  const lines = [`# state: ${state.join('; ')}`, ...procs.commands]
  if (!binaryOk) {
    if (keptSha === r.liveSha256)
      lines.push(`# put the old binary back`, privilegedCommand(p.host, ['mv', '-f', '--', previous, live]))
    else
      lines.push(
        `# the old binary is no longer on the host: copy it back to ${live} (sha256 ${r.liveSha256}), e.g. from the previous build, then check it`,
        `sha256sum -- ${quote(live)}`
      )
  }
  lines.push(
    `# check: ${procs.check.says}, and ${live} has sha256 ${r.liveSha256}`,
    `${procs.check.command}; sha256sum -- ${quote(live)}`
  )
  return lines
}

export { restoreBinary }
