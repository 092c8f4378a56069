/**
 * The steps of traffic shifting for one backend host, as data:
 *
 *   preflight → upload → down → drain → swap → restart → health → back-in (canary, watch, full)
 *
 * Undo, in reverse: back-in takes the host out again and drains it; swap puts the previous
 * binary back, restarts it and passes the health gate; down puts the server back at its full
 * state, but only when it answers its health check: an unhealthy server is never put back in.
 */
import { formatDuration } from '../../duration.js'
import { StepError, type Step, type StepContext } from '../../engine/step.js'
import { CommandTimeoutError } from '../../host/host.js'
import {
  healthGate,
  remoteSha256,
  restorePrevious,
  sidePaths,
  stageBinary,
  stageHostFile,
  swapBinary
} from './deps.js'
import { backIn } from './canary.js'
import { describeState } from './load-balancer.js'
import { live, shift, type UpstreamParts } from './parts.js'
import { remoteText } from './remote-text.js'

/** Out of the block and drained; on drain-timeout: throws, or goes on when `proceed`. */
async function takeOut(p: UpstreamParts, ctx: StepContext, why: string, proceed: boolean): Promise<void> {
  const now = p.lb.stateNow(p.state.address)!
  const old = now.down
    ? (p.state.oldWorkers ?? [])
    : await shift(p, ctx, { down: true, weight: now.weight }, why)
  p.state.oldWorkers = old
  await drain(p, ctx, proceed)
}

async function drain(p: UpstreamParts, ctx: StepContext, proceed: boolean): Promise<void> {
  const { drainTimeoutMs } = p.plan
  let last = -1
  const drained = await p.lb.traffic.waitDrained(
    p.state.address,
    p.state.oldWorkers ?? [],
    drainTimeoutMs,
    (atMs, conns, workers) => {
      ctx.report.drain.push({ atMs, oldWorkers: conns })
      if (conns !== last || workers > 0)
        ctx.note(
          `${conns} connection(s) from the load balancer to ${p.state.address}, ${workers} load-balancer worker(s) from before the reload left, after ${formatDuration(atMs)}`
        )
      last = conns
    }
  )
  if (drained) return
  const detail = `the load balancer still has connections to ${p.state.address} (or workers from before the reload) after drain-timeout ${formatDuration(drainTimeoutMs)}`
  if (!proceed)
    throw new StepError(
      'drain',
      `${detail}: long requests (downloads, websockets, long polls) hold them. Raise drain-timeout, set worker_shutdown_timeout on the load balancer, or set drain-timeout-action: proceed`
    )
  ctx.note(`${detail}; going on (the requests still open fail when the server restarts)`)
}

async function restart(p: UpstreamParts): Promise<void> {
  const argv = ['sh', '-c', p.plan.restartCommand]
  try {
    const r = await p.host.run(argv, { sudo: p.host.sudo, timeoutMs: p.plan.startTimeoutMs })
    if (r.code !== 0)
      throw new StepError(
        'restart',
        `restart-command exited with status ${r.code}: ${remoteText((r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | '), 500)}`
      )
  } catch (e) {
    if (e instanceof CommandTimeoutError)
      throw new StepError(
        'restart',
        `restart-command did not return within start-timeout ${formatDuration(p.plan.startTimeoutMs)}. A restart-command must start the server in the background and detach it from the SSH session (systemctl restart app, or setsid app </dev/null >app.log 2>&1 &)`
      )
    throw e
  }
}

async function gate(p: UpstreamParts, ctx: StepContext, label: string): Promise<void> {
  await healthGate(p.host, p.plan.health, ctx.note, (ok, detail, atMs) =>
    ctx.report.health.push({ atMs, ok, detail: `${label}: ${detail}` })
  )
}

/** Reads the live binary; ends the run when the host already runs the new one. */
export function inspectSteps(p: UpstreamParts): Step[] {
  return [
    {
      name: 'preflight',
      stage: 'prepare',
      async run(ctx) {
        const sha = await remoteSha256(p.host, p.plan.livePath)
        if (sha === null)
          throw new StepError(
            'preflight',
            `binary-path ${p.plan.livePath} does not exist on the host. Give the path of the server's binary`
          )
        p.state.running = {
          pid: 0,
          livePath: p.plan.livePath,
          liveSha256: sha,
          runningSha256: sha,
          exeReplaced: false,
          version: null,
          arch: ''
        }
        ctx.report.binaryPath = p.plan.livePath
        const full = p.lb.fullState(p.state.address)
        ctx.note(
          `server ${p.state.address} of upstream ${p.lb.o.name}: ${describeState(full)} before this run`
        )
        ctx.report.weights = [
          {
            at: new Date().toISOString(),
            weight: full.down ? 'down' : (full.weight ?? 1),
            why: 'before the run'
          }
        ]
        if (sha !== p.state.source.sha256) return
        ctx.report.sha256 = ctx.report.previousSha256 = sha
        return {
          end: 'unchanged',
          message: `${p.plan.livePath} already has sha256 ${sha.slice(0, 12)}; nothing to do`
        }
      }
    }
  ]
}

