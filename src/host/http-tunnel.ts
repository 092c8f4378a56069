/**
 * An HTTP(S) GET made from the host's side: a TCP connection forwarded through the SSH connection
 * (direct-tcpip), so a health URL on the host's loopback is reachable and nothing listens on the
 * runner. TLS is not verified: the tunnel is already authenticated by SSH.
 */
import http from 'node:http'
import tls from 'node:tls'
import type { Duplex } from 'node:stream'
import type { NodeSSH } from 'node-ssh'
import type { HttpResponse } from './host.js'

export async function tunnelledGet(
  ssh: NodeSSH,
  hostName: string,
  url: string,
  timeoutMs: number
): Promise<HttpResponse> {
  const u = new URL(url)
  const https = u.protocol === 'https:'
  const hostname = u.hostname.replace(/^\[|\]$/g, '')
  const port = Number(u.port || (https ? 443 : 80))
  const started = Date.now()
  let channel: Duplex
  try {
    channel = (await ssh.forwardOut('127.0.0.1', 0, hostname, port)) as Duplex
  } catch (e) {
    throw new Error(
      `${hostName}: cannot reach ${u.host} from the host (${(e as Error).message}); ` +
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
