/**
 * Making a verified SSH connection: the host key checked against what is trusted for that host
 * (key families offered as OpenSSH does), Nagle off from the handshake on (and the writes of one
 * tick coalesced: coalesce.ts), and a bastion shared by every host reached through it.
 */
import type { Duplex } from 'node:stream'
import { NodeSSH, type Config } from 'node-ssh'
import { clientSocket, coalesceWrites } from './coalesce.js'
import { hostKeyAlgorithms, keyFamily, keyTypeOf, verifyHostKey, type HostKeyPolicy } from './known-hosts.js'

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

/** The host key was refused: nothing was sent. */
export class HostKeyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HostKeyError'
  }
}

/** What a connection needs besides its target: the host key policy, the timeout and a log. */
export interface ConnectContext {
  hostKeys: HostKeyPolicy
  connectTimeoutMs: number
  log?: (message: string) => void
}

/**
 * One verified SSH connection (through a tunnel from `sock` when given), with Nagle off. The host
 * is offered the host key algorithms of the keys trusted for it; a host known only by
 * fingerprints is asked for one key family after another until a key matches or none is left.
 */
export async function connectSsh(
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
  // ssh2's own order without its first try, 'none' (a round trip to learn the methods allowed):
  // the methods given are tried, each in its turn.
  config.authHandler = (['password', 'publickey', 'agent'] as const).filter(
    m => (m === 'publickey' ? credentials.privateKey : credentials[m]) !== undefined
  )
  if (sock) config.sock = sock
  const ssh = new NodeSSH()
  try {
    const connecting = ssh.connect(config)
    // Nagle off before the handshake too: its 4-5 round trips (key exchange, userauth) would
    // otherwise wait ~40 ms each for a delayed ACK (measured: ready after 210 ms instead of 50 ms).
    // node-ssh creates its ssh2 Client synchronously inside connect() when the key is given as text.
    ssh.connection?.setNoDelay(true)
    coalesceWrites(clientSocket(ssh.connection))
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
  coalesceWrites(clientSocket(ssh.connection))
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
