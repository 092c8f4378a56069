// The demo's body (scripts/demo.sh brings the sandbox host up and takes it down):
//   node scripts/demo.mjs SANDBOX_JSON WORK_DIR
// Puts light HTTP load on the host (a few clients, a new connection per request), runs the bundle
// from the command line (`node dist/index.js deploy ... --json`) twice, and prints for each run the
// timeline of its steps (start, duration, requests served and failed during each) and the
// failed-request count. Run 1: a new nginx build, hot-upgraded. Run 2: a broken build that exits
// at start; the action rolls the host back by itself. Exits 1 when a run does not end as it should.
// With ZERODOWN_DEMO_SUMMARIES=DIR, each run's job summary (the Markdown GitHub would show) is
// copied there as summary-upgrade.md and summary-broken.md (scripts/summary-picture.mjs uses them).
import { spawn } from 'node:child_process'
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { join, resolve } from 'node:path'

const [sandboxJson, work] = process.argv.slice(2)
if (!sandboxJson || !work) {
  console.error('usage: node scripts/demo.mjs SANDBOX_JSON WORK_DIR (run it through npm run demo)')
  process.exit(2)
}
const root = resolve(new URL('..', import.meta.url).pathname)
const sb = JSON.parse(readFileSync(sandboxJson, 'utf8'))
const host = sb.hosts[0]
const started = Date.now()

// ------------------------------------------------------------------------------------ load

/** A few clients in a loop, each request on a new connection (Connection: close), until stopped. */
function startLoad({ clients = 4, pauseMs = 2 } = {}) {
  const done = [] // { at, ok, why }
  let running = true
  const once = () =>
    new Promise(res => {
      const req = http.get(
        {
          host: host.address,
          port: host.httpPort,
          path: '/',
          agent: false,
          headers: { Connection: 'close' }
        },
        r => {
          r.resume()
          r.on('end', () => {
            done.push({ at: Date.now(), ok: r.statusCode === 200, why: `status ${r.statusCode}` })
            res()
          })
          r.on('error', e => {
            done.push({ at: Date.now(), ok: false, why: e.code ?? e.message })
            res()
          })
        }
      )
      req.setTimeout(5000, () => req.destroy(new Error('timeout')))
      req.on('error', e => {
        done.push({ at: Date.now(), ok: false, why: e.code ?? e.message })
        res()
      })
    })
  const loop = async () => {
    while (running) {
      await once()
      if (pauseMs > 0) await new Promise(r => setTimeout(r, pauseMs))
    }
  }
  const loops = Array.from({ length: clients }, loop)
  return {
    done,
    async stop() {
      running = false
      await Promise.all(loops)
      return done
    }
  }
}

// ------------------------------------------------------------------------------- the action

/**
 * One slow download (/big: 20 MB at 200 KB/s) that keeps an old worker busy after WINCH, so that
 * the drain has something to wait for; the client ends it `afterMs` into the drain.
 */
function slowDownload() {
  let req
  let bytes = 0
  const state = { ended: false, bytes: () => bytes }
  req = http.get({ host: host.address, port: host.httpPort, path: '/big', agent: false }, r => {
    r.on('data', d => (bytes += d.length))
    r.on('error', () => undefined)
  })
  req.on('error', () => undefined)
  state.end = () => {
    if (state.ended) return
    state.ended = true
    req.destroy()
  }
  return state
}

function runAction(label, binary, onLine = () => undefined) {
  const args = [
    join(root, 'dist/index.js'),
    'deploy',
    '--hosts',
    `${sb.user}@${host.address}:${host.sshPort}`,
    '--private-key-file',
    sb.privateKeyPath,
    '--known-hosts-file',
    sb.knownHostsPath,
    '--binary',
    binary,
    '--pid-file',
    host.pidFile,
    '--health-url',
    `http://{host}:${host.httpPort}/health`,
    '--health-checks',
    '3',
    '--health-interval',
    '200ms',
    '--poll-interval',
    '100ms',
    '--start-timeout',
    '10s',
    '--summary',
    join(work, `summary-${label}.md`),
    '--json'
  ]
  console.log(`\n$ node dist/index.js deploy --hosts ${args[3]} --binary ${binary} --health-url ... --json`)
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let partial = ''
    child.stdout.on('data', d => (stdout += d))
    // The action's log (stderr with --json), indented.
    child.stderr.on('data', d => {
      const lines = (partial + d).split('\n')
      partial = lines.pop()
      for (const l of lines) {
        console.log(`  │ ${l}`)
        onLine(l)
      }
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', rej)
    child.on('close', code => {
      clearTimeout(timer)
      if (partial) console.log(`  │ ${partial}`)
      try {
        res({ code, report: JSON.parse(stdout.trim().split('\n').pop()) })
      } catch {
        rej(new Error(`the action printed no JSON report (exit ${code}): ${stdout.slice(0, 500)}`))
      }
    })
  })
}

// --------------------------------------------------------------------------------- timeline

