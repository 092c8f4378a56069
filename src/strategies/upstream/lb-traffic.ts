/**
 * What goes to a backend through the load balancer: the connections nginx holds to it (the drain)
 * and the tries its access log records (the canary's error rate). Read only; one per run.
 */
import { check, type Host } from '../../host/host.js'
import { isAlive, probe, sleep } from './deps.js'
import * as cmd from './lb-commands.js'
import { emptyTally, tallyLines, type Tally } from './error-rate.js'
import { LoadBalancerError } from './lb-read.js'
import { remoteText } from './remote-text.js'

export class BackendTraffic {
  constructor(
    private readonly host: Host,
    private readonly pidFile: string,
    private readonly masterPid: number,
    private readonly pollMs: number,
    private readonly accessLogs: string[]
  ) {}

  private run(argv: string[], timeoutMs = 60_000) {
    return this.host.run(argv, { sudo: this.host.sudo, timeoutMs })
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
      const snap = await probe(this.host, this.pidFile, [this.masterPid])
      const left = oldWorkers.filter(
        p => isAlive(snap, p) && snap.procs.get(p)?.ppid === this.masterPid
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
      await sleep(this.pollMs)
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
}
