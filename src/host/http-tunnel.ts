/**
 * An HTTP(S) GET made from the host's side: a TCP connection forwarded through the SSH connection
 * (direct-tcpip), so a health URL on the host's loopback is reachable and nothing listens on the
 * runner. TLS is not verified: the tunnel is already authenticated by SSH.
 *
 * Opening the forwarded channel costs a round trip of its own before the request can go. A caller
 * that knows when its next GET comes (the health gate's interval) may open that channel ahead
 * (`openTunnel`, kept as a `WarmTunnel`): the GET then pays one round trip, not two.
 */
import http from 'node:http'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import type { NodeSSH } from 'node-ssh'
import type { HttpResponse } from './host.js'

/** Where a URL's GET connects, from the host's side: `host:port`, the key of a warmed channel. */
export function tunnelTarget(url: string): { hostname: string; port: number; key: string } {
  const u = new URL(url)
  const hostname = u.hostname.replace(/^\[|\]$/g, '')
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80))
  return { hostname, port, key: `${hostname}:${port}` }
}

/** The forwarded channel to the URL's host:port, opened from the host's side. */
export async function openTunnel(ssh: NodeSSH, hostName: string, url: string): Promise<Duplex> {
  const { hostname, port } = tunnelTarget(url)
  try {
    return (await ssh.forwardOut('127.0.0.1', 0, hostname, port)) as Duplex
  } catch (e) {
    throw new Error(
      `${hostName}: cannot reach ${new URL(url).host} from the host (${(e as Error).message}); ` +
        `is it listening there, and does sshd allow forwarding (AllowTcpForwarding)? health-command is an alternative`
    )
  }
}

/**
 * A channel opened ahead for the next GET to `key`. The server may close it while it waits (an
 * idle timeout shorter than the wait): `usable` then turns false and the GET opens a new one.
 */
export interface WarmTunnel {
  key: string
  ssh: NodeSSH
  channel: Promise<Duplex | Error>
  usable: boolean
}

export function warmTunnel(ssh: NodeSSH, hostName: string, url: string): WarmTunnel {
  const warm: WarmTunnel = {
    key: tunnelTarget(url).key,
    ssh,
    usable: true,
    channel: openTunnel(ssh, hostName, url).catch((e: Error) => e)
  }
  void warm.channel.then(c => {
    if (c instanceof Error) return void (warm.usable = false)
    const gone = () => (warm.usable = false)
    // A close seen late is no harm: the GET then fails before any answer and goes again.
    c.on('close', gone).on('error', gone)
  })
  return warm
}

/** Thrown when a warmed channel fails before any answer came: the GET may go again on a new one. */
export class NoAnswerError extends Error {}

/** GET `url` over the given channel (closed at the end). */
export function getOver(channel: Duplex, url: string, timeoutMs: number): Promise<HttpResponse> {
  const u = new URL(url)
  const { hostname } = tunnelTarget(url)
  const started = Date.now()
  // The tunnel is already authenticated by SSH; a health check must not fail on a self-signed certificate.
  const socket: Duplex =
    u.protocol === 'https:'
      ? tls.connect({
          socket: channel,
          servername: /^[\d.:]+$/.test(hostname) ? undefined : hostname,
          rejectUnauthorized: false
        })
      : channel
  let answered = false
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
        answered = true
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
    let timedOut = false
    const timer = setTimeout(
      () => {
        timedOut = true
        req.destroy(new Error(`no answer from ${url} within ${timeoutMs}ms`))
      },
      Math.max(1, timeoutMs - (Date.now() - started))
    )
    req.on('close', () => clearTimeout(timer))
    req.on('error', e => reject(answered || timedOut ? e : new NoAnswerError(e.message)))
    req.end()
  }).finally(() => socket.destroy())
}
