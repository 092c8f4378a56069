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
import { CommandTimeoutError, type Host } from '../../host/host.js'
import type { HostState } from '../strategy.js'
import {
  healthGate,
  remoteSha256,
  restorePrevious,
  sidePaths,
  sleep,
  stageBinary,
  stageHostFile,
  swapBinary,
  type HealthPlan
} from './deps.js'
import { emptyTally, formatTally, verdict } from './error-rate.js'
import { describeState, type LoadBalancer } from './load-balancer.js'
import type { ServerState } from './managed-file.js'
import { remoteText } from './remote-text.js'

export interface UpstreamPlan {
  /** The backend's binary (binary-path). */
  livePath: string
  restartCommand: string
  startTimeoutMs: number
  pollIntervalMs: number
  drainTimeoutMs: number
  drainTimeoutAction: 'rollback' | 'proceed'
  health: HealthPlan
}

export interface CanaryPlan {
  weight: number
  durationMs: number
  maxErrorRate: number
}

export interface UpstreamHostState extends HostState {
  /** The host's server line in the block. */
  readonly address: string
  /** Workers of the load balancer from before the reload that took the server out. */
  oldWorkers?: number[]
  /** What the run did, for the undos and the repair advice. */
  swapped?: boolean
  restarted?: boolean
}

export interface UpstreamParts {
  host: Host
  lb: LoadBalancer
  plan: UpstreamPlan
  state: UpstreamHostState
  /** This host is a canary: back at canary.weight first, watched. */
  canary: CanaryPlan | null
}

const live = (p: UpstreamParts) => {
  if (!p.state.running) throw new Error(`${p.host.name}: the live binary is not known yet`)
  return p.state.running
}

/** A change of the server's state, in the host's report and log. */
async function shift(p: UpstreamParts, ctx: Pick<StepContext, 'report'>, to: ServerState, why: string) {
  const old = await p.lb.setServer(p.state.address, to, why)
  const weights = (ctx.report.weights ??= [])
  weights.push({ at: new Date().toISOString(), weight: to.down ? 'down' : (to.weight ?? 1), why })
  return old
}

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
  const drained = await p.lb.waitDrained(
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
    {
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
    },
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

async function backIn(p: UpstreamParts, ctx: StepContext): Promise<void> {
  const full = p.lb.fullState(p.state.address)
  if (full.down) {
    ctx.note(`${p.state.address} was down in the block before this run: it stays down`)
    return
  }
  const c = p.canary
  if (c) {
    const backends = await p.lb.logAddresses(p.state.address)
    const marks = c.durationMs > 0 ? await p.lb.logMarks() : new Map<string, number>()
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
    await p.lb.tallySince(marks, backends, tally)
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

/** The host's state after a failed rollback, and the commands that repair it. */
export async function repairAdvice(p: UpstreamParts): Promise<string[]> {
  const r = p.state.running
  const now = p.lb.stateNow(p.state.address)
  const lines = [
    `# state: server ${p.state.address} is ${now ? describeState(now) : 'unknown'} in upstream ${p.lb.o.name} on ${p.lb.host.name}` +
      (r ? `; ${r.livePath} has ${p.state.swapped ? 'been swapped' : 'not been swapped'}` : '')
  ]
  if (r) {
    const { previous } = sidePaths(r.livePath)
    lines.push(`# on ${p.host.name}: put the previous binary back and restart it`)
    lines.push(`test -e ${previous} && mv -f ${previous} ${r.livePath}`)
    lines.push(p.plan.restartCommand)
  }
  lines.push(
    `# on ${p.lb.host.name}, once the server answers its health check: remove 'down' from its line in ${p.lb.o.file}, then`
  )
  lines.push(`${p.lb.master.exe} -t ${p.lb.master.configArgs.join(' ')} && kill -HUP ${p.lb.master.pid}`)
  return lines
}
