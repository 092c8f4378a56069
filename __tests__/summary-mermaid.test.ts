/**
 * Every Mermaid diagram of the job summary parses with the mermaid package itself, the code GitHub
 * runs to draw them: the real summaries of the demo (docs/images/summary-*.md, drawn into the
 * README's picture by scripts/summary-picture.mjs) and summaries built for every host result, a
 * fleet, and host names full of characters Mermaid gives meaning to. A diagram that does not parse
 * shows up on GitHub as an error box instead of the chart.
 *
 * Mermaid parses in Node: only its text sanitiser needs a DOM (DOMPurify), given here by jsdom, so
 * this runs in CI without a browser. Drawing (layout, fonts) is left to the picture script.
 */
import { beforeAll, describe, expect, it } from '@jest/globals'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { JSDOM } from 'jsdom'
import { summaryMarkdown } from '../src/report/index.js'
import type { RolloutResult } from '../src/fleet/tally.js'
import type { HostReport, HostResult, StepName, StepReport } from '../src/engine/types.js'
import { ROOT } from './helpers/action.js'

type Mermaid = {
  parse(text: string): Promise<unknown>
  mermaidAPI: {
    getDiagramFromText(text: string): Promise<{ db: { getTasks(): { section: string }[] } }>
  }
}
let mermaid: Mermaid

beforeAll(async () => {
  // DOMPurify (inside mermaid) looks for a window when it is first loaded.
  ;(globalThis as { window?: unknown }).window = new JSDOM('').window
  mermaid = (await import('mermaid')).default as unknown as Mermaid
})

