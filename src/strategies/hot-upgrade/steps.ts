/**
 * The steps of a hand-over on the host, as data:
 *
 *   preflight → upload → verify → swap → start → [isolate] → health → drain → (hold) → retire → tidy
 *
 * The protocol is the supervisor's; the binary file's moves (stage, swap, restore) are here, the
 * retire and what follows it in retire.ts.
 * Each step reads the host back before acting when it runs again after a lost connection.
 */
import { formatDuration } from '../../duration.js'
import { StepError, type Step } from '../../engine/step.js'
import type { Logger } from '../../engine/types.js'
import type { Host } from '../../host/host.js'
import type {
  SupervisorCapabilities,
  SupervisorNames,
  SupervisorSession
} from '../../supervisors/supervisor.js'
import { runHealthGate } from '../health.js'
import type { HostState } from '../strategy.js'
import { checkFits, readFreeSpace, type FreeSpaceReads } from './fits.js'
import {
  remoteSha256,
  restorePrevious,
  sidePaths,
  stageBinary,
  stageHostFile,
  swapBinary
} from './install.js'
import type { UpgradePlan } from './plan.js'
import { progressNote } from './progress.js'
import { sendStagedWait } from './staged-ahead.js'
import { runVerifyCommand } from './verify-command.js'

export interface HotUpgradeParts {
  host: Host
  plan: UpgradePlan
  state: HostState
  session: SupervisorSession
  names: SupervisorNames
  /** How the supervisor goes back: `handoff` needs the old binary at the live path first. */
  revert: SupervisorCapabilities['revert']
  /** The reads sent ahead for a live path (readAhead): the free space, taken by pre-flight. */
  ahead?: { livePath: string; free: FreeSpaceReads | null }
}

export const running = (p: HotUpgradeParts) => {
  if (!p.state.running) throw new Error(`${p.host.name}: the running server is not known yet`)
  return p.state.running
}

/** Where this run stages the new binary beside the live one. */
const stagingOf = (p: HotUpgradeParts) => {
  const live = running(p).livePath
  return p.plan.stagingPath?.(live) ?? sidePaths(live).staging
}

/**
 * The reads that need only the live path (free space, what the staging file holds), sent as soon
 * as it is known: behind the deploy lock when its first read found the server, else with
 * inspect's reads. Once per live path.
 */
export function readAhead(p: HotUpgradeParts, livePath: string): FreeSpaceReads | null {
  if (p.ahead?.livePath === livePath) return p.ahead.free
  p.ahead = { livePath, free: readFreeSpace(p.host, livePath, p.state.source, p.plan.releaseDir) }
  const staging = p.plan.stagingPath?.(livePath) ?? sidePaths(livePath).staging
  p.state.stagedSha256 = remoteSha256(p.host, staging).catch(() => undefined)
  if (p.state.source.localPath !== undefined) p.host.warmUpload?.()
  return p.ahead.free
}

/** Inspect the running server (preflight), then the binary's fit; ends the run when it is already live. */
export function inspectSteps(p: HotUpgradeParts): Step[] {
  return [
    {
      name: 'preflight',
      stage: 'prepare',
      async run(ctx) {
        // After a lost connection, what was sent ahead may be lost: read again.
        if (ctx.retrying) p.ahead = undefined
        let free: FreeSpaceReads | null | undefined
        const r = await p.session.inspect({
          note: m => ctx.note(m),
          retrying: ctx.retrying,
          readOnly: p.plan.readOnly,
          // Filled as inspect learns them: a refused host still reports what serves.
          learn: k => {
            if (k.pid !== undefined) ctx.report.oldPid = k.pid
            if (k.livePath !== undefined) ctx.report.binaryPath = k.livePath
            if (k.livePath !== undefined && free === undefined) free = readAhead(p, k.livePath)
            if (k.version) ctx.report.previousVersion = k.version
          }
        })
        p.state.running = r
        ctx.report.oldPid = r.pid
        ctx.report.binaryPath = r.livePath
        const fits = await checkFits(p.host, r, p.state.source, p.plan.releaseDir, free)
        p.state.storeLinkable = fits.sameMount
      }
    },
    {
      name: 'compare',
      report: 'preflight',
      stage: 'prepare',
      async run(ctx) {
        const r = running(p)
        if (r.liveSha256 !== p.state.source.sha256 || r.exeReplaced) return
        ctx.report.sha256 = ctx.report.previousSha256 = r.runningSha256
        return {
          end: 'unchanged',
          message: `the live binary already has sha256 ${r.liveSha256.slice(0, 12)}; nothing to do`
        }
      }
    }
  ]
}

