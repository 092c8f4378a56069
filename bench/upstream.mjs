// Strategy upstream, side by side in one run: three backends (a plain server that cannot hand over
// its sockets) behind a real nginx load balancer, clients opening a new connection per request
// THROUGH the load balancer, plus slow requests (1 s) always in flight:
//
//   A  the strategy: down, nginx -t, reload, drain, swap, restart, health, back in (one host at a time)
//   B  restarting each backend behind the load balancer without a drain (then waiting for its health)
//   C  what clients see across reloads of the load balancer: keep-alive clients and
//      connection-per-request clients, during --reloads HUPs (run first, on a block where every
//      backend answers: after B nginx keeps the restarted backends out for fail_timeout)
//
//   node bench/upstream.mjs [--first 150] [--clients 4] [--reloads 10]
//
// Needs root (the sandbox). Uses 127.0.0.<first> (load balancer) and the next three addresses.
// The load balancer keeps nginx's default proxy_next_upstream (error timeout): a request whose
// backend went away is retried on another server when it can be, so a missing drain shows in the
// load balancer's log (a try that moved on: a comma in $upstream_addr) before clients see it.
// Both are counted.
import { build } from 'esbuild'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { numberArgs, ROOT } from './lib.mjs'

const {
  first: FIRST,
  clients: CLIENTS,
  reloads: RELOADS
} = numberArgs({ first: 150, clients: 4, reloads: 10 })