/** Upload before the server goes out: the time out of the block is the restart's, not the transfer's. */
export function stageSteps(p: UpstreamParts): Step[] {
  return [
    {
      name: 'upload',
      stage: 'prepare',
      interruptible: true,
      async undo() {
        await p.host.run(['rm', '-f', '--', sidePaths(live(p).livePath).staging], { sudo: p.host.sudo })
      },
      async run(ctx) {
        const source = p.state.source
        if (source.hostPath !== undefined) {
          await stageHostFile(p.host, {
            fromPath: source.hostPath,
            sha256: source.sha256,
            livePath: live(p).livePath
          })
          ctx.note(`copied ${source.hostPath} (sha256 checked) to the staging file on the host: nothing sent`)
          return
        }
        if (source.localPath === undefined)
          throw new StepError('upload', 'no binary was chosen for this host')
        const staged = await stageBinary(p.host, {
          localPath: source.localPath,
          sha256: source.sha256,
          livePath: live(p).livePath
        })
        ctx.note(
          staged.sent
            ? `sent ${(staged.bytes / 1e6).toFixed(1)} MB in ${formatDuration(staged.uploadMs)}, sha256 checked on the host`
            : 'the staging file already holds this binary (sha256 checked): nothing sent'
        )
      }
    },
    {
      name: 'verify',
      report: 'upload',
      stage: 'prepare',
      async run(ctx) {
        p.state.newVersion = p.state.source.version ?? null
        ctx.report.version = p.state.source.version
        ctx.report.sha256 = p.state.source.sha256
        ctx.report.previousSha256 = live(p).liveSha256
      }
    }
  ]
}

/** The new binary at the live path; undo: the previous one back, restarted and healthy again. */
function swapStep(p: UpstreamParts): Step {
  return {
    name: 'swap',
    stage: 'change',
    async undo(ctx) {
      const r = live(p)
      await restorePrevious(p.host, r.livePath, r.liveSha256)
      const now = await remoteSha256(p.host, r.livePath)
      if (now !== r.liveSha256)
        throw new Error(`${r.livePath} has sha256 ${now} after the restore, expected ${r.liveSha256}`)
      ctx.note(`${r.livePath} is the previous binary again`)
      if (!p.state.restarted) return
      await restart(p)
      ctx.note('restart-command ran with the previous binary')
      await gate(p, ctx, 'previous version')
      p.state.restarted = false
    },
    async run(ctx) {
      const r = live(p)
      if (!ctx.retrying || (await remoteSha256(p.host, r.livePath)) !== p.state.source.sha256)
        await swapBinary(p.host, r.livePath, p.state.source.sha256)
      p.state.swapped = true
      ctx.note(
        `${r.livePath} is the new binary; the previous one is kept as ${sidePaths(r.livePath).previous}`
      )
    }
  }
}

/** The cut-over: out, drained, swapped, restarted, healthy, back in. */
export function changeSteps(p: UpstreamParts): Step[] {
  const { plan } = p
  return [
    {
      name: 'down',
      stage: 'change',
      async undo(ctx) {
        const full = p.lb.fullState(p.state.address)
        if (full.down) return
        // Never put a server back that does not answer: it stays down, and the rollback says so.
        try {
          await gate(p, ctx, 'before going back in')
        } catch (e) {
          throw new Error(`${p.state.address} stays down in upstream ${p.lb.o.name}: ${(e as Error).message}`)
        }
        await shift(p, ctx, full, 'back in after the rollback')
      },
      async run(ctx) {
        const now = p.lb.stateNow(p.state.address)!
        if (now.down) {
          ctx.note(`${p.state.address} is already down in upstream ${p.lb.o.name}`)
          return
        }
        p.state.oldWorkers = await shift(p, ctx, { down: true, weight: now.weight }, 'out for the upgrade')
      }
    },
    {
      name: 'drain',
      stage: 'change',
      interruptible: true,
      run: ctx => drain(p, ctx, plan.drainTimeoutAction === 'proceed')
    },
    swapStep(p),
    {
      name: 'restart',
      stage: 'change',
      onLostConnection: 'fail',
      async run(ctx) {
        p.state.restarted = true
        await restart(p)
        ctx.note('restart-command returned')
      }
    },
    {
      name: 'health',
      stage: 'change',
      interruptible: true,
      run: ctx => gate(p, ctx, 'new version')
    },
    {
      name: 'back-in',
      stage: 'change',
      interruptible: true,
      // Out again, drained, before the previous binary comes back (the swap's undo).
      undo: ctx => takeOut(p, ctx, 'out for the rollback', true),
      run: ctx => backIn(p, ctx)
    }
  ]
}
