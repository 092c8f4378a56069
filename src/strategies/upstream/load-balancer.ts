/**
 * The nginx load balancer as the upstream strategy drives it: read and check the managed file,
 * change one server at a time (write atomically, `nginx -t` with the running master's own binary
 * and arguments, restore the previous file if the test fails, HUP the master, wait until the
 * reload took). What goes to a backend is read by lb-traffic.ts. One instance per run;
 * changes from hosts running in parallel go through one queue, each re-applied to the file as it
 * is then, so two hosts never overwrite each other's line.
 */
import { createHash } from 'node:crypto'
import { check, type Host } from '../../host/host.js'
import { formatDuration } from '../../duration.js'
import { acceptingWorkers, isAlive, liveChildren, probe, waitUntilSoon } from './deps.js'
import * as cmd from './lb-commands.js'
import { LoadBalancerError, type Master, readFile, readMaster } from './lb-read.js'
import { BackendTraffic } from './lb-traffic.js'
import { LbWatchdog } from './lb-watchdog.js'
import {
  findServer,
  parseManagedFile,
  stateOf,
  withServerState,
  type ManagedFile,
  type ServerState
} from './managed-file.js'
import { logProblem, parseDump } from './nginx-dump.js'
import { remoteText } from './remote-text.js'

export { LoadBalancerError } from './lb-read.js'

export interface LoadBalancerOptions {
  file: string
  name: string
  pidFile: string
  /** Where the action keeps what it wrote, and the file as a run found it. */
  stateDir: string
  pollMs: number
  /** How long a reload may take to bring up new workers. */
  reloadTimeoutMs: number
  /** The canary is measured: the configuration must write the zerodown access log. */
  needLog: boolean
  note: (message: string) => void
  /** Arm a watchdog on the load balancer before the first change (lb-watchdog.ts): this run's token, its lease. */
  watchdog?: { token: string; leaseMs: number }
}

/** One change of a server's state, for the job summary's timeline. */
export interface WeightEvent {
  at: number
  address: string
  state: ServerState
  why: string
}

const MAX_FILE = 64 * 1024
const WRITTEN = 'written'
const ORIGINAL = 'original'

export class LoadBalancer {
  /** The file as this run found it (or as a run that vanished found it): every server's full state. */
  readonly original: ManagedFile
  readonly timeline: WeightEvent[] = []
  /** Whether the original came from a run that did not finish. */
  readonly inherited: boolean
  private current: { file: ManagedFile; sha: string }
  private queue: Promise<unknown> = Promise.resolve()
  private readonly watchdog?: LbWatchdog

  private constructor(
    readonly host: Host,
    readonly o: LoadBalancerOptions,
    readonly master: Master,
    /** The connections and log lines of each backend, as seen from the load balancer. */
    readonly traffic: BackendTraffic,
    current: { file: ManagedFile; sha: string },
    original: ManagedFile,
    inherited: boolean
  ) {
    this.current = current
    this.original = original
    this.inherited = inherited
    if (o.watchdog)
      this.watchdog = new LbWatchdog(host, master, {
        ...o.watchdog,
        file: o.file,
        stateDir: o.stateDir,
        note: o.note
      })
  }

  private run(argv: string[], timeoutMs = 60_000) {
    return this.host.run(argv, { sudo: this.host.sudo, timeoutMs })
  }

