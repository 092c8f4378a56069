/**
 * The nginx load balancer as the upstream strategy drives it: read and check the managed file,
 * change one server at a time (write atomically, `nginx -t` with the running master's own binary
 * and arguments, restore the previous file if the test fails, HUP the master, wait until the
 * reload took), count what still goes to a backend, read the canary's log. One instance per run;
 * changes from hosts running in parallel go through one queue, each re-applied to the file as it
 * is then, so two hosts never overwrite each other's line.
 */
import { check, type Host } from '../../host/host.js'
import { formatDuration } from '../../duration.js'
import {
  acceptingWorkers,
  exePath,
  isAlive,
  liveChildren,
  parseMasterTitle,
  probe,
  sleep,
  waitUntilSoon
} from './deps.js'
import * as cmd from './lb-commands.js'
import { emptyTally, tallyLines, type Tally } from './error-rate.js'
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
}

/** One change of a server's state, for the job summary's timeline. */
export interface WeightEvent {
  at: number
  address: string
  state: ServerState
  why: string
}

/** The load balancer refused or failed a change; the file on it is what it was before. */
export class LoadBalancerError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LoadBalancerError'
  }
}

interface Master {
  pid: number
  exe: string
  configArgs: string[]
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

  private constructor(
    readonly host: Host,
    readonly o: LoadBalancerOptions,
    readonly master: Master,
    readonly accessLogs: string[],
    current: { file: ManagedFile; sha: string },
    original: ManagedFile,
    inherited: boolean
  ) {
    this.current = current
    this.original = original
    this.inherited = inherited
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
    return new LoadBalancer(host, o, master, facts.accessLogs, now, original, inherited)
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

  private names = new Map<string, Promise<{ ips: string[]; port: number } | null>>()

  /** The addresses a server's name stands for on the load balancer (nginx resolved it there); null for unix: sockets. */
  resolved(address: string): Promise<{ ips: string[]; port: number } | null> {
    if (!this.names.has(address)) this.names.set(address, this.resolve(address))
    return this.names.get(address)!
  }

  private async resolve(address: string): Promise<{ ips: string[]; port: number } | null> {
    const hp = cmd.splitAddress(address)
    if (!hp) return null
    if (/^[0-9a-fA-F:.]+$/.test(hp.host)) return { ips: [hp.host], port: hp.port }
    const r = await this.run(cmd.resolve(hp.host))
    const ips = cmd.parseResolved(r.stdout)
    if (ips.length === 0) throw new LoadBalancerError(`${this.host.name}: ${hp.host} does not resolve there`)
    return { ips, port: hp.port }
  }

  /** How nginx writes the server in $upstream_addr: ip:port, [v6]:port. */
  async logAddresses(address: string): Promise<string[]> {
    const r = await this.resolved(address)
    if (!r) return [address]
    return r.ips.map(ip => (ip.includes(':') ? `[${ip}]:${r.port}` : `${ip}:${r.port}`))
  }

  /** ESTABLISHED connections from the load balancer to a backend. */
  async connectionsTo(address: string): Promise<number> {
    const r = await this.resolved(address)
    if (!r) return 0
    let n = 0
    for (const ip of r.ips) {
      const argv = cmd.establishedTo(ip, r.port)
      const out = check(this.host, argv, await this.run(argv))
      n += out.stdout.split('\n').filter(l => l.trim() !== '').length
    }
    return n
  }

  /**
   * The drain: the workers from before the reload have exited (a reload is asynchronous: they
   * finish their requests first), and no connection to the backend is left. Resolves false when
   * timeoutMs passed first.
   */
  async waitDrained(
    address: string,
    oldWorkers: number[],
    timeoutMs: number,
    record: (atMs: number, connections: number, oldWorkers: number) => void
  ): Promise<boolean> {
    const started = Date.now()
    let last = ''
    for (;;) {
      const snap = await probe(this.host, this.o.pidFile, [this.master.pid])
      const left = oldWorkers.filter(
        p => isAlive(snap, p) && snap.procs.get(p)?.ppid === this.master.pid
      ).length
      const conns = await this.connectionsTo(address)
      const elapsed = Date.now() - started
      const key = `${left}/${conns}`
      if (key !== last) {
        record(elapsed, conns, left)
        last = key
      }
      if (left === 0 && conns === 0) return true
      if (elapsed >= timeoutMs) return false
      await sleep(this.o.pollMs)
    }
  }

  /** Where the access logs end now: the canary's window starts here. */
  async logMarks(): Promise<Map<string, number>> {
    const marks = new Map<string, number>()
    for (const path of this.accessLogs) {
      const r = await this.run(cmd.logSize(path))
      marks.set(path, r.code === 0 && /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : 0)
    }
    return marks
  }

  /** Counts the backend's tries in the log lines written since the marks (moves the marks on). */
  async tallySince(
    marks: Map<string, number>,
    backends: string[],
    into: Tally = emptyTally()
  ): Promise<Tally> {
    for (const [path, from] of marks) {
      const r = await this.run(cmd.logSince(path, from, 32 * 1024 * 1024))
      if (r.code !== 0)
        throw new LoadBalancerError(`${this.host.name}: cannot read ${path}: ${remoteText(r.stderr, 300)}`)
      const nl = r.stdout.indexOf('\n')
      const size = Number(/^size (\d+)$/.exec(r.stdout.slice(0, nl))?.[1] ?? from)
      const body = r.stdout.slice(nl + 1)
      // Only whole lines: the rest is read next time.
      const end = body.lastIndexOf('\n') + 1
      for (const b of backends) tallyLines(body.slice(0, end), b, into)
      marks.set(path, (size < from ? 0 : from) + Buffer.byteLength(body.slice(0, end)))
    }
    return into
  }

  /** The run is over and every server is back: the next run starts from the file as it is. */
  async settled(): Promise<void> {
    await this.run(cmd.removeState(this.o.stateDir, ORIGINAL))
  }
}

export function describeState(s: ServerState): string {
  if (s.down) return 'down'
  return s.weight === null ? 'in (weight 1, the default)' : `in at weight ${s.weight}`
}

async function readMaster(host: Host, pidFile: string): Promise<Master> {
  const snap = await probe(host, pidFile)
  if (snap.pid === null || !isAlive(snap, snap.pid))
    throw new LoadBalancerError(
      `${host.name}: no nginx master runs with the pid in ${pidFile}. Give the load balancer's pid file in pid-file`
    )
  const proc = snap.procs.get(snap.pid)!
  const parsed = parseMasterTitle(proc.title)
  if (!proc.title.startsWith('nginx: master process') || parsed === null)
    throw new LoadBalancerError(
      `${host.name}: process ${snap.pid} named in ${pidFile} is not an nginx master (${remoteText(proc.title, 120)})`
    )
  // The running master's own executable, never `nginx` from the PATH (another build, another config).
  const { path } = exePath(proc)
  if (!path.startsWith('/'))
    throw new LoadBalancerError(
      `${host.name}: cannot read the executable of nginx master ${snap.pid} (needs sudo: true?)`
    )
  return { pid: snap.pid, exe: path, configArgs: parsed.configArgs }
}

async function readFile(host: Host, path: string, name: string): Promise<{ file: ManagedFile; sha: string }> {
  const r = await host.run(cmd.readManagedFile(path), { sudo: host.sudo })
  if (r.code === 3)
    throw new LoadBalancerError(
      `${host.name}: upstream-file ${path} is a symbolic link; the action replaces the file with a rename and does not follow links. Give the real file`
    )
  if (r.code === 2) throw new LoadBalancerError(`${host.name}: upstream-file ${path} does not exist`)
  check(host, ['read', path], r)
  const nl = r.stdout.indexOf('\n')
  const sha = /^sha ([0-9a-f]{64})$/.exec(r.stdout.slice(0, nl))?.[1]
  if (!sha) throw new LoadBalancerError(`${host.name}: unexpected answer reading ${path}`)
  const text = r.stdout.slice(nl + 1)
  try {
    return { file: parseManagedFile(text, name), sha }
  } catch (e) {
    throw new LoadBalancerError(
      `${host.name}: upstream-file ${path}: ${remoteText((e as Error).message, 600)}`
    )
  }
}
