/**
 * The load balancer's dead man's switch, in the spirit of the hosts' (src/safety/watchdog.ts): a
 * detached POSIX sh process on the load balancer, armed before the run's first change to the
 * managed file, renewed while the run lives, disarmed when it ends. If the run vanishes (runner
 * killed, network gone, no post step), at the lease's end it puts the file back as the run found
 * it (the `original` the LoadBalancer keeps), `nginx -t` with the master's own binary and
 * arguments, reloads only if the test passed (else puts back what it replaced and leaves a note),
 * and removes its files but its note (`log`, `result`).
 *
 * A server the run took out whose backend does not answer HTTP from the load balancer (curl or
 * wget, at the address nginx uses) stays as the run left it; the others go back. The health gate
 * of the run (health-url, health-command) runs on the backend through SSH, which the load
 * balancer cannot do: a probe from where nginx connects is the honest stand-in, and nginx's own
 * passive checks (max_fails, fail_timeout) remain behind it.
 */
import { posix } from 'node:path'
import type { Host } from '../../host/host.js'
import { formatDuration } from '../../duration.js'
import type { Master } from './lb-read.js'
import {
  LB_DISARM_SCRIPT,
  LB_EXTEND_SCRIPT,
  LB_INSPECT_SCRIPT,
  LB_LAUNCH_SCRIPT,
  LB_PLAN_SCRIPT,
  LB_SUPERSEDE_SCRIPT,
  LB_WATCHDOG_SCRIPT
} from './lb-watchdog-script.js'
import { findServer, parseManagedFile, stateOf, withServerState, type ManagedFile } from './managed-file.js'
import { remoteText } from './remote-text.js'

export interface LbWatchdogOptions {
  /** The run that owns it (renewals and the disarm must name it). */
  token: string
  leaseMs: number
  file: string
  /** The action's state dir on the load balancer (original, written); the watchdog lives in its `watchdog/`. */
  stateDir: string
  note: (message: string) => void
}

export const lbWatchdogDir = (stateDir: string) => posix.join(stateDir, 'watchdog')

const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))

async function sh(host: Host, script: string, args: string[]): Promise<string> {
  const r = await host.run(['sh', '-c', script.trim(), 'sh', ...args], { sudo: host.sudo, timeoutMs: 90_000 })
  if (r.code !== 0)
    throw new Error(
      `${host.name}: load balancer watchdog command failed (status ${r.code}): ${remoteText(r.stderr || r.stdout, 300)}`
    )
  return r.stdout.trim()
}

/**
 * The lines each server that differs from the original occupies in `text` ("LINE ADDRESS\n"):
 * the lines that change when that server alone goes back to its original state. The watchdog puts
 * a line back only when every server on it answers.
 */
export function probeLines(original: ManagedFile, text: string, name: string): string {
  const file = parseManagedFile(text, name)
  const lines = text.split('\n')
  const out: string[] = []
  for (const s of file.block.servers) {
    const was = findServer(original, s.address)
    if (!was) continue
    const full = stateOf(was)
    if (s.down === full.down && s.weight === full.weight) continue
    const back = withServerState(file, s.address, full).split('\n')
    for (const [i, l] of back.entries()) if (l !== lines[i]) out.push(`${i + 1} ${s.address}`)
  }
  return out.map(l => `${l}\n`).join('')
}

export class LbWatchdog {
  private armed = false
  private heartbeat?: NodeJS.Timeout
  private readonly dir: string
  /** Lines for every text of this run: a line listed once stays listed (a kill between two writes). */
  private readonly probes = new Set<string>()

  constructor(
    private readonly host: Host,
    private readonly master: Master,
    private readonly o: LbWatchdogOptions
  ) {
    this.dir = lbWatchdogDir(o.stateDir)
  }

  /** Before each write of the managed file: armed (the first time), and told the next text. */
  async beforeWrite(original: ManagedFile, name: string, next: string, nextSha: string): Promise<void> {
    if (!this.armed) await this.arm()
    for (const l of probeLines(original, next, name).split('\n')) if (l) this.probes.add(l)
    const out = await sh(this.host, LB_PLAN_SCRIPT, [
      this.dir,
      this.o.token,
      nextSha,
      [...this.probes].map(l => `${l}\n`).join('')
    ])
    if (out !== 'planned')
      throw new Error(
        `${this.host.name}: the load balancer's watchdog in ${this.dir} no longer waits for this run (${remoteText(out, 100)}): ` +
          'it may be restoring the file; nothing more is changed'
      )
  }

