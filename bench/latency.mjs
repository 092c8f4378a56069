// A single-host hot upgrade over a slow link: the action next to a minimal one-connection OpenSSH
// script doing the same dance, through the same latency proxy, at RTT 0, 50 and 150 ms.
//
//   node bench/latency.mjs [--first 230 (or 242..254)] [--reps 5] [--rtt-high 150] [--rtt-mid 50] [--baseline FILE]
//
// --baseline FILE: another bundle (e.g. the previous dist/index.js, copied out of the way) run
// side by side with the current one in every rep: a before/after comparison in one run.
// ZD_TRACE=1: the action runs with RUNNER_DEBUG=1 and its log (every command, how long its answer
// took) is printed on stderr at the high RTT: where the round trips go.
// Needs root (the sandbox), OpenSSH's ssh, and a bundle (npm run bundle). Re-runs itself under
// Node 24. Uses only 127.0.0.<first> (default 230): one sandbox host whose sshd is reached through
// three proxies (test/latency-proxy.ts) on the same address, one per RTT; the health URL is the
// host's own nginx (the action reaches it through its SSH connection, the script from the host).
//
// Each rep runs, for each RTT, the action (dist/index.js under Node 24, as GitHub runs it) and
// bench/upgrade-ssh.sh in `stream` mode (one ssh: the binary on its stdin, then config test,
// swap, USR2, pid files polled, WINCH, health checks, drain polled, QUIT, wait for the old master
// to go), in alternating order (with --baseline, each bundle run follows a script run: every bundle
// finds a binary its store never saw). Printed, as medians with [min–max] over the reps:
// - wall time from process start to exit, and NET = wall minus the inherent waits, i.e. the
//   (health-checks - 1) x health-interval sleeps that the settings impose on any implementation
//   (no load: the old workers are idle, so the drain itself takes no time);
// - per step, the time at each RTT and the ROUND TRIPS it pays: (step time at the high RTT - step
//   time at RTT 0) / (high RTT - 0), computed for each rep, then the median; and the proxy's TURNS
//   in that step (the client speaking again after it heard back; an upper bound, see the proxy).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadTypeScript, median, ROOT, timed } from './lib.mjs'

const { sandboxUp, sandboxInputs, nginxBuild, runAction } = await loadTypeScript()
const { startLatencyProxy } = await import(join(ROOT, 'test/latency-proxy.ts'))
const { values: args } = parseArgs({
  options: {
    first: { type: 'string', default: '230' },
    reps: { type: 'string', default: '5' },
    'rtt-mid': { type: 'string', default: '50' },
    'rtt-high': { type: 'string', default: '150' },
    baseline: { type: 'string' }
  }
})
const [FIRST, REPS, RTT_MID, RTT_HIGH] = [args.first, args.reps, args['rtt-mid'], args['rtt-high']].map(
  Number
)
const BASELINE = args.baseline
const RTTS = [0, RTT_MID, RTT_HIGH]
const HEALTH_CHECKS = 3
const HEALTH_INTERVAL_MS = 200
const POLL_MS = 100
const INHERENT_MS = (HEALTH_CHECKS - 1) * HEALTH_INTERVAL_MS
// 231-233, 240 and 241 are the tests' (prestage, ...): a bench run beside the tests must not take them.
if (FIRST !== 230 && (FIRST < 242 || FIRST > 254))
  throw new Error('--first must be 230 or 242..254 (the addresses of this benchmark)')

const fmt = ms => `${Math.round(ms)}`
const spread = xs => `${fmt(median(xs))} [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`

/** Phases as [name, startMs, endMs] (epoch ms), for the action from its report's steps. */
function actionPhases(run) {
  const steps = run.report.hosts[0].steps.map(s => [s.name, Date.parse(s.startedAt), Date.parse(s.endedAt)])
  const end = run.startedAt + run.ms
  return [
    ['process start → connect', run.startedAt, steps[0][1]],
    ...steps,
    ['after the last step → exit', steps.at(-1)[2], end]
  ]
}

/** The script's phases, from the marks it prints (epoch ms, taken on this machine's clock). */
function scriptPhases(run) {
  const m = Object.fromEntries([...run.out.matchAll(/^mark (\S+) (\d+)$/gm)].map(x => [x[1], Number(x[2])]))
  const names = ['start', 'ssh', 'verify+swap', 'usr2', 'winch+health', 'drain', 'quit', 'exit']
  const label = { start: 'process start', ssh: 'ssh + binary streamed', exit: 'exit' }
  const phases = [['process start', run.startedAt, m.start]]
  for (let i = 1; i < names.length; i++)
    phases.push([label[names[i]] ?? names[i], m[names[i - 1]], m[names[i]]])
  phases[phases.length - 1][2] = run.startedAt + run.ms
  return phases
}

