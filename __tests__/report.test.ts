/**
 * The job summary: its host table, its Mermaid rollout chart, the drain curve, the health checks
 * and, on failure, what happened and what to run. Unit tests of the pure Markdown on built reports,
 * then the summary the bundle really writes (GITHUB_STEP_SUMMARY, as GitHub runs it) for a
 * success, a rollback and a fleet run against sandbox hosts 127.0.0.71-73, with the log's
 * annotations and progress lines.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { rmSync } from 'node:fs'
import {
  cell,
  drainChart,
  mermaidText,
  outputsOf,
  rolloutChart,
  summaryMarkdown
} from '../src/report/index.js'
import { REPORT_OUTPUT_CHARS } from '../src/report/report-output.js'
import type { RolloutResult } from '../src/fleet/tally.js'
import type { HostReport, HostResult, StepName, StepReport } from '../src/engine/types.js'
import { sandboxUp, type Sandbox } from '../test/sandbox/sandbox.js'
import { brokenBuild, nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'

const T0 = Date.parse('2030-01-02T03:04:05.000Z')
const iso = (ms: number) => new Date(T0 + ms).toISOString()

function steps(spec: [StepName, number, 'ok' | 'failed'][], startMs = 0): StepReport[] {
  let t = startMs
  return spec.map(([name, ms, outcome]) => {
    const s: StepReport = {
      name,
      startedAt: iso(t),
      endedAt: iso(t + ms),
      ms,
      outcome,
      observations: [`${name} observed`]
    }
    t += ms
    return s
  })
}

const OK_STEPS: [StepName, number, 'ok'][] = [
  ['preflight', 40, 'ok'],
  ['upload', 120, 'ok'],
  ['verify', 15, 'ok'],
  ['swap', 8, 'ok'],
  ['usr2', 150, 'ok'],
  ['winch', 2, 'ok'],
  ['health', 600, 'ok'],
  ['drain', 1300, 'ok'],
  ['quit', 30, 'ok']
]

function host(name: string, result: HostResult, extra: Partial<HostReport> = {}, startMs = 0): HostReport {
  return {
    host: name,
    result,
    version: '1.27.3',
    previousVersion: '1.26.2',
    sha256: 'b'.repeat(64),
    previousSha256: 'a'.repeat(64),
    oldPid: 100,
    newPid: 200,
    startedAt: iso(startMs),
    endedAt: iso(startMs + 2265),
    durationMs: 2265,
    steps: steps(OK_STEPS, startMs),
    drain: [
      { atMs: 0, oldWorkers: 2 },
      { atMs: 400, oldWorkers: 1 },
      { atMs: 1250, oldWorkers: 0 }
    ],
    health: [
      { atMs: 10, ok: true, detail: 'http://10.0.0.1/health 200' },
      { atMs: 210, ok: true, detail: 'http://10.0.0.1/health 200' },
      { atMs: 410, ok: true, detail: 'http://10.0.0.1/health 200' }
    ],
    ...extra
  }
}

function result(
  hosts: HostReport[],
  overall: HostResult,
  failures: RolloutResult['failures'] = []
): RolloutResult {
  const counts = { upgraded: 0, 'rolled-back': 0, unchanged: 0, failed: 0, untouched: 0, parked: 0 }
  for (const h of hosts) counts[h.result]++
  return { result: overall, hosts, durationMs: 2500, counts, failures }
}

const rolledBackAtHealth = (name: string) =>
  host(name, 'rolled-back', {
    version: '1.27.3',
    failedStep: 'health',
    error:
      'the new binary did not pass 3 health checks in a row within health-timeout 2000ms; last failure: 500',
    steps: [
      ...steps(OK_STEPS.slice(0, 6)),
      ...steps([['health', 2000, 'failed']], 335),
      ...steps([['rollback', 90, 'ok']], 2335)
    ],
    drain: [],
    health: [
      { atMs: 5, ok: false, detail: 'http://10.0.0.1/health answered 500' },
      { atMs: 1005, ok: false, detail: 'http://10.0.0.1/health answered 500' }
    ]
  })

/** The lines of the first ```mermaid block that starts with `kind`. */
function mermaid(md: string, kind: string): string[] {
  const blocks = md.split('```mermaid\n').slice(1)
  const block = blocks.find(b => b.startsWith(kind))
  if (!block) throw new Error(`no ${kind} block in:\n${md}`)
  return block.slice(0, block.indexOf('```')).trim().split('\n')
}

