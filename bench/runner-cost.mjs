// What a rollout costs the runner: the action's own CPU time and peak memory, and the wall time,
// for fleets of light sandbox hosts at several max-parallel settings, in one bounded run.
//
//   node bench/runner-cost.mjs [--first 2] [--largest 128] [--reps 2] [--health-checks 2]
//        [--sizes 1,16,64,128] [--parallel 16,64] [--baseline FILE] [--profile DIR]
//        [--input name=value ...]
//
// --sizes / --parallel: the fleet sizes and max-parallel settings (comma-separated); --largest
// defaults to the largest size. --baseline FILE: another bundle (e.g. main's dist/index.js, copied
// out of the way) run for every case too, alternating with dist/index.js, each with its own table
// and lines: before and after in one run, under the same load. --profile DIR: afterwards, one more
// run of min(16, largest) hosts at that max-parallel under --cpu-prof, its profile written to DIR
// (not in the tables: the profiler costs CPU too); bench/cpu-profile.mjs sums it by function.
// Needs root (the sandbox) and a bundle (npm run bundle); re-runs itself under Node 24. Its hosts
// live on 127.0.1.<first>..127.0.1.<first+largest-1> (a range of their own), each an sshd and an
// nginx with ONE worker. The fleet sizes are 1, 16, 64 and --largest (128: 3 processes per host
// plus one SSH session each, well within this machine's pid and memory limits); max-parallel 16
// and 64. Every run upgrades every host of its fleet to a new build (a fresh sha256 each run), with
// the defaults otherwise (canary 1, rollback-fleet: every host parked until all passed, then
// committed).
//
// The action's process (dist/index.js under Node 24, spawned as GitHub runs it) loads
// bench/rusage-preload.mjs, which writes its getrusage(2) at exit: user + system CPU time and
// peak RSS; and the peaks of its JS heap and of its buffers, and what is live after a full
// collection at exit (so the peak tells apart what a run holds from garbage). The hosts (sshd, nginx) run on the same 2 cores: their work slows the wall time, not
// the action's CPU time. CPU per host is the slope of a least-squares line through (hosts, CPU) at
// each max-parallel; the intercept is the fixed cost (Node start, bundle load, inputs, summary).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadTypeScript, median, ROOT } from './lib.mjs'

const { sandboxUp, sandboxInputs, nginxBuild, runAction } = await loadTypeScript()
const { values: args } = parseArgs({
  options: {
    first: { type: 'string', default: '2' },
    largest: { type: 'string', default: '128' },
    reps: { type: 'string', default: '2' },
    'health-checks': { type: 'string', default: '2' },
    sizes: { type: 'string' },
    parallel: { type: 'string', default: '16,64' },
    baseline: { type: 'string' },
    profile: { type: 'string' },
    input: { type: 'string', multiple: true, default: [] }
  }
})
const list = s => s.split(',').map(Number)
const LARGEST = args.sizes && args.largest === '128' ? Math.max(...list(args.sizes)) : Number(args.largest)
const [FIRST, REPS, HEALTH_CHECKS] = [args.first, args.reps, args['health-checks']].map(Number)
const NET = '127.0.1'
// --input name=value (repeatable): other inputs of every run, e.g. --input rollback-fleet=false.
const EXTRA_INPUTS = Object.fromEntries(
  args.input.map(kv => {
    const at = kv.indexOf('=')
    if (at < 1) throw new Error(`--input ${kv}: expected name=value`)
    return [kv.slice(0, at), kv.slice(at + 1)]
  })
)
if (FIRST < 1 || FIRST + LARGEST - 1 > 200) throw new Error('hosts must stay within 127.0.1.1..127.0.1.200')
const SIZES = (args.sizes ? list(args.sizes) : [1, 16, 64, LARGEST]).filter(
  (n, i, a) => n <= LARGEST && a.indexOf(n) === i
)
const PARALLEL = list(args.parallel)
// The bundles measured: dist/index.js, and the baseline if given (undefined = dist/index.js).
const BUNDLES = args.baseline ? { after: undefined, before: args.baseline } : { after: undefined }
// (hosts, max-parallel) pairs; max-parallel above the fleet size changes nothing, so run it once.
const CASES = SIZES.flatMap(n => PARALLEL.filter(p => p === PARALLEL[0] || p <= n).map(p => [n, p]))