/** Turns per phase: each turn's time falls in one phase (or none: counted under the nearest before). */
function turnsPerPhase(phases, turns) {
  const counts = phases.map(() => 0)
  for (const t of turns) {
    let k = phases.findIndex(([, s, e]) => t >= s && t <= e)
    if (k < 0)
      k = Math.max(
        0,
        phases.findLastIndex(([, s]) => s <= t)
      )
    counts[k]++
  }
  return counts
}

const sb = sandboxUp({ first: FIRST, count: 1 })
const h = sb.hosts[0]
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-latency-'))
const proxies = []
try {
  for (const rttMs of RTTS)
    proxies.push(
      await startLatencyProxy({ listenHost: h.address, targetHost: h.address, targetPort: h.sshPort, rttMs })
    )
  // The host's key, bound to each proxy's address:port (what the clients connect to).
  const key = h.hostKeyLine.split(' ').slice(1).join(' ')
  const knownHosts = proxies.map(p => `[${p.host}]:${p.port} ${key}`).join('\n') + '\n'
  const knownHostsPath = join(work, 'known_hosts')
  writeFileSync(knownHostsPath, knownHosts)
  const base = {
    ...sandboxInputs(sb, [h]),
    'known-hosts': knownHosts,
    'health-interval': `${HEALTH_INTERVAL_MS}ms`,
    'health-checks': String(HEALTH_CHECKS),
    'health-timeout': '3s',
    'poll-interval': `${POLL_MS}ms`
  }
  // A new build for every run, as every deploy brings one: the release store records it each time
  // (and prunes the oldest once it holds keep-releases).
  let next = 0
  const nextBuild = () => nginxBuild(work, `v${next++}`)

  const action = bundle => async proxy => {
    const r = await runAction(
      { ...base, hosts: `${sb.user}@${proxy.host}:${proxy.port}`, binary: nextBuild() },
      { ...(bundle ? { bundle } : {}), ...(process.env.ZD_TRACE ? { env: { RUNNER_DEBUG: '1' } } : {}) }
    )
    if (process.env.ZD_TRACE && proxy.rttMs > 100) console.error(r.log)
    if (r.code !== 0 || r.outputs.result !== 'upgraded')
      throw new Error(
        `action at RTT ${proxy.rttMs}: exit ${r.code}, ${r.outputs.result}:\n${r.log.slice(-3000)}`
      )
    return { ms: r.ms, phases: actionPhases(r) }
  }
  const script = async proxy => {
    const before = sb.readPid(h)
    const s = await timed('sh', [
      join(ROOT, 'bench/upgrade-ssh.sh'),
      'stream',
      proxy.host,
      String(proxy.port),
      sb.user,
      sb.privateKeyPath,
      knownHostsPath,
      nextBuild(),
      String(HEALTH_CHECKS),
      String(HEALTH_INTERVAL_MS),
      String(POLL_MS),
      String(h.httpPort)
    ])
    if (s.code !== 0 || sb.readPid(h) === before || sb.isAlive(before))
      throw new Error(`the script at RTT ${proxy.rttMs} failed (exit ${s.code}):\n${s.out}`)
    return { ms: s.ms, phases: scriptPhases(s) }
  }
  const kinds = { action: action(), ...(BASELINE ? { baseline: action(BASELINE) } : {}), script }
  const LABELS = {
    action: 'the action (node24 dist/index.js)',
    baseline: `the baseline bundle (${BASELINE})`,
    script: 'one-connection OpenSSH script (upgrade-ssh.sh stream)'
  }
  // runs[kind][rtt] = [{ ms, phases, turns: per phase, totalTurns, connections }]
  const runs = Object.fromEntries(Object.keys(kinds).map(k => [k, {}]))
  for (const k of Object.keys(runs)) for (const rtt of RTTS) runs[k][rtt] = []

  console.log(
    `latency bench: sandbox host ${h.address} (nginx, 2 workers), ${cpus().length} CPUs shared with other work ` +
      `(load average ${loadavg()[0].toFixed(1)} at the start); health ${HEALTH_CHECKS} x ${HEALTH_INTERVAL_MS} ms, ` +
      `poll ${POLL_MS} ms; ${REPS} reps, each: every RTT, action and script in alternating order\n`
  )
  for (let rep = 0; rep < REPS; rep++) {
    const line = []
    for (const proxy of proxies) {
      // Each bundle's run follows the script's: every run of the action finds a binary its store
      // never saw (a first deploy of the host, which records the running binary), whichever ran
      // before. Without a baseline that is the alternation action, script / script, action.
      const bundles = Object.keys(kinds).filter(k => k !== 'script')
      const order =
        bundles.length === 1
          ? rep % 2 === 0
            ? ['action', 'script']
            : ['script', 'action']
          : (rep % 2 === 0 ? bundles : bundles.reverse()).flatMap(k => [k, 'script'])
      for (const k of order) {
        proxy.reset()
        const r = await kinds[k](proxy)
        const st = proxy.stats()
        runs[k][proxy.rttMs].push({
          ...r,
          rep,
          turns: turnsPerPhase(r.phases, st.turns),
          totalTurns: st.turns.length,
          connections: st.connections
        })
        line.push(`${k}@${proxy.rttMs} ${fmt(r.ms)} ms/${st.turns.length} turns`)
      }
    }
    process.stderr.write(`  rep ${rep + 1}/${REPS}: ${line.join(', ')}\n`)
  }

  // ------------------------------------------------------------ wall time
  console.log(
    `| median [min–max] of ${REPS}, ms | ${RTTS.map(r => `RTT ${r}: wall | net`).join(' | ')} | turns at ${RTT_HIGH} | connections |`
  )
  console.log(`| --- | ${RTTS.map(() => '---: | ---:').join(' | ')} | ---: | ---: |`)
  for (const k of Object.keys(kinds)) {
    const cells = RTTS.map(rtt => {
      const ms = runs[k][rtt].map(r => r.ms)
      return `${spread(ms)} | ${spread(ms.map(x => x - INHERENT_MS))}`
    })
    const hi = runs[k][RTT_HIGH]
    console.log(
      `| ${LABELS[k]} | ${cells.join(' | ')} | ${spread(hi.map(r => r.totalTurns))} | ${median(hi.map(r => r.connections))} |`
    )
  }
  const net = (k, rtt) => median(runs[k][rtt].map(r => r.ms - INHERENT_MS))
  const ratios = (rtt, k = 'action') => {
    // Against the script's runs of the same repetition (two with a baseline: their median).
    const scriptNet = rep => median(runs.script[rtt].filter(s => s.rep === rep).map(s => s.ms - INHERENT_MS))
    const xs = runs[k][rtt].map(a => (a.ms - INHERENT_MS) / scriptNet(a.rep))
    return `${median(xs).toFixed(2)}x [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]`
  }
  console.log(`\nnet = wall - ${INHERENT_MS} ms of inherent waits ((health-checks - 1) x health-interval)`)
  for (const rtt of RTTS)
    console.log(
      `RTT ${rtt} ms: action net ${fmt(net('action', rtt))} ms, script net ${fmt(net('script', rtt))} ms, action ÷ script (per rep) ${ratios(rtt)}` +
        (BASELINE
          ? `; baseline net ${fmt(net('baseline', rtt))} ms, baseline ÷ script ${ratios(rtt, 'baseline')}`
          : '')
    )
  console.log(`goal: within 1.3x of the script at RTT ${RTT_HIGH} ms`)

  // ------------------------------------------------------------ per step
  for (const k of Object.keys(kinds)) {
    const names = runs[k][0][0].phases.map(p => p[0])
    console.log(
      `\n| ${k}: step (median of ${REPS}) | ${RTTS.map(r => `ms @${r}`).join(' | ')} | round trips paid ((ms@${RTT_HIGH} - ms@0) / ${RTT_HIGH}) | round trips @${RTT_MID} | proxy turns @${RTT_HIGH} |`
    )
    console.log(`| --- | ${RTTS.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`)
    let total = 0
    names.forEach((name, i) => {
      // A step can be missing in a run (none here: every run upgrades); match by position and name.
      const ms = rtt =>
        runs[k][rtt].map(r => (r.phases[i]?.[0] === name ? r.phases[i][2] - r.phases[i][1] : NaN))
      const paid = rtt => {
        const xs = ms(rtt).map((x, j) => (x - ms(0)[j]) / rtt)
        return median(xs)
      }
      total += paid(RTT_HIGH)
      const turns = runs[k][RTT_HIGH].map(r => r.turns[i])
      console.log(
        `| ${name} | ${RTTS.map(rtt => fmt(median(ms(rtt)))).join(' | ')} | ${paid(RTT_HIGH).toFixed(1)} | ${paid(RTT_MID).toFixed(1)} | ${median(turns)} |`
      )
    })
    console.log(`| total | | | | ${total.toFixed(1)} | | |`)
  }
} finally {
  for (const p of proxies) await p.close()
  sb.down()
  rmSync(work, { recursive: true, force: true })
}