  /** Reads everything a rollout needs from the load balancer, and refuses what it cannot work with. */
  static async open(host: Host, o: LoadBalancerOptions): Promise<LoadBalancer> {
    const master = await readMaster(host, o.pidFile)
    const dumpArgv = cmd.configDump(master.exe, master.configArgs)
    const dump = await host.run(dumpArgv, { sudo: host.sudo, timeoutMs: 60_000 })
    if (dump.code !== 0)
      throw new LoadBalancerError(
        `${host.name}: \`${dumpArgv.join(' ')}\` failed: ${remoteText(dump.stderr, 600)}. ` +
          'The load balancer must pass its own config test before a rollout (and nginx -T may need sudo: true)'
      )
    const facts = parseDump(dump.stdout)
    if (!facts.files.includes(o.file))
      throw new LoadBalancerError(
        `${host.name}: upstream-file ${o.file} is not part of the running nginx's configuration ` +
          `(nginx -T reads ${facts.files
            .slice(0, 8)
            .map(f => remoteText(f, 200))
            .join(', ')}). Include it inside http { }, ` +
          'or fix upstream-file'
      )
    if (o.needLog) {
      const problem = logProblem(facts)
      if (problem)
        throw new LoadBalancerError(
          `${host.name}: canary-duration is set, but ${remoteText(problem, 400)}: the canary's error rate cannot be measured. ` +
            "Add to the load balancer's http { }: log_format zerodown '$msec\\t$status\\t$upstream_addr\\t$upstream_status'; " +
            'and in the server that proxies to the block: access_log /var/log/nginx/zerodown.log zerodown;'
        )
    }
    const now = await readFile(host, o.file, o.name)
    const ours = await host.readFile(`${o.stateDir}/${WRITTEN}`, { sudo: host.sudo })
    if (ours !== null && ours !== now.file.text) {
      const d = await host.run(cmd.diffFiles(`${o.stateDir}/${WRITTEN}`, o.file), { sudo: host.sudo })
      throw new LoadBalancerError(
        `${host.name}: ${o.file} was changed by someone else since this action last wrote it; the rollout does not ` +
          `overwrite it. The difference:\n${remoteText(d.stdout, 4000)}\n` +
          `If the change is meant to stay, accept the file as it is now: rm ${o.stateDir}/${WRITTEN} on the load balancer, then run again`
      )
    }
    const left = await host.readFile(`${o.stateDir}/${ORIGINAL}`, { sudo: host.sudo })
    let original = now.file
    let inherited = false
    if (left !== null) {
      try {
        original = parseManagedFile(left, o.name)
        inherited = true
      } catch {
        // An unreadable leftover is no baseline: the file as it is now is.
      }
    }
    const traffic = new BackendTraffic(host, o.pidFile, master.pid, o.pollMs, facts.accessLogs)
    return new LoadBalancer(host, o, master, traffic, now, original, inherited)
  }

  /** The server's state in the file as it is now. */
  stateNow(address: string): ServerState | undefined {
    const s = findServer(this.current.file, address)
    return s ? stateOf(s) : undefined
  }

  /** The server's state before this run (its full weight). */
  fullState(address: string): ServerState {
    const s = findServer(this.original, address)
    if (!s) throw new Error(`upstream ${this.o.name} lists no server ${address}`)
    return stateOf(s)
  }

  /**
   * Puts server `address` in state `to` and reloads; resolves with the workers that may still use
   * the state before (the ones that ran before the HUP). Queued behind changes of other hosts.
   */
  setServer(address: string, to: ServerState, why: string): Promise<number[]> {
    const next = this.queue.then(() => this.apply(address, to, why))
    this.queue = next.catch(() => undefined)
    return next
  }

  private async apply(address: string, to: ServerState, why: string): Promise<number[]> {
    const before = this.current
    const now = stateOf(findServer(before.file, address)!)
    if (now.down === to.down && now.weight === to.weight) return []
    const text = withServerState(before.file, address, to)
    if (Buffer.byteLength(text) > MAX_FILE)
      throw new LoadBalancerError(`${this.o.file} would be larger than ${MAX_FILE} bytes`)
    // The first change of a run keeps the file as found, for a later run or the post step.
    if (this.timeline.length === 0 && !this.inherited) await this.save(ORIGINAL, this.original.text)
    const nextSha = createHash('sha256').update(text).digest('hex')
    await this.watchdog?.beforeWrite(this.original, this.o.name, text, nextSha)
    const sha = await this.write(text, before.sha)
    this.current = { file: parseManagedFile(text, this.o.name), sha }
    const testArgv = cmd.configTest(this.master.exe, this.master.configArgs)
    const test = await this.run(testArgv)
    if (test.code !== 0) {
      // Nothing was reloaded: putting the previous file back leaves the load balancer as it was.
      await this.write(before.file.text, sha)
      this.current = before
      throw new LoadBalancerError(
        `${this.host.name}: nginx -t failed after setting ${address} to ${describeState(to)}, so the previous ${this.o.file} ` +
          `was put back and nothing was reloaded: ${remoteText(test.stderr || test.stdout, 800)}`
      )
    }
    let old: number[]
    try {
      old = await this.reload()
    } catch (e) {
      // The master kept the configuration it had: the file on disk says so again.
      if (e instanceof LoadBalancerError) {
        const back = await this.write(before.file.text, sha).then(
          () => true,
          () => false
        )
        if (back) this.current = before
      }
      throw e
    }
    this.timeline.push({ at: Date.now(), address, state: to, why })
    this.o.note(`${address}: ${describeState(to)} (${why}); nginx -t passed, reloaded`)
    return old
  }

