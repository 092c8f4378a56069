// The bench's latency proxy (test/latency-proxy.ts): bytes pass intact both ways, big transfers
// too (backpressure), each direction is held at least half the RTT, and turns are counted.
import net from 'node:net'
import { startLatencyProxy, type LatencyProxy } from '../test/latency-proxy.js'

const ADDRESS = '127.0.0.230'

/** An echo server on ADDRESS: every byte comes back. */
function echoServer(): Promise<net.Server> {
  const server = net.createServer(s => s.pipe(s))
  return new Promise(resolve => server.listen(0, ADDRESS, () => resolve(server)))
}

/** Sends `data`, resolves when as many bytes came back, with them. */
function exchange(socket: net.Socket, data: Buffer): Promise<Buffer> {
  return new Promise(resolve => {
    const got: Buffer[] = []
    let n = 0
    const onData = (d: Buffer) => {
      got.push(d)
      n += d.length
      if (n >= data.length) {
        socket.off('data', onData)
        resolve(Buffer.concat(got))
      }
    }
    socket.on('data', onData)
    socket.write(data)
  })
}

describe('latency proxy', () => {
  let server: net.Server
  let proxy: LatencyProxy | undefined
  beforeAll(async () => {
    server = await echoServer()
  })
  afterEach(async () => {
    await proxy?.close()
    proxy = undefined
  })
  afterAll(() => new Promise<void>(done => server.close(() => done())))

  const connect = async (rttMs: number) => {
    proxy = await startLatencyProxy({
      listenHost: ADDRESS,
      targetHost: ADDRESS,
      targetPort: (server.address() as net.AddressInfo).port,
      rttMs
    })
    const socket = net.connect({ host: ADDRESS, port: proxy.port })
    await new Promise(r => socket.once('connect', r))
    return socket
  }

  test('three request/response exchanges are three turns, each at least one RTT', async () => {
    const socket = await connect(80)
    const t0 = performance.now()
    for (const word of ['one', 'two', 'three'])
      expect((await exchange(socket, Buffer.from(word))).toString()).toBe(word)
    // A lower bound only: the proxy must hold each direction 40 ms (a busy machine only adds).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(3 * 80 - 3)
    socket.destroy()
    const stats = proxy!.stats()
    expect(stats).toMatchObject({ connections: 1, bytesUp: 11, bytesDown: 11 })
    expect(stats.turns).toHaveLength(3)
  })

  test('a large transfer arrives intact and in order at RTT 0 and with a delay', async () => {
    const data = Buffer.alloc(12 << 20)
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i)
    for (const rtt of [0, 30]) {
      const socket = await connect(rtt)
      const back = await exchange(socket, data)
      expect(back.equals(data)).toBe(true)
      socket.destroy()
      await proxy!.close()
      proxy = undefined
    }
  })

  test('reset clears the counts; the end of one side ends the other', async () => {
    const socket = await connect(20)
    await exchange(socket, Buffer.from('x'))
    proxy!.reset()
    expect(proxy!.stats()).toEqual({ connections: 0, turns: [], bytesUp: 0, bytesDown: 0 })
    const closed = new Promise(r => socket.once('close', r))
    socket.end()
    await closed
  })
})