  private async arm(): Promise<void> {
    const out = await sh(this.host, LB_LAUNCH_SCRIPT, [
      LB_WATCHDOG_SCRIPT,
      this.dir,
      this.o.token,
      seconds(this.o.leaseMs),
      this.o.file,
      this.o.stateDir,
      String(this.master.pid),
      this.master.exe,
      ...this.master.configArgs
    ])
    const [word, pid] = out.split(/\s+/)
    if (word !== 'started' && word !== 'running')
      throw new Error(
        `${this.host.name}: the load balancer's watchdog did not start: ${remoteText(out, 300)}. Set watchdog: false to go on without it`
      )
    this.armed = true
    this.o.note(
      `watchdog ${pid} armed on the load balancer: if this run vanishes, it puts ${this.o.file} back as the run found it ${formatDuration(this.o.leaseMs)} after the run's last word (log: ${this.dir}/log)`
    )
    const every = Math.min(60_000, Math.max(1000, Math.floor(this.o.leaseMs / 3)))
    this.heartbeat = setInterval(() => void this.renew(), every)
    this.heartbeat.unref()
  }

  private async renew(): Promise<void> {
    try {
      const out = await sh(this.host, LB_EXTEND_SCRIPT, [this.dir, this.o.token, seconds(this.o.leaseMs)])
      if (out !== 'extended') {
        this.stop()
        this.o.note(`the load balancer's watchdog no longer waits for this run: ${remoteText(out, 200)}`)
      }
    } catch (e) {
      this.o.note(`could not renew the load balancer's watchdog: ${(e as Error).message}`)
    }
  }

  private stop(): void {
    if (this.heartbeat) clearInterval(this.heartbeat)
    this.heartbeat = undefined
  }

  /** The run ends: the watchdog stands down and its files go. Says so when it acted first. */
  async disarm(): Promise<void> {
    this.stop()
    if (!this.armed) return
    this.armed = false
    const out = await disarmLbWatchdog(this.host, this.o.stateDir, this.o.token)
    if (out !== 'disarmed') this.o.note(`the load balancer's watchdog: ${out}`)
  }
}

/**
 * Stands a run's watchdog down (the run's end, or its post step with the run's token); when it
 * already acted, waits until it finished. Returns `disarmed`, `absent`, `not-ours`, or what it did.
 */
export async function disarmLbWatchdog(host: Host, stateDir: string, token: string): Promise<string> {
  const out = await sh(host, LB_DISARM_SCRIPT, [lbWatchdogDir(stateDir), token])
  if (out.startsWith('acted '))
    return `it reached its deadline first and acted: ${remoteText(out.slice(6), 200)}`
  if (out.startsWith('acting '))
    return `it reached its deadline first and is still acting (pid ${remoteText(out.slice(7), 20)})`
  return remoteText(out, 200)
}

/**
 * A run that holds the load balancer's lock stands the watchdog of an earlier run down before it
 * reads the file (a vanished run's watchdog, still waiting for its deadline, would otherwise put
 * its file over this run's changes, or over the file this run read). When that watchdog already
 * acts, waits for it, so that the run reads the file as it left it. Returns what it did, for the
 * log; null when there was nothing to stand down. Throws when it is still acting after 60 s.
 */
export async function supersedeLbWatchdog(
  host: Host,
  stateDir: string,
  token: string
): Promise<string | null> {
  const dir = lbWatchdogDir(stateDir)
  const out = await sh(host, LB_SUPERSEDE_SCRIPT, [dir, token])
  if (out === 'absent' || out === 'ours' || out === 'stopped') return null
  if (out.startsWith('superseded '))
    return `stood down the load balancer's watchdog of an earlier run (${remoteText(out.slice(11), 100)}) before reading the file: that run is gone, and this run puts each server back from the file as that run found it`
  if (out.startsWith('acted '))
    return `the load balancer's watchdog of an earlier run was acting when this run took the lock; it finished: ${remoteText(out.slice(6), 200)}`
  throw new Error(
    `${host.name}: the load balancer's watchdog of an earlier run is still restoring the file after 60 s (${remoteText(out, 100)}; its log: ${dir}/log): nothing was changed. Run again once it has finished`
  )
}

export interface LbWatchdogState {
  running: boolean
  token: string | null
  result: string | null
  log: string[]
}

export async function inspectLbWatchdog(host: Host, stateDir: string): Promise<LbWatchdogState | null> {
  const out = await sh(host, LB_INSPECT_SCRIPT, [lbWatchdogDir(stateDir)])
  if (out === 'absent') return null
  const state: LbWatchdogState = { running: false, token: null, result: null, log: [] }
  for (const line of out.split('\n')) {
    const [key, ...rest] = line.split(' ')
    const value = rest.join(' ')
    if (key === 'running') state.running = true
    else if (key === 'token') state.token = value || null
    else if (key === 'result') state.result = value || null
    else if (key === 'log') state.log.push(value)
  }
  return state
}

/** Every sh script of the load balancer's watchdog, by name (tests check that each is POSIX sh). */
export const LB_WATCHDOG_SCRIPTS: Readonly<Record<string, string>> = {
  watchdog: LB_WATCHDOG_SCRIPT,
  launch: LB_LAUNCH_SCRIPT,
  plan: LB_PLAN_SCRIPT,
  extend: LB_EXTEND_SCRIPT,
  disarm: LB_DISARM_SCRIPT,
  supersede: LB_SUPERSEDE_SCRIPT,
  inspect: LB_INSPECT_SCRIPT
}