/** Stage the new binary beside the live one (upload, or a copy on the host) and verify it. */
export function stageSteps(p: HotUpgradeParts): Step[] {
  const upload: Step = {
    name: 'upload',
    stage: 'prepare',
    interruptible: true,
    async undo() {
      await p.host.run(['rm', '-f', '--', stagingOf(p)], { sudo: p.host.sudo })
    },
    async run(ctx) {
      const r = running(p)
      const source = p.state.source
      if (source.hostPath !== undefined) {
        await stageHostFile(p.host, {
          fromPath: source.hostPath,
          sha256: source.sha256,
          livePath: r.livePath,
          staging: stagingOf(p)
        })
        ctx.note(`copied ${source.hostPath} (sha256 checked) to the staging file on the host: nothing sent`)
        return
      }
      if (source.localPath === undefined) throw new StepError('upload', 'no binary was chosen for this host')
      const progress = progressNote(ctx.note)
      const staged = await stageBinary(p.host, {
        localPath: source.localPath,
        sha256: source.sha256,
        livePath: r.livePath,
        staging: stagingOf(p),
        staged: ctx.retrying ? undefined : p.state.stagedSha256,
        onProgress: x => progress(x.transferred, x.total),
        // The config test right behind the upload, run by the host once the file checks out.
        sending: () => {
          const staging = stagingOf(p)
          if (!ctx.retrying && p.session.verifyAhead)
            sendStagedWait(p.host, staging, source.sha256, gate => p.session.verifyAhead!(staging, gate))
        }
      })
      ctx.note(
        staged.sent
          ? `sent ${(staged.bytes / 1e6).toFixed(1)} MB in ${formatDuration(staged.uploadMs)}, sha256 checked on the host`
          : 'the staging file already holds this binary (sha256 checked): nothing sent'
      )
    }
  }
  const verify: Step = {
    name: 'verify',
    stage: 'prepare',
    async run(ctx) {
      const r = running(p)
      const staging = stagingOf(p)
      const v = await p.session.verify(ctx, staging)
      if (p.plan.verifyCommand !== undefined)
        await runVerifyCommand(p.host, p.plan.verifyCommand, staging, ctx.note)
      p.state.newVersion = v.version
      ctx.report.version = v.version ?? undefined
      ctx.report.previousVersion = r.version ?? undefined
      ctx.report.sha256 = p.state.source.sha256
      ctx.report.previousSha256 = r.runningSha256
    }
  }
  return [upload, verify]
}

/** The old binary back at the live path, checked by its sha256. */
export async function restoreBinary(p: HotUpgradeParts, log: Logger): Promise<void> {
  const r = running(p)
  await restorePrevious(p.host, r.livePath, r.liveSha256)
  const now = await remoteSha256(p.host, r.livePath)
  if (now !== r.liveSha256)
    throw new Error(`${r.livePath} has sha256 ${now} after the restore, expected ${r.liveSha256}`)
  log.info(`${p.host.name} [rollback] ${r.livePath} is the old binary again`)
}

/** The cut-over: swap the file, start the new server, isolate it, judge it, drain the old one. */
export function changeSteps(p: HotUpgradeParts): Step[] {
  const { names, session, plan } = p
  const steps: Step[] = [
    {
      name: 'swap',
      stage: 'change',
      undoFrom: 'success',
      sentAhead: () => p.state.swapAhead !== undefined,
      undo: ctx => restoreBinary(p, ctx.log),
      async run(ctx) {
        const r = running(p)
        const early = p.state.swapAhead
        p.state.swapAhead = undefined
        // Again after a lost connection: the rename may have happened; the host says.
        if (!ctx.retrying || (await remoteSha256(p.host, r.livePath)) !== p.state.source.sha256)
          await swapBinary(p.host, r.livePath, p.state.source.sha256, ctx.retrying ? undefined : early)
        ctx.note(`${r.livePath} is the new binary; the old one is kept as ${sidePaths(r.livePath).previous}`)
      }
    },
    {
      name: names.steps.start,
      stage: 'change',
      interruptible: true,
      sentAhead: () => p.state.startSentAhead === true,
      async undo(ctx) {
        // A revert by hand-over starts the file at the live path: the old binary goes back first.
        if (p.revert === 'handoff') await restoreBinary(p, ctx.log)
        await session.revert({ note: m => ctx.log.info(`${p.host.name} [rollback] ${m}`), retrying: false })
      },
      async run(ctx) {
        p.state.startSentAhead = false
        const pid = await session.start(ctx, {
          startTimeoutMs: plan.startTimeoutMs,
          intervalMs: plan.pollIntervalMs
        })
        p.state.newPid = pid
        ctx.report.newPid = pid
      }
    }
  ]
  if (names.steps.isolate !== undefined && session.isolate)
    steps.push({ name: names.steps.isolate, stage: 'change', run: ctx => session.isolate!(ctx) })
  steps.push(
    {
      name: 'health',
      stage: 'change',
      interruptible: true,
      async run(ctx) {
        const was = await session.serving()
        await runHealthGate(p.host, plan.health, {
          stillServing: () => session.stillServing(was),
          note: ctx.note,
          record: (ok, detail, atMs) => ctx.report.health.push({ atMs, ok, detail })
        }).catch((e: unknown) => {
          throw e instanceof StepError && session.healthFailure ? session.healthFailure(e) : e
        })
      }
    },
    drainStep(p)
  )
  return steps
}

/** The old server's drain; at drain-timeout, roll back or proceed as drain-timeout-action says. */
function drainStep(p: HotUpgradeParts): Step {
  const { names, session, plan } = p
  return {
    name: 'drain',
    stage: 'change',
    interruptible: true,
    async run(ctx) {
      const drained = await session.drain(ctx, {
        intervalMs: plan.pollIntervalMs,
        timeoutMs: plan.drainTimeoutMs,
        record: (atMs, left) => ctx.report.drain.push({ atMs, oldWorkers: left })
      })
      if (drained) return
      const busy = await session.busyOld()
      const detail =
        `${formatDuration(plan.drainTimeoutMs)}: ${busy.length} left (${busy.join(', ')}), ` +
        'held by long requests (downloads, websockets, long polls)'
      if (plan.drainTimeoutAction === 'rollback')
        throw new StepError(
          'drain',
          `old workers still busy after drain-timeout ${detail}. Raise drain-timeout, or set drain-timeout-action: proceed to let them finish after the ${names.old} is ${names.retiring}`
        )
      p.state.drainUnfinished = true
      ctx.note(
        `old workers still busy after drain-timeout ${detail}; drain-timeout-action is proceed: the ${names.old} is ${names.retiring}, its workers finish on their own`
      )
    }
  }
}