/** The ```mermaid blocks of a Markdown text. */
function blocks(md: string): string[] {
  return [...md.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map(m => m[1]!)
}

/** Parses every block; the failures, each with its block. */
async function unparsed(md: string): Promise<string[]> {
  const out: string[] = []
  for (const b of blocks(md))
    await mermaid.parse(b).catch((e: Error) => out.push(`${e.message.split('\n')[0]}\n${b}`))
  return out
}

const T0 = Date.parse('2030-01-02T03:04:05.000Z')
const STEPS: StepName[] = [
  'connect',
  'preflight',
  'upload',
  'verify',
  'swap',
  'usr2',
  'winch',
  'health',
  'drain',
  'quit'
]

function host(name: string, result: HostResult, offsetMs = 0): HostReport {
  const failedAt = result === 'rolled-back' || result === 'failed' ? 'health' : undefined
  const names = failedAt ? [...STEPS.slice(0, STEPS.indexOf(failedAt) + 1), 'rollback' as StepName] : STEPS
  const steps: StepReport[] = (result === 'untouched' ? [] : names).map((step, i) => ({
    name: step,
    startedAt: new Date(T0 + offsetMs + i * 120).toISOString(),
    endedAt: new Date(T0 + offsetMs + i * 120 + 110).toISOString(),
    ms: 110,
    outcome: step === failedAt ? 'failed' : 'ok',
    observations: [`${step}: observed "quotes", #hash; colon: and <b>html</b>`]
  }))
  return {
    host: name,
    result,
    version: '1.27.3',
    previousVersion: '1.26.2',
    sha256: 'b'.repeat(64),
    previousSha256: 'a'.repeat(64),
    oldPid: 100,
    newPid: 200,
    startedAt: new Date(T0 + offsetMs).toISOString(),
    endedAt: new Date(T0 + offsetMs + 1300).toISOString(),
    durationMs: 1300,
    steps,
    drain:
      result === 'upgraded'
        ? [
            { atMs: 0, oldWorkers: 3 },
            { atMs: 450, oldWorkers: 1 },
            { atMs: 1200, oldWorkers: 0 }
          ]
        : [],
    health: [{ atMs: 5, ok: result === 'upgraded', detail: 'http://127.0.0.1/health 200' }],
    ...(failedAt
      ? { failedStep: failedAt, error: 'the new binary did not pass 3 health checks in a row' }
      : {})
  }
}

function run(hosts: HostReport[], overall: HostResult): RolloutResult {
  const counts = { upgraded: 0, 'rolled-back': 0, unchanged: 0, failed: 0, untouched: 0, parked: 0 }
  for (const h of hosts) counts[h.result]++
  const failures = hosts
    .filter(h => h.result === 'rolled-back' || h.result === 'failed')
    .map(h => ({ host: h.host, step: h.failedStep, error: h.error!, result: h.result }))
  return { result: overall, hosts, durationMs: 2500, counts, failures }
}

describe("the summary's Mermaid parses", () => {
  it('is a real check: a diagram Mermaid rejects is reported', async () => {
    const md = summaryMarkdown(run([host('web1', 'upgraded')], 'upgraded'))
    expect(await unparsed(md)).toEqual([])
    // What the summary's escaping prevents: a raw line break in a gantt section, a raw quote in a
    // chart title.
    const broken = md
      .replace(/^ {2}section .*$/m, '  section web1\n:::')
      .replace(/^ {2}title "(.*)"$/m, '  title "$1 "quoted" "')
    expect((await unparsed(broken)).length).toBe(2)
  })

  it("the demo's real summaries (the README's picture)", async () => {
    const dir = join(ROOT, 'docs/images')
    const files = readdirSync(dir).filter(f => /^summary-.+\.md$/.test(f))
    expect(files.length).toBeGreaterThanOrEqual(2)
    const all = files.map(f => readFileSync(join(dir, f), 'utf8'))
    const kinds = all.flatMap(blocks).map(b => b.split('\n')[0])
    expect(kinds).toContain('gantt')
    expect(kinds).toContain('xychart-beta')
    for (const md of all) expect(await unparsed(md)).toEqual([])
  })

  it.each<[string, HostResult]>([
    ['upgraded, with a drain curve', 'upgraded'],
    ['rolled back', 'rolled-back'],
    ['failed', 'failed'],
    ['unchanged', 'unchanged']
  ])('one host %s', async (_, result) => {
    const md = summaryMarkdown(run([host('deploy@web1.example.com:2222', result)], result))
    expect(blocks(md).length).toBeGreaterThanOrEqual(1)
    expect(await unparsed(md)).toEqual([])
  })

  it('a fleet whose host names hold what Mermaid treats as syntax', async () => {
    const names = [
      'deploy@[2001:db8::1]:22',
      'web#1;drop',
      'quote"host',
      'percent%%host',
      'brace{x}[y](z)',
      'colon:host:2222',
      'line\nbreak'
    ]
    const results: HostResult[] = [
      'upgraded',
      'rolled-back',
      'upgraded',
      'failed',
      'untouched',
      'upgraded',
      'upgraded'
    ]
    const md = summaryMarkdown(
      run(
        names.map((n, i) => host(n, results[i]!, i * 50)),
        'failed'
      )
    )
    expect(blocks(md).some(b => b.startsWith('gantt'))).toBe(true)
    const charts = blocks(md).filter(b => b.startsWith('xychart-beta'))
    expect(charts.length).toBe(results.filter(r => r === 'upgraded').length)
    expect(await unparsed(md)).toEqual([])
  })

  it('a host name with %% keeps its name: no Mermaid directive or comment comes from it', async () => {
    const names = ['web%%{wrap}%%1', '%%{init}%%web2', 'percent%%host']
    const md = summaryMarkdown(
      run(
        names.map((n, i) => host(n, 'upgraded', i * 50)),
        'upgraded'
      )
    )
    const gantt = blocks(md).find(b => b.startsWith('gantt'))!
    expect(await unparsed(md)).toEqual([])
    const sections = async (text: string) => [
      ...new Set((await mermaid.mermaidAPI.getDiagramFromText(text)).db.getTasks().map(t => t.section))
    ]
    // Each section still names its host (as shown: `%%` as `% %`), none was swallowed.
    expect(await sections(gantt)).toEqual(['web% %{wrap}% %1', '% %{init}% %web2', 'percent% %host'])
    // Without the escape, Mermaid takes the directive out of the name: the check can fail.
    const raw = gantt.replace(/% %/g, '%%')
    expect(await sections(raw)).not.toEqual(names)
    expect((await sections(raw))[0]).toBe('web1')
  })
})
