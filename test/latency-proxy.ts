// A TCP proxy on loopback that holds every chunk for half a round trip in each direction, so that
// a runner talking to a sandbox host's sshd through it sees a link of the given RTT (bench/latency.mjs).
//
// What it models and what it does not: the delay of data each way (every request/response turn
// costs one RTT, as on a real link). It terminates TCP on both sides, so TCP's own ACKs, slow
// start and window growth do not pay the RTT, and bandwidth is unlimited: a sender that waits for
// ACKs (Nagle's algorithm left on) or a long transfer would pay more on a real link, and a new
// connection's TCP handshake costs no RTT here (one RTT per connection, for every client alike).
//
// It also counts TURNS: the client's first chunk on a connection, and every chunk from the client
// that follows a chunk from the server, i.e. the client speaking again after it heard back. For
// request/response exchanges that is one turn per round trip; a pipelined transfer (SFTP writes with acks, window adjusts)
// alternates without waiting, so turns are an upper bound of the round trips that cost wall time.
// Written for Node 24's type stripping (bench scripts import it as is): erasable syntax only.
import net from 'node:net'

export interface LatencyProxyOptions {
  /** Where to listen (a loopback address); port 0 picks a free one. */
  listenHost: string
  listenPort?: number
  targetHost: string
  targetPort: number
  /** Round-trip time to add: each direction holds data for rttMs / 2. */
  rttMs: number
}

export interface ProxyStats {
  connections: number
  /** Epoch ms of each turn (see above), in order. */
  turns: number[]
  bytesUp: number
  bytesDown: number
}

export interface LatencyProxy {
  readonly host: string
  readonly port: number
  readonly rttMs: number
  /** The counts since the start or the last reset. */
  stats(): ProxyStats
  reset(): void
  close(): Promise<void>
}

/** Forwards src to dst with every chunk held delayMs; pauses src while much is held (backpressure). */
function delayed(src: net.Socket, dst: net.Socket, delayMs: number, onChunk: (b: Buffer) => void): void {
  const queue: { due: number; chunk: Buffer }[] = []
  let held = 0
  let timer: NodeJS.Timeout | null = null
  const flush = (): void => {
    timer = null
    const now = performance.now()
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!
      held -= chunk.length
      dst.write(chunk)
    }
    if (held < 1 << 20 && src.isPaused()) src.resume()
    if (queue.length > 0) timer = setTimeout(flush, Math.max(0, queue[0]!.due - now))
    else if (src.readableEnded) dst.end()
  }
  src.on('data', (chunk: Buffer) => {
    onChunk(chunk)
    if (delayMs <= 0 && queue.length === 0) {
      dst.write(chunk)
      return
    }
    queue.push({ due: performance.now() + delayMs, chunk })
    held += chunk.length
    if (held >= 4 << 20) src.pause()
    timer ??= setTimeout(flush, delayMs)
  })
  src.on('end', () => {
    if (queue.length === 0) dst.end()
  })
}

export function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  const { listenHost, targetHost, targetPort, rttMs } = options
  let stats: ProxyStats = { connections: 0, turns: [], bytesUp: 0, bytesDown: 0 }
  const sockets = new Set<net.Socket>()
  const server = net.createServer(client => {
    stats.connections++
    const upstream = net.connect({ host: targetHost, port: targetPort })
    for (const s of [client, upstream]) {
      s.setNoDelay(true)
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      // Either side going away takes the other with it (sshd or the client ended the session).
      s.on('error', () => undefined)
    }
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    let heardBack = true
    delayed(client, upstream, rttMs / 2, chunk => {
      stats.bytesUp += chunk.length
      if (heardBack) stats.turns.push(Date.now())
      heardBack = false
    })
    delayed(upstream, client, rttMs / 2, chunk => {
      stats.bytesDown += chunk.length
      heardBack = true
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.listenPort ?? 0, listenHost, () => {
      const port = (server.address() as net.AddressInfo).port
      resolve({
        host: listenHost,
        port,
        rttMs,
        stats: () => ({ ...stats, turns: [...stats.turns] }),
        reset: () => {
          stats = { connections: 0, turns: [], bytesUp: 0, bytesDown: 0 }
        },
        close: () =>
          new Promise<void>(done => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          })
      })
    })
  })
}