  private async write(text: string, expectSha: string): Promise<string> {
    const r = await this.run(cmd.writeManagedFile(this.o.file, expectSha, text))
    const out = r.stdout.trim()
    if (r.code === 4)
      throw new LoadBalancerError(
        `${this.host.name}: ${this.o.file} changed on the load balancer during the rollout (sha256 ${remoteText(out.slice(8), 64)}); ` +
          'the action does not overwrite a change it did not make. Find who edits it, then run again'
      )
    if (r.code === 3)
      throw new LoadBalancerError(
        `${this.host.name}: ${this.o.file} is a symbolic link; the action replaces the file with a rename and does not follow links. ` +
          'Point upstream-file at the real file'
      )
    check(this.host, ['write', this.o.file], r)
    const m = /^written ([0-9a-f]{64})$/.exec(out)
    if (!m)
      throw new LoadBalancerError(
        `${this.host.name}: unexpected answer writing ${this.o.file}: ${remoteText(out, 200)}`
      )
    await this.save(WRITTEN, text)
    return m[1]!
  }

  private async save(name: string, text: string): Promise<void> {
    const r = await this.run(cmd.saveState(this.o.stateDir, name, text))
    if (r.code !== 0)
      throw new LoadBalancerError(
        `${this.host.name}: cannot write ${this.o.stateDir}/${name}: ${remoteText(r.stderr, 300)}. ` +
          'The SSH user must be able to write there (or set sudo: true)'
      )
  }

  /** HUP, then wait until the master runs workers that did not exist before (the reload took). */
  private async reload(): Promise<number[]> {
    const before = await probe(this.host, this.o.pidFile, [this.master.pid])
    if (!isAlive(before, this.master.pid))
      throw new LoadBalancerError(`${this.host.name}: the nginx master ${this.master.pid} is gone`)
    const old = liveChildren(before, this.master.pid).map(p => p.pid)
    check(this.host, cmd.reload(this.master.pid), await this.run(cmd.reload(this.master.pid)))
    const ok = await waitUntilSoon(this.o.reloadTimeoutMs, this.o.pollMs, async () => {
      const snap = await probe(this.host, this.o.pidFile, [this.master.pid])
      if (!isAlive(snap, this.master.pid))
        throw new LoadBalancerError(
          `${this.host.name}: the nginx master ${this.master.pid} exited after the reload`
        )
      return acceptingWorkers(snap, this.master.pid).some(w => !old.includes(w.pid)) ? true : undefined
    })
    if (!ok)
      throw new LoadBalancerError(
        `${this.host.name}: nginx started no new workers within ${formatDuration(this.o.reloadTimeoutMs)} of the reload ` +
          '(its error log says why): it still runs the configuration from before'
      )
    return old
  }

  /** The run is over and every server is back: the next run starts from the file as it is. */
  async settled(): Promise<void> {
    await this.run(cmd.removeState(this.o.stateDir, ORIGINAL))
  }

  /** The run ends (settled or not): its watchdog on the load balancer stands down. */
  async close(): Promise<void> {
    await this.watchdog?.disarm()
  }
}

export function describeState(s: ServerState): string {
  if (s.down) return 'down'
  return s.weight === null ? 'in (weight 1, the default)' : `in at weight ${s.weight}`
}
