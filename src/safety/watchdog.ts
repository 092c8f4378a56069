/**
 * The dead man's switch: a small POSIX sh process started on the host before the swap, detached
 * from the SSH session (setsid, else nohup). Unless the action decides first (confirm before the
 * old process is retired, cancel after its own rollback), at its deadline it rolls the host back
 * by itself: the supervisor's part brings the old processes back (WatchdogPart), and the kept
 * binary goes back at the live path. A runner that vanishes right after the new process started
 * thus leaves the old version serving, with its binary in place.
 *
 * Files in the state dir (one watchdog per host at a time, under the deploy lock):
 *   pid       the running watchdog's pid (removed when it exits)
 *   token     the run that started it
 *   deadline  epoch seconds (host clock) after which it rolls back; the action may move it
 *   decided/  created by whoever decides first (mkdir is atomic): the action or the watchdog
 *   verdict   confirm | cancel (the action) or rollback (the watchdog)
 *   result    what the watchdog did: confirm, cancel, nothing, rolled-back, incomplete: ...
 *   log       what it did, with timestamps (kept short)
 */
import { posix } from 'node:path'
import type { Host } from '../host/host.js'
import type { Gate } from '../host/remote-shell.js'
import type { WatchdogPart } from '../supervisors/supervisor.js'
import {
  DECIDE_SCRIPT,
  EXTEND_SCRIPT,
  INSPECT_SCRIPT,
  LAUNCH_SCRIPT,
  watchdogScript
} from './watchdog-scripts.js'

export { watchdogScript }

export interface WatchdogPlan {
  /** State dir on the host (in the release store). */
  dir: string
  /** The run that owns it (confirm and cancel must name it). */
  token: string
  pidFile: string
  oldPid: number
  livePath: string
  /** The kept old binary (sidePaths(livePath).previous). */
  previousPath: string
  oldSha256: string
  leaseMs: number
  /** The supervisor's part: how its old processes come back. */
  part: WatchdogPart
  /** Put the old binary back before reverting the processes (a revert that is another hand-over). */
  binaryFirst?: boolean
}

export interface WatchdogState {
  running: boolean
  pid: number | null
  token: string | null
  deadlineInMs: number | null
  /** The decision, once taken: confirm | cancel (the action) or rollback (the watchdog). */
  verdict: string | null
  result: string | null
  log: string[]
}

/** The watchdog's lease: every wait it guards, plus a margin for round trips and retries. */
export function watchdogLeaseMs(t: {
  startTimeoutMs: number
  healthTimeoutMs: number
  drainTimeoutMs: number
}): number {
  const guarded = t.startTimeoutMs + t.healthTimeoutMs + t.drainTimeoutMs
  return guarded + 10_000 + Math.ceil(guarded / 10)
}

/** Where a host's watchdog keeps its files: `<release-dir>/watchdog`. */
export function watchdogDir(releaseDir: string): string {
  return posix.join(releaseDir, 'watchdog')
}

const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))

async function sh(
  host: Host,
  script: string,
  args: string[],
  o: { timeoutMs?: number; ok?: number[]; gate?: Gate } = {}
): Promise<string> {
  const r = await host.run(['sh', '-c', script, 'sh', ...args], {
    sudo: host.sudo,
    timeoutMs: o.timeoutMs ?? 30_000,
    gate: o.gate
  })
  if (!(o.ok ?? [0]).includes(r.code))
    throw new Error(
      `${host.name}: watchdog command failed (status ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`
    )
  return r.stdout.trim()
}

/** Another run's watchdog is still armed on the host. */
export class WatchdogBusyError extends Error {
  constructor(
    readonly host: string,
    readonly dir: string,
    readonly pid: number,
    readonly token: string
  ) {
    super(
      `${host}: a watchdog of another run (${token || 'unknown'}) is still armed (pid ${pid}, state in ${dir}): it will roll back ` +
        `that run's interrupted upgrade at its deadline. Wait for it (its log: ${dir}/log), or, once you have checked the host by hand, stop it: kill ${pid}`
    )
    this.name = 'WatchdogBusyError'
  }
}

/** Refuses a plan no watchdog may be started with (thrown before anything is sent). */
function checkPlan(plan: WatchdogPlan): void {
  if (!Number.isInteger(plan.oldPid) || plan.oldPid <= 1)
    throw new Error(`watchdog: ${plan.oldPid} is not the pid of a running server`)
  if (!/^[0-9a-f]{64}$/.test(plan.oldSha256)) throw new Error(`watchdog: '${plan.oldSha256}' is not a sha256`)
}

/**
 * Arms the watchdog; resolves with its pid once it runs. The plan is checked at once (a throw,
 * not a rejection): with `gate`, what the caller sends next needs the start to have been sent.
 */
