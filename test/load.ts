/**
 * A bounded HTTP load generator for the zero-downtime tests: `concurrency` loops of plain
 * node:http GETs, stopped by whichever comes first of `maxRequests`, `maxMs`, or stop().
 *
 * Two kinds of clients:
 * - connection per request (keepAlive false, `Connection: close`): every request opens a new TCP
 *   connection, so any moment without a listener accepting shows up as a failure;
 * - keep-alive (one Agent with keepAlive): connections are reused. A server that closes an idle
 *   keep-alive connection while the client sends its next request on it makes that request fail
 *   with ECONNRESET / "socket hang up" (the HTTP/1.1 idle-close race). Those are counted apart,
 *   as `idleCloseRaces`, never hidden and never retried. The same shutdown close can also hit a
 *   connection the client opened a moment before (an old worker accepted it, then closed it as
 *   idle before reading its request, on WINCH): a reset on a fresh keep-alive connection is counted
 *   as `freshResets`, also reported apart. Every other error (refused, timeout, non-2xx) is a
 *   failure. With connection per request, every error is a failure.
 *
 * Only node built-ins: the benchmarks can import it under Node 24 as it is.
 */
import * as http from 'node:http'

export interface LoadOptions {
  host: string
  port: number
  /** Default /health. */
  path?: string
  /** Parallel request loops. Default 4. */
  concurrency?: number
  /** Upper bounds: the load stops at whichever comes first. */
  maxRequests: number
  maxMs: number
  keepAlive?: boolean
  /** A request without a complete answer after this long is a failure. Default 5000. */
  timeoutMs?: number
  /** Count the response bodies (e.g. /pid: which worker answered). Default false. */
  countBodies?: boolean
}

export interface LoadResult {
  requests: number
  ok: number
  /** Real failures: connection refused, timeouts, non-2xx, errors on fresh connections. */
  failed: number
  /** Keep-alive only: errors on a reused connection that the server closed while idle. */
  idleCloseRaces: number
  /** Keep-alive only: resets of a fresh connection that the server closed before reading its request. */
  freshResets: number
  /** Failure kinds and counts (e.g. ECONNREFUSED, status 502, timeout). */
  failures: Record<string, number>
  /** The first few failures, with when they happened (ms since start). */
  firstFailures: string[]
  bodies: Record<string, number>
  durationMs: number
  latencyMs: { p50: number; p99: number; max: number }
  /** Why the load ended: maxRequests, maxMs or stop. */
  endedBy: 'maxRequests' | 'maxMs' | 'stop'
}

export interface RunningLoad {
  /** Requests answered so far (ok or not). */
  readonly count: () => number
  /** Stops the loops after their current request and resolves with the result. */
  stop(): Promise<LoadResult>
  /** Resolves when a bound is reached (or after stop()). */
  done: Promise<LoadResult>
}

const RACE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

function once(agent: http.Agent | false, o: LoadOptions, path: string, timeoutMs: number) {
  return new Promise<{ status: number; body: string; error?: NodeJS.ErrnoException; reused: boolean }>(
    resolve => {
      let settled = false
      const finish = (r: { status: number; body: string; error?: NodeJS.ErrnoException }) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        // Read when the request ends: the agent sets it when it hands out a socket it kept.
        resolve({ ...r, reused: req.reusedSocket })
      }
      const req = http.request(
        {
          host: o.host,
          port: o.port,
          path,
          method: 'GET',
          agent,
          headers: o.keepAlive ? {} : { connection: 'close' }
        },
        res => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
          res.on('error', e => finish({ status: 0, body: '', error: e }))
        }
      )
      const timer = setTimeout(() => {
        const e: NodeJS.ErrnoException = new Error(`no answer within ${timeoutMs}ms`)
        e.code = 'TIMEOUT'
        req.destroy(e)
        finish({ status: 0, body: '', error: e })
      }, timeoutMs)
      req.on('error', e => finish({ status: 0, body: '', error: e }))
      req.end()
    }
  )
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export function startLoad(o: LoadOptions): RunningLoad {
  const path = o.path ?? '/health'
  const concurrency = o.concurrency ?? 4
  const timeoutMs = o.timeoutMs ?? 5000
  const agent = o.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: concurrency }) : false
  const started = Date.now()
  const latencies: number[] = []
  const result: LoadResult = {
    requests: 0,
    ok: 0,
    failed: 0,
    idleCloseRaces: 0,
    freshResets: 0,
    failures: {},
    firstFailures: [],
    bodies: {},
    durationMs: 0,
    latencyMs: { p50: 0, p99: 0, max: 0 },
    endedBy: 'stop'
  }
  let stopping = false
  let sent = 0
  const fail = (kind: string, detail: string) => {
    result.failures[kind] = (result.failures[kind] ?? 0) + 1
    if (result.firstFailures.length < 10) result.firstFailures.push(`${Date.now() - started}ms ${detail}`)
  }
  const loop = async () => {
    for (;;) {
      if (stopping) return
      if (sent >= o.maxRequests) {
        result.endedBy = 'maxRequests'
        return
      }
      if (Date.now() - started >= o.maxMs) {
        result.endedBy = 'maxMs'
        return
      }
      sent++
      const t0 = performance.now()
      const r = await once(agent, o, path, timeoutMs)
      latencies.push(performance.now() - t0)
      result.requests++
      if (r.error) {
        const code = r.error.code ?? r.error.message
        const reset = RACE_CODES.has(code) || /socket hang up/.test(r.error.message)
        if (o.keepAlive && reset && r.reused) {
          result.idleCloseRaces++
        } else if (o.keepAlive && reset) {
          result.freshResets++
          if (result.firstFailures.length < 10)
            result.firstFailures.push(
              `${Date.now() - started}ms ${code} on a fresh keep-alive connection (counted apart)`
            )
        } else {
          result.failed++
          fail(code, `${code}: ${r.error.message}${r.reused ? ' (reused connection)' : ''}`)
        }
      } else if (r.status < 200 || r.status > 299) {
        result.failed++
        fail(`status ${r.status}`, `status ${r.status}: ${r.body.slice(0, 80)}`)
      } else {
        result.ok++
        if (o.countBodies) result.bodies[r.body.trim()] = (result.bodies[r.body.trim()] ?? 0) + 1
      }
    }
  }
  const done = Promise.all(Array.from({ length: concurrency }, loop)).then(() => {
    result.durationMs = Date.now() - started
    latencies.sort((a, b) => a - b)
    result.latencyMs = {
      p50: Math.round(percentile(latencies, 50) * 10) / 10,
      p99: Math.round(percentile(latencies, 99) * 10) / 10,
      max: Math.round((latencies.at(-1) ?? 0) * 10) / 10
    }
    if (agent) agent.destroy()
    return result
  })
  return {
    count: () => result.requests,
    stop: () => {
      stopping = true
      return done
    },
    done
  }
}

/** One line for test output and benchmarks. */
export function describeLoad(label: string, r: LoadResult): string {
  const kinds = Object.entries(r.failures)
    .map(([k, n]) => `${k}×${n}`)
    .join(', ')
  return (
    `${label}: ${r.requests} requests in ${(r.durationMs / 1000).toFixed(1)}s, ${r.ok} ok, ${r.failed} failed` +
    (kinds ? ` (${kinds})` : '') +
    `, ${r.idleCloseRaces} idle-close races, ${r.freshResets} resets of fresh keep-alive connections` +
    `; latency p50 ${r.latencyMs.p50}ms p99 ${r.latencyMs.p99}ms max ${r.latencyMs.max}ms`
  )
}
