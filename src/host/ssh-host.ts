/**
 * The one real Host: one SSH connection per host (node-ssh / ssh2), reused for every step, with
 * one long-lived `sh` channel that commands are fed to, and a second one beside it for what must
 * not wait behind them (the deploy lock's lease renewals and checks: `aside`). Nagle is turned
 * off: a round trip then costs about 1 ms instead of 40-140 ms (bench/upload.mjs prints the round trip of a trivial command).
 */
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
import { trace, traced } from './trace.js'
import { getWithWarm, WarmChannels } from './warm-channels.js'
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
  /** The upload's and the next health GET's channels opened ahead (warmUpload, warmHttp). */
  private readonly warm: WarmChannels
  private closed = false
  private connecting: Promise<void> | null = null
  /** detach(true): the connection is closed between uses (a host that waits in a fleet). */
  private detachedNow = false
  /** Closed on purpose by detach: the next login is planned, not a reconnect after a loss. */
  private dropped = false
  /** Commands, uploads and GETs under way: a detached host closes its connection only at 0. */
  private inflight = 0

  private constructor(private readonly options: SshHostOptions) {
    this.name = options.target.label
    this.address = options.target.host
    this.sudo = options.sudo
    this.privileged = options.privileged
    this.warm = new WarmChannels(this.name)
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
        // A login after detach is planned: said only when it needed more than one attempt.
        if (!this.dropped || i > 1) this.options.log?.(`${this.name}: reconnected (attempt ${i})`)
        this.dropped = false
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

  get detached(): boolean {
    return this.detachedNow
  }

  /**
   * true: the connection closes as soon as nothing uses it, and each later command logs in again
   * (verifying the host key again) and closes it once done, so a host that waits costs the runner
   * no connection. false: the connection stays open again from the next use on.
   */
  detach(on: boolean): void {
    this.detachedNow = on
    if (on) this.closeWhenIdle()
  }

  /** Counts a use of the connection; a detached host closes it when the last use ends. */
  private async using<T>(work: () => Promise<T>): Promise<T> {
    this.inflight++
    try {
      return await work()
    } finally {
      this.inflight--
      // Deferred: a caller that sends its next command as soon as this one answers keeps the connection.
      if (this.detachedNow) setImmediate(() => this.closeWhenIdle())
    }
  }

  private closeWhenIdle(): void {
    if (!this.detachedNow || this.inflight > 0 || this.closed || this.connecting || !this.ssh) return
    this.dropped = true
    trace(this.name, 'close the connection while the host waits (detached)', 'closed', Date.now())
    this.dropConnection()
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<ExecResult> {
    return this.using(() => this.runNow(argv, options))
  }

  private async runNow(argv: readonly string[], options: RunOptions): Promise<ExecResult> {
    refuseUnclearedExe(argv, options)
    if (options.aside && options.gate)
      throw new Error('a gate joins commands of the host shell, not of the side shell')
    // Every privileged command passes here: plain sudo, or the helper's sub-command.
    const words = options.sudo ? ['sudo', '-n', '--', ...(this.privileged?.(argv) ?? argv)] : [...argv]
    const line = commandLine(words)
    await this.ensureOpen()
    const timeoutMs = options.timeoutMs ?? 60_000
    const result = await traced(
      this.name,
      `$ ${line}${options.aside ? ' (side shell)' : ''}${gateNote(options.gate)}`,
      () => (options.aside ? this.runAside(line, timeoutMs) : this.shell!.run(line, timeoutMs, options.gate)),
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

  warmUpload(): void {
    if (this.ssh) this.warm.warmUpload(this.ssh)
  }

  async upload(
    localPath: string,
    remotePath: string,
    onProgress?: (p: UploadProgress) => void
  ): Promise<string | null> {
    return this.using(async () => {
      await this.ensureOpen()
      return traced(
        this.name,
        `upload ${localPath} to ${remotePath} (stream)`,
        () =>
          streamUpload(
            () => this.warm.uploadChannel(this.ssh!),
            this.name,
            localPath,
            remotePath,
            onProgress
          ),
        sha => `done, sha256 ${sha ?? 'not said'}`
      )
    })
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
      () => this.using(() => this.fetch(url, timeoutMs)),
      r => `status ${r.status}`
    )
  }

  warmHttp(url: string): void {
    if (this.ssh) this.warm.warmGet(this.ssh, url)
  }

  private async fetch(url: string, timeoutMs: number): Promise<HttpResponse> {
    const warm = this.warm.takeGet()
    await this.ensureOpen()
    return getWithWarm(this.ssh!, this.name, warm, url, timeoutMs)
  }

  async close(): Promise<void> {
    if (!this.closed) this.options.jump?.release()
    this.closed = true
    this.dropConnection()
  }

  private dropConnection(): void {
    this.shell?.close()
    void this.side?.then(s => s instanceof RemoteShell && s.close())
    this.warm.drop()
    this.ssh?.dispose()
    this.ssh = null
    this.shell = null
    this.side = null
  }
}

/** How the trace shows a gated command: what it opens, what it waits for. */
function gateNote(gate: RunOptions['gate']): string {
  return (
    (gate?.set ? ` (opens gate ${gate.set})` : '') +
    (gate?.need ? ` (only if gate ${gate.need} is open)` : '')
  )
}
