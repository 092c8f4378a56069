/**
 * The one real Host: one SSH connection per host (node-ssh / ssh2), reused for every step, with
 * one long-lived `sh` channel that commands are fed to (and a short-lived channel of its own for
 * a command that must not wait behind them: the deploy lock's lease renewals). Nagle is turned
 * off: a round trip then costs about 1 ms instead of 40-140 ms (see shared/PROTOCOL.md).
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import { NodeSSH, type Config } from 'node-ssh'
import type { ClientChannel } from 'ssh2'
import {
  CommandTimeoutError,
  ConnectionLostError,
  SudoPasswordError,
  type ExecResult,
  type Host,
  type HttpResponse,
  type RunOptions,
  type UploadProgress
} from './host.js'
import { hostKeyAlgorithms, keyFamily, keyTypeOf, verifyHostKey, type HostKeyPolicy } from './known-hosts.js'
import { OutputReader } from './output-reader.js'
import { runAside } from './aside.js'
import { commandLine } from './quote.js'
import { traced } from './trace.js'
import { refuseUnclearedExe } from './trust.js'

/** readFile's script: $1 the path; status 3 when it does not exist. */
export const READ_FILE = 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi'

export interface Credentials {
  privateKey?: string
  passphrase?: string
  password?: string
  /** An ssh-agent's socket (SSH_AUTH_SOCK), tried when no key is given. */
  agent?: string
}

export interface Endpoint {
  host: string
  port: number
  user: string
  label: string
}

export interface SshHostOptions {
  target: Endpoint
  credentials: Credentials
  hostKeys: HostKeyPolicy
  sudo: boolean
  /**
   * The words that run a privileged argv after `sudo -n --` (default: the argv itself). The sudo
   * helper maps it to one of its sub-commands (src/sudo-helper/translate.ts), or throws.
   */
  privileged?: (argv: readonly string[]) => readonly string[]
  connectTimeoutMs: number
  /** Reach the target through this bastion (its key verified like any other). */
  jump?: JumpHost
  /** How often to retry a lost connection before giving up (with backoff). */
  reconnectAttempts?: number
  log?: (message: string) => void
}

/** The host key was refused: nothing was sent. */
export class HostKeyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HostKeyError'
  }
}

interface Pending {
  mark: string
  line: string
  timeoutMs: number
  timer?: NodeJS.Timeout
  resolve: (r: ExecResult) => void
  reject: (e: Error) => void
}

/**
 * One `sh` on the host that reads commands from stdin; replies are framed by random markers.
 * Commands are PIPELINED: each is written as soon as it is asked for, and the shell runs them in
 * order, so commands issued together (Promise.all, no decision between them) cost one round trip
 * in all instead of one each. A command's timeout counts from the moment the one before it ended.
 */
class RemoteShell {
  private readonly pending: Pending[] = []
  // Linear reads, bounded: a host that prints megabytes costs one pass and a note of what was cut.
  private readonly out = new OutputReader()
  private readonly err = new OutputReader()
  dead = false

  constructor(
    private readonly channel: ClientChannel,
    private readonly hostName: string
  ) {
    channel.on('data', (d: Buffer) => {
      this.out.push(d)
      this.settle()
    })
    channel.stderr.on('data', (d: Buffer) => {
      this.err.push(d)
      this.settle()
    })
    channel.on('close', () => this.fail(new ConnectionLostError(hostName, 'the remote shell closed')))
  }

  /** Fails the command that runs with `error`, and every one written after it as lost. */
  fail(error: Error): void {
    this.dead = true
    const [head, ...rest] = this.pending.splice(0)
    if (head) {
      clearTimeout(head.timer)
      head.reject(error)
    }
    for (const p of rest) p.reject(new ConnectionLostError(this.hostName, 'the remote shell is closed'))
  }

  close(): void {
    this.dead = true
    this.channel.close()
  }

