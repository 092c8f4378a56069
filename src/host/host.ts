/**
 * What an upgrade needs from a host, and nothing more. The upgrade builds argv lists; the Host
 * runs them. One real implementation (SshHost); unit tests use fakes.
 */
import { remoteLine } from '../remote-text.js'
import type { Gate } from './remote-shell.js'

export interface ExecResult {
  stdout: string
  stderr: string
  /** Exit status of the remote command. */
  code: number
}

export interface RunOptions {
  /** Run through `sudo -n` (only when the `sudo` input asks for it). */
  sudo?: boolean
  /** Fails with CommandTimeoutError after this long. Default 60s. */
  timeoutMs?: number
  /**
   * A server's executable run through /proc/<pid>/exe with sudo must come with the clearance that
   * `masterExeRun` (host/exe-run.ts) gave after checking the file's owner: see `refuseUnclearedExe`.
   */
  exe?: object
  /**
   * Run on the side shell (a second channel of the same connection), not queued behind the
   * commands of the host's shell: the deploy lock's lease renewals and checks, which a long health
   * command must not hold up.
   */
  aside?: boolean
  /**
   * On the host's shell only: `set` opens a gate by this command's success, `need` runs this
   * command only if that gate is open, else it answers GATE_CLOSED without running (remote-shell.ts).
   * So a command that must follow another's success can be sent before that answer comes back.
   */
  gate?: Gate
}

export interface HttpResponse {
  status: number
  body: string
}

export interface UploadProgress {
  transferred: number
  total: number
}

export interface Host {
  /** How the host is named in logs: user@host:port. */
  readonly name: string
  /** The address the host was reached at (for `{host}` in health URLs). */
  readonly address: string
  /** Whether privileged commands go through `sudo -n`. */
  readonly sudo: boolean
  /**
   * With sudo-helper: the words after `sudo` that run a privileged argv (the helper and its
   * sub-command; throws for an argv it has none for). Unset: the argv itself.
   */
  readonly privileged?: (argv: readonly string[]) => readonly string[]
  /** Runs argv (each word quoted) and resolves with its output and status; never rejects on a non-zero status. */
  run(argv: readonly string[], options?: RunOptions): Promise<ExecResult>
  /**
   * An upload is coming: its channel may open now, beside other work, so that the upload itself
   * pays only for its data and its end (optional; a Host without it opens the channel then).
   */
  warmUpload?(): void
  /**
   * Copies a local file to a remote path (as the SSH user) and makes it executable (0755); resolves
   * with the sha256 of what landed, as the host computed it (null: the host could not say).
   */
  upload(
    localPath: string,
    remotePath: string,
    onProgress?: (p: UploadProgress) => void
  ): Promise<string | null>
  /** Reads a remote text file; null when it does not exist. */
  readFile(remotePath: string, options?: RunOptions): Promise<string | null>
  /** An HTTP(S) GET made from the host's side (tunnelled through the SSH connection). */
  http(url: string, timeoutMs: number): Promise<HttpResponse>
  /**
   * A GET of `url` comes soon: its connection may open now, so that the GET pays for its request
   * alone (optional; a Host without it, or a connection the server closed meanwhile, opens one then).
   */
  warmHttp?(url: string): void
  /**
   * A host that waits in a fleet (pre-staged for its batch, parked until every host passed), beyond
   * the run's idle-connections: true closes its connection between uses, each later use logging in
   * again; false keeps it open again (optional: a Host without it stays connected).
   */
  detach?(on: boolean): void
  /** Whether detach(true) is in force: timers that renew a lease then renew it only as often as it needs. */
  readonly detached?: boolean
  close(): Promise<void>
}

/**
 * Whether a lease held on `host` (the deploy lock, a parked watchdog) should be renewed now, at a
 * timer's tick: always, unless the host is detached, where each renewal is a login; then only
 * once a third of the lease has gone by since `lastAt`, which leaves two more tries before it ends.
 */
export function renewalDue(host: Host, lastAt: number, leaseMs: number): boolean {
  return !host.detached || Date.now() - lastAt >= leaseMs / 3
}

/** The command did not finish in time; the remote process may still run. */
export class CommandTimeoutError extends Error {
  constructor(
    readonly host: string,
    readonly command: string,
    readonly timeoutMs: number
  ) {
    super(`${host}: \`${command}\` did not finish within ${timeoutMs}ms`)
    this.name = 'CommandTimeoutError'
  }
}

/** The SSH connection dropped while a command ran: whether it took effect is unknown. */
export class ConnectionLostError extends Error {
  constructor(
    readonly host: string,
    detail: string
  ) {
    super(`${host}: the SSH connection was lost (${detail})`)
    this.name = 'ConnectionLostError'
  }
}

/** `sudo -n` refused because sudo wants a password. */
export class SudoPasswordError extends Error {
  constructor(readonly host: string) {
    super(
      `${host}: sudo asked for a password, and the action never types one (it runs sudo -n). ` +
        `Allow the deploy user to run the needed commands without a password (a NOPASSWD rule in /etc/sudoers.d), ` +
        `or deploy as a user that owns the binary and the nginx master, with sudo: false`
    )
    this.name = 'SudoPasswordError'
  }
}

/** Throws when a command failed; the message names the command and its stderr. */
export function check(host: Host, argv: readonly string[], result: ExecResult): ExecResult {
  if (result.code !== 0) {
    const detail = remoteLine((result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | '))
    throw new Error(
      `${host.name}: \`${argv.join(' ')}\` failed with status ${result.code}${detail ? `: ${detail}` : ''}`
    )
  }
  return result
}