const fmt = ms => (ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(2)}s`)

function printTimeline(title, report, requests, during) {
  const h = report.hosts[0]
  const t0 = Math.min(...h.steps.map(s => Date.parse(s.startedAt)))
  const within = (a, b) => requests.filter(r => r.at >= a && r.at < b)
  console.log(`\n${title}: ${report.result} in ${fmt(report.durationMs)}`)
  console.log(
    `  ${'start'.padEnd(7)} ${'duration'.padStart(8)}  ${'step'.padEnd(10)} ${'requests'.padStart(8)} ${'failed'.padStart(7)}`
  )
  for (const s of h.steps) {
    const a = Date.parse(s.startedAt)
    const b = Date.parse(s.endedAt)
    const rs = within(a, b)
    const mark = s.outcome === 'failed' ? '  ✗ ' + (s.observations.at(-1) ?? '').slice(0, 90) : ''
    console.log(
      `  +${((a - t0) / 1000).toFixed(3)}s ${fmt(s.ms).padStart(8)}  ${s.name.padEnd(10)} ${String(rs.length).padStart(8)} ${String(rs.filter(r => !r.ok).length).padStart(7)}${mark}`
    )
  }
  if (h.drain.length > 0)
    console.log(`  drain (old workers): ${h.drain.map(d => `${d.oldWorkers} at ${fmt(d.atMs)}`).join(' → ')}`)
  if (h.health.length > 0)
    console.log(`  health checks: ${h.health.filter(c => c.ok).length} of ${h.health.length} passed`)
  const was = `${h.previousVersion ?? '?'} (sha256 ${(h.previousSha256 ?? '?').slice(0, 12)})`
  const now = `${h.version ?? '?'} (sha256 ${(h.sha256 ?? '?').slice(0, 12)})`
  if (h.result === 'upgraded') console.log(`  binary: ${was} → ${now}; master ${h.oldPid} → ${h.newPid}`)
  else console.log(`  binary: ${was} kept, master ${h.oldPid} kept serving; the new ${now} never served`)
  const failed = requests.filter(r => !r.ok)
  console.log(
    `  load: ${requests.length} requests (${during} while the action ran), ${failed.length} failed${failed.length ? ` (${[...new Set(failed.map(f => f.why))].join(', ')})` : ''}`
  )
  return failed.length
}

async function scenario(title, label, binary, expected, { slow = false } = {}) {
  const load = startLoad()
  const download = slow ? slowDownload() : null
  await new Promise(r => setTimeout(r, 300))
  const from = Date.now()
  let drainSeen = 0
  const { code, report } = await runAction(label, binary, line => {
    if (download && !drainSeen && / \[drain\] \d+ old worker/.test(line)) {
      drainSeen = Date.now()
      setTimeout(() => download.end(), 1000)
    }
  })
  download?.end()
  if (download)
    console.log(
      `\n  a slow download (/big, started before the upgrade on an old worker) kept that worker busy; ` +
        `the client ended it ${drainSeen ? '1.0s into the drain' : 'after the run'}, after ${(download.bytes() / 1e6).toFixed(1)} MB`
    )
  const to = Date.now()
  await new Promise(r => setTimeout(r, 300))
  const all = await load.stop()
  const during = all.filter(r => r.at >= from && r.at <= to).length
  const failed = printTimeline(title, report, all, during)
  console.log(`  exit status of the action: ${code}`)
  const keep = process.env.ZERODOWN_DEMO_SUMMARIES
  if (keep) {
    mkdirSync(keep, { recursive: true })
    copyFileSync(join(work, `summary-${label}.md`), join(keep, `summary-${label}.md`))
  }
  const problems = []
  if (report.result !== expected) problems.push(`${title}: expected ${expected}, got ${report.result}`)
  if (all.some(r => !r.ok)) problems.push(`${title}: ${all.filter(r => !r.ok).length} requests failed`)
  return { report, failed, problems }
}

// ------------------------------------------------------------------------------------- main

const build = join(work, 'nginx-build-2')
copyFileSync('/usr/sbin/nginx', build)
appendFileSync(build, `\nzerodown-demo build 2 ${new Date().toISOString()}\n`)

const broken = join(work, 'nginx-broken')
writeFileSync(
  broken,
  [
    '#!/bin/sh',
    '# A bad build: it passes the config test, but cannot start (as when a shared library is missing).',
    'case " $* " in *" -t "*|*" -T "*|*" -v "*|*" -V "*) exec /usr/sbin/nginx "$@";; esac',
    'echo "nginx: error while loading shared libraries: libssl.so.99: cannot open shared object file" >&2',
    'exit 127',
    ''
  ].join('\n'),
  { mode: 0o755 }
)

console.log(
  `demo: light load on http://${host.address}:${host.httpPort}/ (4 clients, a new connection per request)`
)
const one = await scenario('Run 1, a new build', 'upgrade', build, 'upgraded', { slow: true })
const two = await scenario('Run 2, a broken build', 'broken', broken, 'rolled-back')

const problems = [...one.problems, ...two.problems]
console.log(
  `\ndemo: ${one.report.result}, then ${two.report.result} (the broken build never served: the old master kept serving); ` +
    `failed requests: ${one.failed} and ${two.failed}; ${((Date.now() - started) / 1000).toFixed(1)}s`
)
if (problems.length > 0) {
  for (const p of problems) console.error(`demo: ${p}`)
  process.exit(1)
}