/** The data rows of the first table whose header starts with `| first |`. */
function tableRows(md: string, first: string): string[][] {
  const lines = md.split('\n')
  const at = lines.findIndex(l => l.startsWith(`| ${first} |`))
  if (at < 0) throw new Error(`no table | ${first} | in:\n${md}`)
  const rows: string[][] = []
  for (let i = at + 2; i < lines.length && lines[i]!.startsWith('|'); i++)
    rows.push(
      lines[i]!.slice(2, -2)
        .split(/(?<!\\)\|/)
        .map(c => c.trim())
    )
  return rows
}

describe('summary Markdown (unit)', () => {
  it('success: one row per host with versions, pids, steps, drain curve and health; a gantt bar per step', () => {
    const md = summaryMarkdown(result([host('deploy@web1', 'upgraded')], 'upgraded'))
    expect(md).toMatch(/^## zerodown: ✅ upgraded/)
    const [row] = tableRows(md, 'Host')
    expect(row![0]).toBe('deploy@web1')
    expect(row![1]).toBe('✅ upgraded')
    expect(row![2]).toBe('1.26.2 → 1.27.3')
    expect(row![3]).toBe('100 → 200')
    expect(row![5]).toContain('preflight 40ms · upload 120ms')
    expect(row![5]).toContain('drain 1.3s · quit 30ms')
    expect(row![6]).toBe('2 → 1 (400ms) → 0 (1.3s)')
    expect(row![7]).toBe('3/3 passed')

    const gantt = mermaid(md, 'gantt')
    expect(gantt).toContain('  dateFormat x')
    expect(gantt).toContain('  section deploy@web1')
    const bars = gantt.filter(l => /^\s{4}\S/.test(l))
    expect(bars.map(b => b.trim().split(' ')[0])).toEqual(OK_STEPS.map(s => s[0]))
    // Each bar spans its step in Unix milliseconds: upload starts at +40ms and ends at +160ms.
    expect(gantt).toContain(`    upload 120ms :done, ${T0 + 40}, ${T0 + 160}`)
    expect(gantt.some(l => l.includes('crit'))).toBe(false)

    expect(mermaid(md, 'xychart-beta')).toEqual(
      expect.arrayContaining(['  line [2, 1, 0]', '  x-axis "seconds into the drain" ["0.0", "0.4", "1.3"]'])
    )
    expect(tableRows(md, 'Step').map(r => [r[0], r[1], r[2]])).toContainEqual(['health', '+0.335s', '600ms'])
    expect(tableRows(md, '#')).toHaveLength(3)
    expect(md).not.toContain('What happened')
  })

  it('rollback: the failed step is a crit bar, the rollback follows; what happened says nothing is left to run', () => {
    const run = result([rolledBackAtHealth('deploy@web1')], 'rolled-back', [
      { host: 'deploy@web1', step: 'health', error: 'health failed', result: 'rolled-back' }
    ])
    const md = summaryMarkdown(run, {
      serverUrl: 'https://github.com',
      repository: 'acme/shop',
      rollbackWorkflow: 'rollback.yml'
    })
    expect(md).toMatch(/^## zerodown: ↩️ rolled-back/)
    expect(tableRows(md, 'Host')[0]![1]).toBe('↩️ rolled-back at health')
    // What serves, with what was tried beside it: never "old → new" for a host that went back.
    expect(tableRows(md, 'Host')[0]![2]).toBe('1.26.2 serves; tried 1.27.3')
    const gantt = mermaid(md, 'gantt')
    expect(gantt).toContain(`    health 2.0s :crit, ${T0 + 335}, ${T0 + 2335}`)
    expect(gantt).toContain(`    rollback 90ms :active, ${T0 + 2335}, ${T0 + 2425}`)
    expect(md).toContain('### What happened')
    expect(md).toContain('Cause: **deploy@web1** at **health**: health failed')
    expect(md).toMatch(/deploy@web1\*\* rolled back at \*\*health\*\*: the new binary did not pass/)
    expect(md).toContain('nothing to run on this host')
    expect(md).toContain('[rollback workflow](https://github.com/acme/shop/actions/workflows/rollback.yml)')
    // The failed checks are listed.
    expect(tableRows(md, '#').map(r => r[2])).toEqual(['❌ fail', '❌ fail'])
  })

  it('a failed rollback shows the exact repair commands', () => {
    const h = rolledBackAtHealth('deploy@web1')
    h.result = 'failed'
    h.rollbackError = 'the old master 100 is not running: it cannot be restored'
    h.repair = ['# state: pid file: 200', 'kill -HUP 100; kill -QUIT "$(cat /run/nginx.pid)"']
    const md = summaryMarkdown(result([h], 'failed'))
    expect(md).toContain('and its rollback failed too: the old master 100 is not running')
    expect(md).toContain(
      '  ```sh\n  # state: pid file: 200\n  kill -HUP 100; kill -QUIT "$(cat /run/nginx.pid)"\n  ```'
    )
    // No rollback workflow known: no made-up link, the action itself is named.
    expect(md).toContain('run this action with `mode: rollback`')
    expect(md).not.toContain('rollback.yml')
    // A URL given as rollback-workflow is linked as it is.
    const linked = summaryMarkdown(result([h], 'failed'), { rollbackWorkflow: 'https://ci.example/rollback' })
    expect(linked).toContain('[rollback workflow](https://ci.example/rollback)')
  })

  it('fleet: one section per host in rollout order; a partial rollout names the hosts to take back', () => {
    const hosts = [
      host('deploy@web1', 'upgraded'),
      host('deploy@web2', 'upgraded', {}, 2300),
      { ...rolledBackAtHealth('deploy@web3'), startedAt: iso(4600) },
      {
        ...host('deploy@web4', 'untouched'),
        steps: [],
        drain: [],
        health: [],
        oldPid: undefined,
        newPid: undefined
      }
    ]
    const md = summaryMarkdown(result(hosts, 'failed'), {
      serverUrl: 'https://ghe.example',
      repository: 'a/b',
      rollbackWorkflow: 'rollback.yml'
    })
    expect(tableRows(md, 'Host').map(r => [r[0], r[1]])).toEqual([
      ['deploy@web1', '✅ upgraded'],
      ['deploy@web2', '✅ upgraded'],
      ['deploy@web3', '↩️ rolled-back at health'],
      ['deploy@web4', '⏸️ untouched']
    ])
    const gantt = mermaid(md, 'gantt')
    expect(gantt.filter(l => l.startsWith('  section'))).toEqual([
      '  section deploy@web1',
      '  section deploy@web2',
      '  section deploy@web3'
    ])
    expect(gantt[1]).toMatch(/title Rollout of 3 hosts/)
    expect(md).toContain('deploy@web4** was not reached')
    expect(md).toContain('These hosts run the new version: `deploy@web1`, `deploy@web2`')
    expect(md).toContain('https://ghe.example/a/b/actions/workflows/rollback.yml')
  })

  it('Mermaid text never carries the characters that end a gantt name; table cells stay one cell', () => {
    expect(mermaidText('zd@[::1]:2222')).toBe('zd@[∶∶1]∶2222')
    expect(mermaidText('a#b;c\nd')).toBe('a b c d')
    const chart = rolloutChart([host('deploy@10.0.0.1:2222', 'upgraded')]).join('\n')
    expect(chart).toContain('section deploy@10.0.0.1∶2222')
    expect(cell('a | b <script>\nc')).toBe('a \\| b &lt;script&gt; c')
    expect(drainChart(host('x', 'upgraded', { drain: [{ atMs: 0, oldWorkers: 0 }] }))).toEqual([])
  })

  it('the version output names what each host serves after the run, not what was tried', () => {
    const v = { version: '1.27.3', previousVersion: '1.26.0' }
    expect(outputsOf(result([host('a', 'upgraded', v)], 'upgraded')).version).toBe('1.27.3')
    expect(outputsOf(result([host('a', 'rolled-back', v)], 'rolled-back')).version).toBe('1.26.0')
    const mixed = result([host('a', 'upgraded', v), host('b', 'failed', v)], 'failed')
    expect(outputsOf(mixed).version).toBe('1.27.3,1.26.0')
  })

  it('the report output is the JSON of every host', () => {
    const run = result([host('deploy@web1', 'upgraded')], 'upgraded')
    const out = outputsOf(run)
    expect(JSON.parse(out.report!).hosts[0].steps).toHaveLength(9)
    expect(out['new-pid']).toBe('200')
  })

  describe('the report output within GitHub bounds', () => {
    type Cut = { truncated?: string; hosts: HostReport[]; counts: object }
    const fleetOf = (good: number, bad: number) =>
      result(
        [
          ...Array.from({ length: good }, (_, i) => host(`deploy@web${i}`, 'upgraded')),
          ...Array.from({ length: bad }, (_, i) => rolledBackAtHealth(`deploy@web${good + i}`))
        ],
        bad ? 'rolled-back' : 'upgraded'
      )
    const limited = (run: RolloutResult, reportLimit = REPORT_OUTPUT_CHARS) => {
      const text = outputsOf(run, { reportLimit }).report!
      expect(text.length).toBeLessThanOrEqual(reportLimit)
      return JSON.parse(text) as Cut
    }
    // 999 hosts that went well and one rolled back: about 2 MB of JSON in full.
    const fleet = fleetOf(999, 1)
    const full = outputsOf(fleet).report!

    it('is whole when it fits (and always on the command line)', () => {
      const one = fleetOf(1, 0)
      expect(outputsOf(one, { reportLimit: REPORT_OUTPUT_CHARS }).report).toBe(outputsOf(one).report)
      expect(full.length).toBeGreaterThan(REPORT_OUTPUT_CHARS)
      expect(JSON.parse(full).truncated).toBeUndefined()
    })

    it('past the limit keeps every host, and every detail of the one that failed, and says what it left out', () => {
      const cut = limited(fleet)
      expect(cut.truncated).toMatch(/^over 250000 characters: left out .* of the hosts that went well/)
      expect(cut.hosts).toHaveLength(1000)
      expect(cut.counts).toEqual(fleet.counts)
      expect(cut.hosts[999]).toEqual(JSON.parse(full).hosts[999])
      expect(cut.hosts[0]).toMatchObject({
        host: 'deploy@web0',
        result: 'upgraded',
        version: '1.27.3',
        newPid: 200
      })
      // A smaller fleet keeps the steps of every host, without their observations.
      const some = limited(fleetOf(140, 1))
      expect(some.truncated).toMatch(/the observations, drain and health curves/)
      expect(some.hosts[0]!.steps.map(st => st.name)).toEqual(OK_STEPS.map(([name]) => name))
      expect(some.hosts[140]!.health).toHaveLength(2)
    })

    it('with many failed hosts, one line per host; past that, the hosts that did not go well', () => {
      const lines = limited(fleetOf(400, 300))
      expect(lines.truncated).toMatch(/every host's steps/)
      expect(lines.hosts).toHaveLength(700)
      expect(lines.hosts[699]).toMatchObject({ result: 'rolled-back', failedStep: 'health' })
      expect(lines.hosts[699]!.steps).toBeUndefined()
      const worst = limited(fleet, 5_000)
      expect(worst.truncated).toMatch(/only the hosts that did not go well/)
      expect(worst.hosts.map(h => h.host)).toEqual(['deploy@web999'])
    })
  })
})

describe('the summary the bundle writes (sandbox 127.0.0.71-73)', () => {
  let sb: Sandbox
  let dir: string
  beforeAll(() => {
    sb = sandboxUp({ first: 71, count: 3 })
    dir = scratchDir('zerodown-report-')
  })
  afterAll(() => {
    sb?.down()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('success: the table, the gantt with every step, the upload progress with MB/s, the drain count', async () => {
    const h = sb.hosts[0]!
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'report-ok') })
    if (run.code !== 0) console.log(run.log)
    expect(run.code).toBe(0)
    const row = tableRows(run.summary, 'Host')
    expect(row).toHaveLength(1)
    expect(row[0]![0]).toBe(`${sb.user}@${h.address}:${h.sshPort}`)
    expect(row[0]![1]).toBe('✅ upgraded')
    expect(row[0]![3]).toMatch(/^\d+ → \d+$/)
    const gantt = mermaid(run.summary, 'gantt')
    expect(gantt).toContain(`  section ${sb.user}@${h.address}∶${h.sshPort}`)
    for (const step of ['preflight', 'upload', 'verify', 'swap', 'usr2', 'winch', 'health', 'drain', 'quit'])
      expect(gantt.some(l => new RegExp(`^    ${step} \\S+ :done, \\d{13}, \\d{13}$`).test(l))).toBe(true)
    expect(tableRows(run.summary, '#').every(r => r[2] === '✅ pass')).toBe(true)
    // Logs: progress with percent and MB/s; the drain's count; each step's duration.
    expect(run.log).toMatch(/\[upload\] upload 100% \(\d+\.\d of \d+\.\d MB(, [\d.]+ MB\/s)?\)/)
    expect(run.log).toMatch(/\[drain\] \d+ old workers? left after/)
    expect(run.log).toMatch(/✓ \S+ \[health\] ok in \d/)
  })

  it('rollback: an annotation titled with host and step, a crit bar, and what happened', async () => {
    const h = sb.hosts[0]!
    const label = `${sb.user}@${h.address}:${h.sshPort}`
    const broken = brokenBuild(dir, 'report-exit', 'exit 1')
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: broken })
    expect(run.code).not.toBe(0)
    expect(run.outputs.result).toBe('rolled-back')
    // The annotation's title names the host and the step (the runner escapes ':' in properties).
    expect(run.log).toContain(`::error title=${label.replace(/:/g, '%3A')}%3A usr2::${label}: usr2 failed: `)
    expect(tableRows(run.summary, 'Host')[0]![1]).toBe('↩️ rolled-back at usr2')
    const gantt = mermaid(run.summary, 'gantt')
    expect(gantt.some(l => /^ {4}usr2 \S+ :crit, \d{13}, \d{13}$/.test(l))).toBe(true)
    expect(gantt.some(l => /^ {4}rollback \S+ :active, /.test(l))).toBe(true)
    expect(run.summary).toContain('### What happened')
    const error = JSON.parse(run.outputs.report!).hosts[0].error as string
    expect(run.summary).toContain(cell(error, 1000))
    expect(run.summary).toContain('nothing to run on this host')
  })

  it('fleet: one row and one chart section per host', async () => {
    const hosts = [sb.hosts[1]!, sb.hosts[2]!]
    const run = await runAction(
      {
        ...sandboxInputs(sb, hosts),
        binary: nginxBuild(dir, 'report-fleet'),
        'rollback-workflow': 'rollback.yml'
      },
      { env: { GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/shop' } }
    )
    if (run.code !== 0) console.log(run.log)
    expect(run.code).toBe(0)
    const labels = hosts.map(h => `${sb.user}@${h.address}:${h.sshPort}`)
    expect(tableRows(run.summary, 'Host').map(r => [r[0], r[1]])).toEqual(labels.map(l => [l, '✅ upgraded']))
    const gantt = mermaid(run.summary, 'gantt')
    expect(gantt.filter(l => l.startsWith('  section '))).toEqual(
      labels.map(l => `  section ${l.replace(/:/g, '∶')}`)
    )
    expect(gantt[1]).toMatch(/title Rollout of 2 hosts/)
    expect(run.summary).toContain('https://github.com/acme/shop/actions/workflows/rollback.yml')
  })
})