const spread = (xs, f = x => Math.round(x)) =>
  `${f(median(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]`

/** Least squares y = a + b x. */
function fit(points) {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  const b = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx
  return { a: my - b * mx, b }
}

const t0 = Date.now()
const sb = sandboxUp({ first: FIRST, count: LARGEST, net: NET, workers: 1 })
const upMs = Date.now() - t0
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-cost-'))
try {
  console.log(
    `runner-cost bench: ${LARGEST} sandbox hosts ${NET}.${FIRST}..${NET}.${FIRST + LARGEST - 1} (sshd + nginx with 1 worker each, up in ${(upMs / 1000).toFixed(1)} s), ` +
      `${cpus().length} CPUs and ${(totalmem() / 2 ** 30).toFixed(0)} GB shared with the hosts and other work (load average ${loadavg()[0].toFixed(1)} at the start); ` +
      `health ${HEALTH_CHECKS} x 200 ms, poll 100 ms, canary 1, ` +
      (args.input.length ? `inputs ${args.input.join(' ')}` : 'rollback-fleet (park all, then commit)') +
      `; ${REPS} reps\n`
  )
  // results per bundle, then per case `${n}/${p}`.
  const results = new Map(
    Object.keys(BUNDLES).map(kind => [kind, new Map(CASES.map(c => [c.join('/'), []]))])
  )
  let build = 0
  /** One rollout of the first n hosts at max-parallel p; its figures, and the hosts that did not upgrade. */
  const rollout = async (n, p, bundle, nodeOptions = '') => {
    const rusageFile = join(work, `rusage-${build}.json`)
    const r = await runAction(
      {
        ...sandboxInputs(sb, sb.hosts.slice(0, n)),
        binary: nginxBuild(work, `b${build++}`),
        'health-checks': String(HEALTH_CHECKS),
        'max-parallel': String(p),
        ...EXTRA_INPUTS
      },
      {
        env: {
          NODE_OPTIONS: `--import=${join(ROOT, 'bench/rusage-preload.mjs')} ${nodeOptions}`,
          ZERODOWN_RUSAGE_FILE: rusageFile
        },
        timeoutMs: 1_800_000,
        ...(bundle ? { bundle } : {})
      }
    )
    const failed = (r.report?.hosts ?? []).filter(x => x.result !== 'upgraded')
    if (!r.report)
      throw new Error(`${n} hosts at max-parallel ${p}: exit ${r.code}, no report:\n${r.log.slice(-4000)}`)
    const u = JSON.parse(readFileSync(rusageFile, 'utf8'))
    return {
      wallMs: r.ms,
      cpuMs: (u.userUs + u.systemUs) / 1000,
      sysMs: u.systemUs / 1000,
      rssMb: u.maxRssKb / 1024,
      heapMb: u.heapPeakKb / 1024,
      buffersMb: u.buffersPeakKb / 1024,
      heapLiveMb: u.heapLiveKb / 1024,
      buffersLiveMb: u.buffersLiveKb / 1024,
      failed
    }
  }
  let failures = 0
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? CASES : [...CASES].reverse()
    for (const [n, p] of order) {
      // With a baseline, the two bundles alternate which goes first, so neither always meets the
      // machine in the same state.
      const kinds = Object.keys(BUNDLES)
      for (const kind of rep % 2 === 0 ? kinds : [...kinds].reverse()) {
        const r = await rollout(n, p, BUNDLES[kind])
        // A run in which a host failed (e.g. a health timeout on an overloaded machine) is shown, not counted.
        if (r.failed.length === 0) results.get(kind).get(`${n}/${p}`).push(r)
        else failures++
        process.stderr.write(
          `  rep ${rep + 1}/${REPS}: ${kind}: ${n} hosts, max-parallel ${p}: wall ${(r.wallMs / 1000).toFixed(1)} s, CPU ${Math.round(r.cpuMs)} ms (sys ${Math.round(r.sysMs)}), peak RSS ${r.rssMb.toFixed(0)} MB (JS heap ${r.heapMb.toFixed(0)}, buffers ${r.buffersMb.toFixed(0)}; live at the end ${r.heapLiveMb.toFixed(0)} + ${r.buffersLiveMb.toFixed(0)}), load ${loadavg()[0].toFixed(1)}` +
            (r.failed.length
              ? `; NOT COUNTED: ${r.failed.length} host(s) did not upgrade: ${r.failed.map(f => `${f.host} ${f.result} at ${f.failedStep}: ${f.error}`).join('; ')}`
              : '') +
            '\n'
        )
      }
    }
  }
  if (failures > 0)
    console.log(`${failures} run(s) in which a host did not upgrade are left out (see stderr)\n`)
  for (const kind of Object.keys(BUNDLES)) printResults(kind, results.get(kind))
  console.log(
    `\nload average at the end: ${loadavg()
      .map(x => x.toFixed(1))
      .join(', ')} (1, 5, 15 min)`
  )
  if (args.profile) {
    const n = Math.min(16, LARGEST)
    const r = await rollout(n, n, undefined, `--cpu-prof --cpu-prof-dir=${args.profile}`)
    console.log(
      `\nprofiled run (${n} hosts, max-parallel ${n}, under --cpu-prof): CPU ${Math.round(r.cpuMs)} ms; profile in ${args.profile}`
    )
  }
} finally {
  sb.down()
  rmSync(work, { recursive: true, force: true })
}