  /** Runs one command line; commands run in the order asked, on this channel. */
  run(line: string, timeoutMs: number): Promise<ExecResult> {
    if (this.dead) return Promise.reject(new ConnectionLostError(this.hostName, 'the remote shell is closed'))
    const mark = 'ZD' + randomBytes(12).toString('hex')
    return new Promise<ExecResult>((resolve, reject) => {
      this.pending.push({ mark, line, timeoutMs, resolve, reject })
      if (this.pending.length === 1) this.begin()
      // A subshell keeps the command from changing our shell; stdin is never the channel's.
      this.channel.write(
        `( ${line}\n) </dev/null; printf '\\n%s %d\\n' ${mark} "$?"; printf '\\n%s\\n' ${mark} >&2\n`
      )
    })
  }

  /** The command at the head of the line runs now: the readers look for its markers, its timeout starts. */
  private begin(): void {
    const head = this.pending[0]
    if (!head) return
    this.out.expect(`\n${head.mark} `)
    this.err.expect(`\n${head.mark}`)
    head.timer = setTimeout(() => {
      this.fail(new CommandTimeoutError(this.hostName, head.line, head.timeoutMs))
      this.channel.close()
    }, head.timeoutMs)
  }

  private settle(): void {
    for (;;) {
      const p = this.pending[0]
      if (!p) return
      const out = this.out.result()
      const err = this.err.result()
      if (!out || !err) return
      this.pending.shift()
      clearTimeout(p.timer)
      // The next command's output may already be here: expect() reads what came after the marker.
      this.begin()
      p.resolve({ stdout: out.text, stderr: err.text, code: Number(out.rest) })
    }
  }
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** What a connection needs besides its target: the host key policy, the timeout and a log. */
interface ConnectContext {
  hostKeys: HostKeyPolicy
  connectTimeoutMs: number
  log?: (message: string) => void
}

/**
 * One verified SSH connection (through a tunnel from `sock` when given), with Nagle off. The host
 * is offered the host key algorithms of the keys trusted for it; a host known only by
 * fingerprints is asked for one key family after another until a key matches or none is left.
 */
async function connectSsh(
  ctx: ConnectContext,
  target: Endpoint,
  credentials: Credentials,
  sock?: () => Promise<Duplex>
): Promise<NodeSSH> {
  const tried: number[] = []
  const refused: string[] = []
  for (;;) {
    const algorithms = hostKeyAlgorithms(ctx.hostKeys, target.host, target.port, tried)
    const attempt = await connectOnce(ctx, target, credentials, algorithms, sock && (await sock()))
    if (attempt.ssh) return attempt.ssh
    const family = attempt.keyType === undefined ? -1 : keyFamily(attempt.keyType)
    // Known by fingerprints only: the list shrinks with each family tried (known_hosts lines fix it).
    const byFingerprintOnly =
      algorithms !== undefined &&
      hostKeyAlgorithms(ctx.hostKeys, target.host, target.port, [0, 1, 2])?.length === 0
    const mismatch = (keys: string[]) =>
      new HostKeyError(
        `${target.label}: HOST KEY MISMATCH for ${target.host}:${target.port}: none of its host keys (${keys.join(', ')}) has a fingerprint in host-fingerprints. ` +
          'Someone may be intercepting the connection, or the host was reinstalled; verify its keys out of band (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host)'
      )
    // No key of the families left: every key the host has was refused already.
    if (byFingerprintOnly && attempt.keyType === undefined && refused.length > 0) throw mismatch(refused)
    if (attempt.refusal === undefined || !byFingerprintOnly || family < 0 || tried.includes(family))
      throw attempt.error
    tried.push(family)
    refused.push(`${attempt.keyType} ${attempt.fingerprint}`)
    const next = hostKeyAlgorithms(ctx.hostKeys, target.host, target.port, tried)
    if (next === undefined || next.length === 0) throw mismatch(refused)
  }
}

interface Attempt {
  ssh?: NodeSSH
  error?: Error
  /** Why the host key was refused, and which key the host presented. */
  refusal?: string
  keyType?: string
  fingerprint?: string
}

async function connectOnce(
  ctx: ConnectContext,
  target: Endpoint,
  credentials: Credentials,
  serverHostKey: string[] | undefined,
  sock?: Duplex
): Promise<Attempt> {
  const seen: Attempt = {}
  const config: Config = {
    host: target.host,
    port: target.port,
    username: target.user,
    readyTimeout: ctx.connectTimeoutMs,
    keepaliveInterval: 5000,
    keepaliveCountMax: 3,
    hostVerifier: (key: Buffer) => {
      const verdict = verifyHostKey(ctx.hostKeys, target.host, target.port, key)
      seen.keyType = keyTypeOf(key)
      seen.fingerprint = verdict.fingerprint
      if (!verdict.ok) seen.refusal = verdict.reason
      return verdict.ok
    }
  }
  if (serverHostKey !== undefined) config.algorithms = { serverHostKey: serverHostKey as never }
  if (credentials.privateKey !== undefined) config.privateKey = credentials.privateKey
  if (credentials.passphrase !== undefined) config.passphrase = credentials.passphrase
  if (credentials.password !== undefined) config.password = credentials.password
  if (credentials.agent !== undefined) config.agent = credentials.agent
  if (sock) config.sock = sock
  const ssh = new NodeSSH()
  try {
    const connecting = ssh.connect(config)
    // Nagle off before the handshake too: its 4-5 round trips (key exchange, userauth) would
    // otherwise wait ~40 ms each for a delayed ACK (measured: ready after 210 ms instead of 50 ms).
    // node-ssh creates its ssh2 Client synchronously inside connect() when the key is given as text.
    ssh.connection?.setNoDelay(true)
    await connecting
  } catch (e) {
    sock?.destroy()
    if (seen.refusal) return { ...seen, error: new HostKeyError(`${target.label}: ${seen.refusal}`) }
    return {
      ...seen,
      error: new Error(
        `${target.label}: cannot connect over SSH: ${connectProblem(e as Error, serverHostKey)}`
      )
    }
  }
  ssh.connection!.setNoDelay(true)
  // node-ssh stops listening for 'error' once the connection is ready; without a listener a
  // reset connection (ECONNRESET, keepalive timeout) would crash the whole process. The 'close'
  // that follows fails the pending command or upload with ConnectionLostError.
  ssh.connection!.on('error', (e: Error) => ctx.log?.(`${target.label}: SSH connection error: ${e.message}`))
  return { ssh }
}

/** ssh2's words, plus what they mean when the host has none of the key types trusted for it. */
function connectProblem(e: Error, offered: string[] | undefined): string {
  if (offered === undefined || !/no matching .*host ?key/i.test(e.message)) return e.message
  const message = `the host has no host key of the types that known-hosts trusts for it (${offered.join(', ')}). Add the line of a key it has (ssh-keyscan, checked out of band) to known-hosts`
  return `${e.message}: ${message}`
}

/**
 * One connection to a bastion, shared by every host reached through it: one login however large
 * the fleet (a bastion's MaxStartups drops bursts of logins), made again when it drops, and
 * closed with the last host that uses it.
 */
export class JumpHost {
  private ssh: NodeSSH | null = null
  private connecting: Promise<NodeSSH> | null = null
  private users = 0