/** The test helpers (TypeScript, imports written .js) bundled into one module for plain node. */
async function helpers() {
  const dir = mkdtempSync(join(tmpdir(), 'zd-bench-upstream-'))
  const entry = join(dir, 'entry.ts')
  const { writeFileSync } = await import('node:fs')
  writeFileSync(
    entry,
    [
      `export * from ${JSON.stringify(join(ROOT, '__tests__/helpers/upstream.ts'))}`,
      `export * from ${JSON.stringify(join(ROOT, 'test/sandbox/upstream.ts'))}`,
      `export { sandboxUp } from ${JSON.stringify(join(ROOT, 'test/sandbox/sandbox.ts'))}`,
      `export { startLoad, describeLoad } from ${JSON.stringify(join(ROOT, 'test/load.ts'))}`
    ].join('\n')
  )
  const noNative = {
    name: 'no-native',
    setup(b) {
      b.onResolve({ filter: /^cpu-features$|\.node$/ }, args => ({ path: args.path, namespace: 'no-native' }))
      b.onLoad({ filter: /.*/, namespace: 'no-native' }, () => ({
        contents: 'throw new Error("native")',
        loader: 'js'
      }))
    }
  }
  const out = join(dir, 'helpers.mjs')
  await build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    plugins: [noNative],
    // The sandbox modules find their files (sandbox.sh, upstream/app.py) beside themselves.
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(join(ROOT, 'test/sandbox/upstream.ts')).href) },
    banner: {
      // CommonJS dependencies (ssh2) call require() for node built-ins and read __dirname.
      js:
        "import { createRequire } from 'node:module'; import { fileURLToPath as __zdPath } from 'node:url'; " +
        "import { dirname as __zdDir } from 'node:path'; const require = createRequire(import.meta.url); " +
        'const __dirname = __zdDir(__zdPath(import.meta.url));'
    },
    logLevel: 'error'
  })
  const m = await import(pathToFileURL(out).href)
  return { m, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

const { m, cleanup } = await helpers()
const u = await m.upstreamSandbox({
  sandboxUp: m.sandboxUp,
  first: FIRST,
  backends: 3,
  nextUpstream: 'error timeout'
})
const lbAt = { host: u.lb.address, port: u.lb.httpPort }
const retriedSince = from =>
  u
    .accessLog()
    .slice(from)
    .split('\n')
    .filter(l => l.split('\t')[2]?.includes(',')).length

function underLoad() {
  const from = u.accessLog().length
  const fast = m.startLoad({
    ...lbAt,
    path: '/',
    concurrency: CLIENTS,
    maxRequests: 1_000_000,
    maxMs: 300_000
  })
  const slow = m.startLoad({ ...lbAt, path: '/slow', concurrency: 2, maxRequests: 10_000, maxMs: 300_000 })
  return async () => {
    const f = await fast.stop()
    const s = await slow.stop()
    return { fast: f, slow: s, retried: retriedSince(from) }
  }
}

/** Waits (bounded) until requests through the load balancer reach every backend, none retried. */
async function healthyBlock() {
  const want = u.backends.map(b => `${b.address}:${m.APP_PORT}`)
  for (let i = 0; i < 60; i++) {
    const from = u.accessLog().length
    for (let j = 0; j < 30; j++) await m.get(u.lb.address, u.lb.httpPort, '/')
    const lines = u.accessLog().slice(from).split('\n').filter(Boolean)
    const seen = new Set(lines.map(l => l.split('\t')[2]))
    if (want.every(a => seen.has(a)) && lines.every(l => l.split('\t')[1] === '200')) return
    await new Promise(res => setTimeout(res, 500))
  }
  throw new Error('the load balancer does not reach every backend')
}

const rows = []
const fmt = ms => `${(ms / 1000).toFixed(2)}s`
try {
  const v1 = u.build('1.0.0')
  const v2 = u.build('2.0.0')

  // C first, on a healthy block: after B, nginx counts the restarted backends' refused
  // connections against max_fails=3 fail_timeout=15s and keeps them out for 15 s, which is not
  // what a reload does. Every backend must answer through the load balancer before C starts.
  await healthyBlock()
  // C: reloads of the load balancer, keep-alive vs connection-per-request clients
  const pid = u.sb.readPid(u.lb)
  const keep = m.startLoad({
    ...lbAt,
    path: '/',
    concurrency: CLIENTS,
    keepAlive: true,
    maxRequests: 1_000_000,
    maxMs: 300_000
  })
  const fresh = m.startLoad({
    ...lbAt,
    path: '/',
    concurrency: CLIENTS,
    maxRequests: 1_000_000,
    maxMs: 300_000
  })
  for (let i = 0; i < RELOADS; i++) {
    await new Promise(res => setTimeout(res, 300))
    const x = u.sb.exec(u.lb, ['kill', '-HUP', String(pid)])
    if (x.status !== 0) throw new Error(`HUP failed: ${x.stderr}`)
  }
  await new Promise(res => setTimeout(res, 300))
  const k = await keep.stop()
  const f = await fresh.stop()

  // A: the strategy
  u.resetLoadBalancer()
  let stop = underLoad()
  const t0 = Date.now()
  const run = await m.runUpstream(u, v2)
  const wallA = Date.now() - t0
  let r = await stop()
  if (run.error || run.reports.some(x => x.result !== 'upgraded'))
    throw new Error(
      `the rollout did not pass: ${run.error ?? run.reports.map(x => `${x.result} ${x.error ?? ''}`).join('; ')}`
    )
  const perHost = run.reports.map(x => x.durationMs)
  const outOfBlock = run.reports.map(x => Date.parse(x.weights.at(-1).at) - Date.parse(x.weights[1].at))
  rows.push({
    what: 'A  strategy upstream (drain)',
    perHost: perHost.map(fmt).join(' / '),
    out: outOfBlock.map(fmt).join(' / '),
    wall: fmt(wallA),
    ...r
  })

  // B: restart without a drain (back to v1, so that every backend restarts again)
  stop = underLoad()
  const t1 = Date.now()
  const times = []
  for (const b of u.backends) {
    const s = Date.now()
    await u.install(b, v1) // write the binary, restart-command at once, wait for /health
    times.push(Date.now() - s)
  }
  const wallB = Date.now() - t1
  r = await stop()
  rows.push({
    what: 'B  restart, no drain',
    perHost: times.map(fmt).join(' / '),
    out: '-',
    wall: fmt(wallB),
    ...r
  })

  console.log(
    `# strategy upstream: 3 backends behind nginx ${'on'} this machine (${cpus().length} cores), ${CLIENTS} connection-per-request clients + 2 slow (1 s) clients through the load balancer`
  )
  console.log('')
  console.log(
    '| run | time per host | host out of the block | wall | requests | failed | slow requests | slow failed | tries nginx moved to another server |'
  )
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const x of rows)
    console.log(
      `| ${x.what} | ${x.perHost} | ${x.out} | ${x.wall} | ${x.fast.requests} | ${x.fast.failed} | ${x.slow.requests} | ${x.slow.failed} | ${x.retried} |`
    )
  console.log('')
  console.log(`${RELOADS} reloads of the load balancer (HUP every 0.3 s):`)
  console.log(`- ${m.describeLoad('keep-alive clients', k)}`)
  console.log(`- ${m.describeLoad('connection-per-request clients', f)}`)
} finally {
  u.down()
  cleanup()
}
