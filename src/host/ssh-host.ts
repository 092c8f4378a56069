/**
 * The one real Host: one SSH connection per host (node-ssh / ssh2), reused for every step, with
 * one long-lived `sh` channel that commands are fed to, and a second one beside it for what must
 * not wait behind them (the deploy lock's lease renewals and checks: `aside`). Nagle is turned
 * off: a round trip then costs about 1 ms instead of 40-140 ms (bench/upload.mjs prints the round trip of a trivial command).
 */
import http from 'node:http'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import type { NodeSSH } from 'node-ssh'
import {
  ConnectionLostError,
  SudoPasswordError,
  type ExecResult,
  type Host,
  type HttpResponse,
  type RunOptions,
  type UploadProgress
} from './host.js'
import type { HostKeyPolicy } from './known-hosts.js'
import { RemoteShell } from './remote-shell.js'
import { connectSsh, HostKeyError, JumpHost, type Credentials, type Endpoint } from './ssh-connect.js'
import { runAside } from './aside.js'
import { streamUpload } from './stream-upload.js'
import { commandLine } from './quote.js'
import { traced } from './trace.js'
import { refuseUnclearedExe } from './exe-run.js'

/** readFile's script: $1 the path; status 3 when it does not exist. */
export const READ_FILE = 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi'

export { HostKeyError, JumpHost, type Credentials, type Endpoint } from './ssh-connect.js'

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

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

export class SshHost implements Host {
  readonly name: string
  readonly address: string
  readonly sudo: boolean
  readonly privileged?: (argv: readonly string[]) => readonly string[]
  private ssh: NodeSSH | null = null
  private shell: RemoteShell | null = null
  /** The side shell, opened along with the main one (no round trip of its own), or its failure. */
  private side: Promise<RemoteShell | Error> | null = null
  private closed = false
  private connecting: Promise<void> | null = null

  private constructor(private readonly options: SshHostOptions) {
    this.name = options.target.label
    this.address = options.target.host
    this.sudo = options.sudo
    this.privileged = options.privileged
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
      const lost = new ConnectionLostError(this.name, 'the connection closed')
      this.shell?.fail(lost)
      void this.side?.then(s => s instanceof RemoteShell && s.fail(lost))
    })
    // Both channel requests leave in one flight: the side shell costs no round trip of its own.
    this.side = this.openShell(ssh).catch((e: Error) => e)
    this.shell = await this.openShell(ssh)
  }

  /**
   * A command on the side shell: one round trip, where a channel of its own per command pays
   * three (open, exec, output). A host that refuses a second session gets a channel per command.
   */
  private async runAside(line: string, timeoutMs: number): Promise<ExecResult> {
    const connection = this.ssh!.connection!
    let side = await this.side
    if (side instanceof RemoteShell && side.dead) {
      // Its last command timed out and closed it: open it again for this one.
      this.side = this.openShell(this.ssh!).catch((e: Error) => e)
      side = await this.side
    }
    return side instanceof RemoteShell
      ? side.run(line, timeoutMs)
      : runAside(connection, this.name, line, timeoutMs)
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
    const words = options.sudo ? ['sudo', '-n', '--', ...(this.privileged?.(argv) ?? argv)] : [...argv]
    const line = commandLine(words)
    await this.ensureOpen()
    const timeoutMs = options.timeoutMs ?? 60_000
    const result = await traced(
      this.name,
      `$ ${line}${options.aside ? ' (side shell)' : ''}`,
      () => (options.aside ? this.runAside(line, timeoutMs) : this.shell!.run(line, timeoutMs)),
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
    await traced(
      this.name,
      `upload ${localPath} to ${remotePath} (stream)`,
      () => streamUpload(this.ssh!.connection!, this.name, localPath, remotePath, onProgress),
      () => 'done'
    )
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
    void this.side?.then(s => s instanceof RemoteShell && s.close())
    this.ssh?.dispose()
    this.ssh = null
  }
}