  constructor(
    private readonly target: Endpoint,
    private readonly credentials: Credentials,
    private readonly ctx: ConnectContext
  ) {}

  acquire(): void {
    this.users++
  }

  release(): void {
    if (--this.users > 0) return
    this.users = 0
    this.ssh?.dispose()
    this.ssh = null
  }

  private connection(): Promise<NodeSSH> {
    if (this.ssh?.isConnected()) return Promise.resolve(this.ssh)
    this.connecting ??= connectSsh(this.ctx, this.target, this.credentials)
      .then(ssh => {
        this.ssh = ssh
        ssh.connection!.on('close', () => {
          if (this.ssh === ssh) this.ssh = null
        })
        return ssh
      })
      .finally(() => (this.connecting = null))
    return this.connecting
  }

  /** A tunnel to host:port, opened by the bastion. */
  async forward(host: string, port: number): Promise<Duplex> {
    const ssh = await this.connection()
    return (await ssh.forwardOut('127.0.0.1', 0, host, port)) as Duplex
  }
}

export class SshHost implements Host {
  readonly name: string
  readonly address: string
  readonly sudo: boolean
  private ssh: NodeSSH | null = null
  private shell: RemoteShell | null = null
  private closed = false
  private connecting: Promise<void> | null = null

  private constructor(private readonly options: SshHostOptions) {
    this.name = options.target.label
    this.address = options.target.host
    this.sudo = options.sudo
  }

