// The tableflip supervisor under load: a Go server on cloudflare/tableflip (test/servers/tableflip)
// upgraded by the action, rolled back by it, handed over by hand, and stopped/swapped/started the
// plain way, side by side in one bounded run on one sandbox host.
//
//   node bench/tableflip.mjs [--first 139] [--duration 6] [--threads 2] [--connections 16]
//
// Needs root (the sandbox), wrk, Debian's golang-go and golang-github-cloudflare-tableflip-dev
// (scripts/setup.sh), and a bundle (node scripts/bundle.mjs). It re-runs itself under Node 24 if
// started with an older node. Uses only 127.0.0.<first> (default 139).
//
// wrk (--threads, --connections, -H 'Connection: close': a new TCP connection per request, so any
// moment without a listener shows up as a failed request) runs --duration seconds against the
// server's / for each row, the event starting 1 s into the load:
//   (0) nothing (the baseline),
//   (a) a hot upgrade by the action (supervisor tableflip: HUP, pid file, health gate, drain),
//   (b) an automatic rollback by the action (the new binary answers /health with 500: a hand-over
//       back to the old binary once the old process has gone),
//   (c) the hand-over by hand: copy the binary, kill -HUP, wait until the pid file names a new pid,
//   (d) a plain restart: kill -TERM, wait until the process is gone, copy the binary, start it.
// Prints requests, failed requests (socket errors + non-2xx) and latency, and each event's time.
import { copyFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { eachUnderLoad, loadTypeScript, numberArgs, printLoadTable, ROOT, sleep } from './lib.mjs'

const ts = await loadTypeScript()
const { sandboxUp, sandboxInputs, runAction } = ts
const tf = await import(join(ROOT, 'test/sandbox/tableflip.ts'))
const {
  first: FIRST,
  duration: DURATION,
  threads: THREADS,
  connections: CONNECTIONS
} = numberArgs({ first: 139, duration: 6, threads: 2, connections: 16 })
if (FIRST < 120 || FIRST > 139) throw new Error('--first must be 120..139 (the addresses of this benchmark)')

const fmt = ms => `${Math.round(ms)} ms`

const sb = sandboxUp({ first: FIRST, count: 1 })
const h = sb.hosts[0]
try {
  tf.appStart(sb, h, { variant: '1.0.0', reset: true })
  const live = sb.hostPath(h, tf.APP.binaryPath)
  const pidNow = () => tf.appPid(sb, h)
  const base = {
    ...sandboxInputs(sb, [h]),
    supervisor: 'tableflip',
    'pid-file': tf.APP.pidFile,
    'health-url': `http://{host}:${h.httpPort}/health`,
    'health-interval': '200ms',
    'health-checks': '3',
    'health-timeout': '3s',
    'poll-interval': '100ms',
    'drain-timeout-action': 'proceed'
  }
  const builds = [tf.appBinary('2.0.0'), tf.appBinary('1.0.0')]
  let next = 0
  const nextBuild = () => builds[next++ % 2]
  /** Replaces the live file the way a deploy does: a copy beside it, renamed over it. */
  const put = src => {
    copyFileSync(src, `${live}.bench`)
    sb.exec(h, [
      'sh',
      '-c',
      `chown zd:zd ${tf.APP.binaryPath}.bench && mv -f ${tf.APP.binaryPath}.bench ${tf.APP.binaryPath}`
    ])
  }

  console.log(
    `tableflip bench: sandbox host ${h.address} (Go server on cloudflare/tableflip), ${cpus().length} CPUs shared with the load, ` +
      `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s -H 'Connection: close' (a new connection per request) on /; ` +
      `health 3 x 200ms, poll 100ms\n`
  )
  const events = {
    '(0) no event (baseline)': async () => 'ok',
    '(a) hot upgrade by the action': async () => {
      const before = pidNow()
      const r = await runAction({ ...base, binary: nextBuild() })
      if (r.code !== 0 || r.outputs.result !== 'upgraded' || pidNow() === before)
        throw new Error(`(a) exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`)
      const steps = r.report.hosts[0].steps
      const handoff = steps.find(s => s.name === 'handoff')?.ms ?? NaN
      return `upgraded in ${fmt(r.ms)} (hand-over ${fmt(handoff)})`
    },
    '(b) automatic rollback by the action': async () => {
      const r = await runAction({ ...base, binary: tf.appBinary('unhealthy') })
      if (r.code !== 1 || r.outputs.result !== 'rolled-back')
        throw new Error(`(b) exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`)
      return `rolled back in ${fmt(r.ms)}`
    },
    '(c) hand-over by hand (kill -HUP)': async () => {
      const t0 = Date.now()
      const before = pidNow()
      put(nextBuild())
      sb.exec(h, ['kill', '-HUP', String(before)])
      while (pidNow() === before) await sleep(5)
      const ready = Date.now() - t0
      while (sb.isAlive(before)) await sleep(5)
      return `new pid after ${fmt(ready)}, old gone after ${fmt(Date.now() - t0)}`
    },
    '(d) plain restart (kill -TERM, swap, start)': async () => {
      const t0 = Date.now()
      const before = pidNow()
      sb.exec(h, ['kill', '-TERM', String(before)])
      while (sb.isAlive(before)) await sleep(5)
      const down = Date.now()
      put(nextBuild())
      tf.appStart(sb, h, { keepBinary: true })
      return `restarted in ${fmt(Date.now() - t0)} (serving again ${fmt(Date.now() - down)} after the old process exited)`
    }
  }
  const rows = await eachUnderLoad(`http://${h.address}:${h.httpPort}/`, events, {
    threads: THREADS,
    connections: CONNECTIONS,
    duration: DURATION
  })
  printLoadTable(rows)
} finally {
  sb.down()
}
