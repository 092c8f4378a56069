/**
 * Docs that stay true: the README's inputs and outputs tables and src/inputs.ts are generated from
 * action.yml (scripts/docs.mjs), and the Troubleshooting section quotes every error message the
 * code can produce, and only those. `docs.mjs --check` fails on any drift; this test runs it on the
 * repository and shows, on a scratch copy, that it fails when the docs differ.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { INPUTS, OUTPUTS } from '../src/inputs.js'
import { ROOT, scratchDir } from './helpers/action.js'

interface Spec {
  description?: string
  default?: string
  required?: boolean
}
const action = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
  inputs: Record<string, Spec>
  outputs: Record<string, Spec>
}

function docs(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/docs.mjs'), ...args], { encoding: 'utf8' })
  return { code: r.status, out: r.stdout + r.stderr }
}

/** The rows of the README table between <!-- marker --> and <!-- /marker -->, first cell unquoted. */
function tableOf(readme: string, marker: string): string[][] {
  const body = readme.slice(readme.indexOf(`<!-- ${marker} -->`), readme.indexOf(`<!-- /${marker} -->`))
  return body
    .split('\n')
    .filter(l => l.startsWith('| `'))
    .map(l =>
      l
        .slice(2, -2)
        .split(/(?<!\\)\|/)
        .map(c => c.trim())
    )
}

describe('the repository', () => {
  it('docs.mjs --check passes: README tables, src/inputs.ts and Troubleshooting match the code', () => {
    const r = docs(['--check'])
    expect(r.out).toContain('match action.yml')
    expect(r.code).toBe(0)
  })

  it('the README tables list every input and output of action.yml, with defaults and required', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const inputs = tableOf(readme, 'inputs')
    expect(inputs.map(r => r[0])).toEqual(Object.keys(action.inputs).map(n => `\`${n}\``))
    for (const [name, spec] of Object.entries(action.inputs)) {
      const row = inputs.find(r => r[0] === `\`${name}\``)!
      expect(row[1]).toBe(spec.required ? '**required**' : spec.default ? `\`${spec.default}\`` : '')
    }
    expect(tableOf(readme, 'outputs').map(r => r[0])).toEqual(
      Object.keys(action.outputs).map(n => `\`${n}\``)
    )
  })

  it('src/inputs.ts (what the command line offers) is action.yml', () => {
    expect(INPUTS.map(i => i.name)).toEqual(Object.keys(action.inputs))
    for (const i of INPUTS) {
      const spec = action.inputs[i.name]!
      expect(i.default).toBe(spec.default === undefined ? undefined : String(spec.default))
      expect(i.required).toBe(spec.required === true)
    }
    expect(OUTPUTS.map(o => o.name)).toEqual(Object.keys(action.outputs))
  })

  it('the Troubleshooting section has entries for the errors users meet most', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## Troubleshooting'), readme.indexOf('## Development'))
    for (const quoted of [
      'HOST KEY MISMATCH for',
      'sudo asked for a password',
      'does not run daemonized',
      'an upgrade is in progress or was interrupted',
      'health checks in a row within health-timeout',
      'old workers still busy after drain-timeout',
      'the new binary exited at once'
    ])
      expect(section).toContain(`\`${quoted}\``)
  })
})

describe('a scratch copy that drifts', () => {
  let dir: string
  let baseline: string
  const check = () => docs(['--check', '--root', dir])
  /** What --check says beyond the repository's own state (the repository test covers that). */
  const news = (out: string) =>
    out
      .split('\n')
      .filter(l => l !== '' && !baseline.includes(l) && !l.includes('match action.yml'))
      .join('\n')

  beforeAll(() => {
    dir = scratchDir('zerodown-docs-')
    for (const f of ['README.md', 'action.yml', '.prettierrc.json']) cpSync(join(ROOT, f), join(dir, f))
    mkdirSync(join(dir, 'src'))
    cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true })
  })
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('starts as the repository does', () => {
    baseline = check().out
    expect(baseline).toBe(docs(['--check']).out)
  })

  it('fails when action.yml changes, and `npm run docs` brings README and src/inputs.ts back in line', () => {
    const yml = join(dir, 'action.yml')
    const original = readFileSync(yml, 'utf8')
    writeFileSync(
      yml,
      original.replace(
        /^inputs:\n/m,
        "inputs:\n  canary-wait:\n    description: 'Time to watch the canary before the rest.'\n    default: 30s\n"
      )
    )
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out)).toContain(
      'README.md: the inputs/outputs tables differ from action.yml (run `npm run docs`)'
    )
    expect(news(r.out)).toContain('src/inputs.ts differs from action.yml')

    expect(docs(['--root', dir]).code).toBe(0)
    expect(news(check().out)).toBe('')
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toMatch(
      /\| `canary-wait` +\| `30s` +\| Time to watch the canary before the rest\. +\|/
    )
    expect(readFileSync(join(dir, 'src/inputs.ts'), 'utf8')).toContain("name: 'canary-wait'")
    writeFileSync(yml, original)
    expect(docs(['--root', dir]).code).toBe(0)
  })

  it('fails when the code gains an error message Troubleshooting does not quote', () => {
    const file = join(dir, 'src/supervisors/nginx/drain.ts')
    const original = readFileSync(file, 'utf8')
    appendFileSync(file, "\nexport const x = () => new StepError('drain', `the moon ${1} is in the way`)\n")
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out)).toMatch(
      /^docs: README.md: no Troubleshooting entry quotes this message \(src\/supervisors\/nginx\/drain\.ts:\d+\): the moon … is in the way$/
    )
    writeFileSync(file, original)
    expect(news(check().out)).toBe('')
  })

  it('fails when Troubleshooting quotes a message the code no longer has', () => {
    const readme = join(dir, 'README.md')
    const original = readFileSync(readme, 'utf8')
    writeFileSync(
      readme,
      original.replace('> `the new binary exited at once`', '> `the new binary fell over`')
    )
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out)).toContain(
      'quotes `the new binary fell over`, which no error message in src/ contains'
    )
    expect(news(r.out)).toMatch(
      /no Troubleshooting entry quotes this message .*the new binary exited at once/
    )
    writeFileSync(readme, original)
    expect(news(check().out)).toBe('')
  })
})