  /** Connects (verifying the host key) and opens the command shell. */
  static async connect(options: SshHostOptions): Promise<SshHost> {
    const host = new SshHost(options)
    options.jump?.acquire()
    try {
      await host.open()
    } catch (e) {
      await host.close()
      throw e
    }
    return host
  }

  private async open(): Promise<void> {
    const { target, credentials, jump } = this.options
    const sock = jump ? () => jump.forward(target.host, target.port) : undefined
    const ssh = await connectSsh(this.options, target, credentials, sock)
    this.ssh = ssh
    ssh.connection!.on('close', () => {
      // A late close of an older connection must not fail the shell of a newer one.
      if (this.ssh !== ssh) return
      this.ssh = null
      this.shell?.fail(new ConnectionLostError(this.name, 'the connection closed'))
    })
    this.shell = await this.openShell(ssh)
  }

  private openShell(ssh: NodeSSH): Promise<RemoteShell> {
    return new Promise((resolve, reject) => {
      ssh.connection!.exec('exec /bin/sh', (err, channel) => {
        if (err) reject(new Error(`${this.name}: cannot start a remote shell: ${err.message}`))
        else resolve(new RemoteShell(channel, this.name))
      })
    })
  }

  /** After a lost connection: reconnect with backoff, verifying the host key again. */
  private async ensureOpen(): Promise<void> {
    if (this.closed) throw new Error(`${this.name}: the connection was closed by the action`)
    if (this.ssh && this.shell && !this.shell.dead) return
    this.connecting ??= this.reopen().finally(() => (this.connecting = null))
    await this.connecting
  }