/** The table and least-squares lines of one bundle's runs. */
function printResults(kind, results) {
  console.log(`\n${kind === 'before' ? `baseline (${args.baseline})` : 'dist/index.js'}:\n`)
  console.log(
    `| hosts | max-parallel | wall s | action CPU ms (user+sys) | of which sys | CPU ms per host | peak RSS MB |`
  )
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const [n, p] of CASES) {
    const rs = results.get(`${n}/${p}`)
    if (rs.length === 0) {
      console.log(`| ${n} | ${p} | no run counted | | | | |`)
      continue
    }
    console.log(
      `| ${n} | ${p} | ${spread(
        rs.map(r => r.wallMs / 1000),
        x => x.toFixed(1)
      )} | ${spread(rs.map(r => r.cpuMs))} | ${spread(rs.map(r => r.sysMs))} | ${spread(
        rs.map(r => r.cpuMs / n),
        x => x.toFixed(1)
      )} | ${spread(rs.map(r => r.rssMb))} |`
    )
  }
  console.log('\nleast-squares lines through every run (hosts → CPU ms, hosts → peak RSS MB):')
  for (const p of PARALLEL) {
    // A fleet no larger than p runs the same at any max-parallel >= its size: those runs count too.
    const pts = CASES.filter(([n, q]) => q === p || (q === PARALLEL[0] && n <= q)).flatMap(([n, q]) =>
      results.get(`${n}/${q}`).map(r => ({ n, ...r }))
    )
    if (new Set(pts.map(r => r.n)).size < 2) continue
    const cpu = fit(pts.map(r => [r.n, r.cpuMs]))
    const rss = fit(pts.map(r => [r.n, r.rssMb]))
    console.log(
      `max-parallel ${p}: CPU = ${Math.round(cpu.a)} ms + ${cpu.b.toFixed(1)} ms x hosts; ` +
        `peak RSS = ${rss.a.toFixed(0)} MB + ${(rss.b * 1024).toFixed(0)} KB x hosts ` +
        `(${pts.length} runs, sizes ${[...new Set(pts.map(r => r.n))].join(', ')})`
    )
  }
}