export function startWatchdog(
  host: Host,
  plan: WatchdogPlan,
  gate?: string
): Promise<{ pid: number; deadline: number; oldStartTime: string | null }> {
  checkPlan(plan)
  return launch(host, plan, gate)
}

async function launch(
  host: Host,
  plan: WatchdogPlan,
  gate?: string
): Promise<{ pid: number; deadline: number; oldStartTime: string | null }> {
  const out = await sh(
    host,
    LAUNCH_SCRIPT,
    [
      watchdogScript(plan.part, plan.binaryFirst),
      plan.dir,
      plan.token,
      seconds(plan.leaseMs),
      plan.pidFile,
      String(plan.oldPid),
      plan.livePath,
      plan.previousPath,
      plan.oldSha256
    ],
    { ok: [0, 3], gate: gate ? { set: gate } : undefined }
  )
  const [word, pid, extra, st] = out.split(/\s+/)
  // st: the old server's start time, which names it for good (held records keep it).
  if (word === 'started' || word === 'running')
    return {
      pid: Number(pid),
      deadline: Number(extra),
      oldStartTime: st && /^\d{1,20}$/.test(st) ? st : null
    }
  if (word === 'busy') throw new WatchdogBusyError(host.name, plan.dir, Number(pid), extra ?? '')
  throw new Error(`${host.name}: the watchdog did not start: ${out.slice(0, 300)}`)
}

export type Decision =
  | { decided: true; verdict: 'confirm' | 'cancel' }
  /** The watchdog decided first (it rolls back, or did); result is set once it finished. */
  | { decided: false; verdict: string; result: string | null }
  | { decided: false; verdict: 'not-ours'; result: null }

/**
 * The action decides: confirm (the upgrade goes through; before QUIT) or cancel (the action rolled
 * back itself). Fails over to the watchdog's decision when its deadline came first. `gate`: opened
 * on the host's shell only when this run decided (what needs it may be sent right behind).
 */
export async function decideWatchdog(
  host: Host,
  dir: string,
  token: string,
  verdict: 'confirm' | 'cancel',
  gate?: string
): Promise<Decision> {
  const out = await sh(host, DECIDE_SCRIPT, [dir, token, verdict], {
    ok: [0, 3],
    gate: gate ? { set: gate } : undefined
  })
  if (out.startsWith('decided ')) return { decided: true, verdict }
  if (out.startsWith('not-ours')) return { decided: false, verdict: 'not-ours', result: null }
  const m = /^too-late (\S*) (?:result=(.*)|running)$/.exec(out)
  return { decided: false, verdict: m?.[1] || 'rollback', result: m?.[2] ?? null }
}

/** Moves the deadline to now + leaseMs (parked hosts, a rollback that needs time). */
export async function extendWatchdog(
  host: Host,
  dir: string,
  token: string,
  leaseMs: number
): Promise<boolean> {
  return (await sh(host, EXTEND_SCRIPT, [dir, token, seconds(leaseMs)])) === 'extended'
}

export async function inspectWatchdog(host: Host, dir: string): Promise<WatchdogState | null> {
  const out = await sh(host, INSPECT_SCRIPT, [dir])
  if (out === 'absent') return null
  const state: WatchdogState = {
    running: false,
    pid: null,
    token: null,
    deadlineInMs: null,
    verdict: null,
    result: null,
    log: []
  }
  for (const line of out.split('\n')) {
    const [key, ...rest] = line.split(' ')
    const value = rest.join(' ')
    if (key === 'running' || key === 'stopped') {
      state.running = key === 'running'
      state.pid = /^\d+$/.test(value) ? Number(value) : null
    } else if (key === 'token') state.token = value || null
    else if (key === 'deadline-in') state.deadlineInMs = Number(value) * 1000
    else if (key === 'decided') state.verdict = value || null
    else if (key === 'result') state.result = value || null
    else if (key === 'log') state.log.push(value)
  }
  return state
}

/** Waits until the watchdog has exited (its rollback done); returns its final state. */
export async function waitForWatchdog(
  host: Host,
  dir: string,
  timeoutMs: number,
  intervalMs = 500
): Promise<WatchdogState | null> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const state = await inspectWatchdog(host, dir)
    if (state === null || !state.running || Date.now() >= until) return state
    await new Promise(r => setTimeout(r, intervalMs))
  }
}

/** Every sh script of the watchdog, by name (tests check that each is POSIX sh). */
export const WATCHDOG_SCRIPTS: Readonly<Record<string, string>> = {
  launch: LAUNCH_SCRIPT,
  decide: DECIDE_SCRIPT,
  extend: EXTEND_SCRIPT,
  inspect: INSPECT_SCRIPT
}