  private async reopen(): Promise<void> {
    if (this.ssh && !this.shell?.dead) return
    if (this.ssh) {
      // The connection lives; only the shell died (a command timed out).
      this.shell = await this.openShell(this.ssh)
      return
    }
    const attempts = this.options.reconnectAttempts ?? 6
    let delay = 250
    for (let i = 1; ; i++) {
      try {
        await this.open()
        this.options.log?.(`${this.name}: reconnected (attempt ${i})`)
        return
      } catch (e) {
        if (e instanceof HostKeyError || i >= attempts) throw e
        this.options.log?.(
          `${this.name}: reconnect attempt ${i} failed (${(e as Error).message}); retrying in ${delay}ms`
        )
        await sleep(delay)
        delay = Math.min(delay * 2, 8000)
      }
    }
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<ExecResult> {
    refuseUnclearedExe(argv, options)
    // Every privileged command passes here: plain sudo, or the helper's sub-command.
    const words = options.sudo
      ? ['sudo', '-n', '--', ...(this.options.privileged?.(argv) ?? argv)]
      : [...argv]
    const line = commandLine(words)
    await this.ensureOpen()
    const timeoutMs = options.timeoutMs ?? 60_000
    const result = await traced(
      this.name,
      `$ ${line}${options.aside ? ' (own channel)' : ''}`,
      () =>
        options.aside
          ? runAside(this.ssh!.connection!, this.name, line, timeoutMs)
          : this.shell!.run(line, timeoutMs),
      r => `exit ${r.code}${r.stderr.trim() ? `, stderr: ${r.stderr.trim()}` : ''}`
    )
    if (
      options.sudo &&
      result.code !== 0 &&
      /password is required|a terminal is required/.test(result.stderr)
    )
      throw new SudoPasswordError(this.name)
    return result
  }

  async upload(
    localPath: string,
    remotePath: string,
    onProgress?: (p: UploadProgress) => void
  ): Promise<void> {
    await this.ensureOpen()
    const ssh = this.ssh!
    const connection = ssh.connection!
    // ssh2's fastPut never calls back when the connection drops mid-transfer: without this the
    // upload (and the whole run) would wait forever.
    let onClose = (): void => undefined
    const lost = new Promise<never>((_, reject) => {
      onClose = () =>
        reject(new ConnectionLostError(this.name, `the connection closed while uploading to ${remotePath}`))
      connection.once('close', onClose)
    })
    try {
      await traced(
        this.name,
        `upload ${localPath} to ${remotePath} (SFTP)`,
        () =>
          Promise.race([
            ssh.putFile(localPath, remotePath, null, {
              concurrency: 64,
              step: (transferred: number, _chunk: number, total: number) =>
                onProgress?.({ transferred, total })
            }),
            lost
          ]),
        () => 'done'
      )
    } finally {
      connection.removeListener('close', onClose)
    }
  }

  async readFile(remotePath: string, options: RunOptions = {}): Promise<string | null> {
    const argv = ['sh', '-c', READ_FILE, 'sh', remotePath]
    const r = await this.run(argv, options)
    if (r.code === 3) return null
    if (r.code !== 0) throw new Error(`${this.name}: cannot read ${remotePath}: ${r.stderr.trim()}`)
    return r.stdout
  }

  http(url: string, timeoutMs: number): Promise<HttpResponse> {
    return traced(
      this.name,
      `GET ${url} (through the SSH connection)`,
      () => this.fetch(url, timeoutMs),
      r => `status ${r.status}`
    )
  }

  private async fetch(url: string, timeoutMs: number): Promise<HttpResponse> {
    await this.ensureOpen()
    const u = new URL(url)
    const https = u.protocol === 'https:'
    const hostname = u.hostname.replace(/^\[|\]$/g, '')
    const port = Number(u.port || (https ? 443 : 80))
    const started = Date.now()
    let channel: Duplex
    try {
      channel = (await this.ssh!.forwardOut('127.0.0.1', 0, hostname, port)) as Duplex
    } catch (e) {
      throw new Error(
        `${this.name}: cannot reach ${u.host} from the host (${(e as Error).message}); ` +
          `is it listening there, and does sshd allow forwarding (AllowTcpForwarding)? health-command is an alternative`
      )
    }
    // The tunnel is already authenticated by SSH; a health check must not fail on a self-signed certificate.
    const socket: Duplex = https
      ? tls.connect({
          socket: channel,
          servername: /^[\d.:]+$/.test(hostname) ? undefined : hostname,
          rejectUnauthorized: false
        })
      : channel
    return new Promise<HttpResponse>((resolve, reject) => {
      const req = http.request(
        {
          method: 'GET',
          path: u.pathname + u.search,
          headers: { Host: u.host, Connection: 'close', 'User-Agent': 'zerodown-action' },
          // No agent: an agent (even agent: false) would ignore createConnection and dial locally.
          createConnection: () => socket as never
        },
        res => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size <= 65536) chunks.push(c)
          })
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })
          )
          res.on('error', reject)
        }
      )
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs}ms`)),
        Math.max(1, timeoutMs - (Date.now() - started))
      )
      req.on('close', () => clearTimeout(timer))
      req.on('error', reject)
      req.end()
    }).finally(() => socket.destroy())
  }

  async close(): Promise<void> {
    if (!this.closed) this.options.jump?.release()
    this.closed = true
    this.shell?.close()
    this.ssh?.dispose()
    this.ssh = null
  }
}
