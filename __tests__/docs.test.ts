/**
 * Docs that stay true: the inputs and outputs tables of docs/inputs.md and src/inputs.ts are
 * generated from action.yml (scripts/docs.mjs), docs/troubleshooting.md quotes every error message
 * the code can produce, and only those, and every relative link of README.md, CHANGELOG.md and
 * docs/ resolves. `docs.mjs --check` fails on any drift; this test runs it on the repository and
 * shows, on a scratch copy, that it fails when the docs differ. The README stays short enough for
 * a newcomer and leads to every page of docs/.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
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

const INPUTS_DOC = 'docs/inputs.md'
const TROUBLESHOOTING = 'docs/troubleshooting.md'

/** The rows of the docs/inputs.md table between <!-- marker --> and <!-- /marker -->, first cell unquoted. */
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
  it('docs.mjs --check passes: inputs tables, src/inputs.ts, Troubleshooting and links match the code', () => {
    const r = docs(['--check'])
    expect(r.out).toContain('match action.yml')
    expect(r.code).toBe(0)
  })

  it('docs/inputs.md lists every input and output of action.yml, with defaults and required', () => {
    const readme = readFileSync(join(ROOT, INPUTS_DOC), 'utf8')
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
    const section = readFileSync(join(ROOT, TROUBLESHOOTING), 'utf8')
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

  it('the README is at most 10 KB and every page of docs/ can be reached from it by links', () => {
    expect(statSync(join(ROOT, 'README.md')).size).toBeLessThanOrEqual(10 * 1024)
    const reached = new Set<string>()
    const visit = (file: string) => {
      if (reached.has(file) || !file.endsWith('.md')) return
      reached.add(file)
      const text = readFileSync(join(ROOT, file), 'utf8')
      for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g))
        if (!/^[a-z]+:/.test(m[1]!)) visit(normalize(join(dirname(file), m[1]!)))
    }
    visit('README.md')
    const pages = readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
      .filter(f => f.endsWith('.md') && !f.startsWith('images/')) // images/: the pictures' sources
      .map(f => `docs/${f}`)
    expect(pages.length).toBeGreaterThanOrEqual(8)
    expect(pages.filter(p => !reached.has(p))).toEqual([])
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
    cpSync(ROOT, dir, {
      recursive: true,
      filter: src => !/\/(node_modules|\.git|\.sandbox)$/.test(src) && !src.endsWith('/dist/index.js')
    })
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
      'docs/inputs.md: the inputs/outputs tables differ from action.yml (run `npm run docs`)'
    )
    expect(news(r.out)).toContain('src/inputs.ts differs from action.yml')

    expect(docs(['--root', dir]).code).toBe(0)
    expect(news(check().out)).toBe('')
    expect(readFileSync(join(dir, INPUTS_DOC), 'utf8')).toMatch(
      /\| `canary-wait` +\| `30s` +\| Time to watch the canary before the rest\. +\|/
    )
    expect(readFileSync(join(dir, 'src/inputs.ts'), 'utf8')).toContain("name: 'canary-wait'")
    writeFileSync(yml, original)
    expect(docs(['--root', dir]).code).toBe(0)
  })

  it("fails when package.json's version changes until `npm run docs` writes src/version.ts", () => {
    const file = join(dir, 'package.json')
    const original = readFileSync(file, 'utf8')
    writeFileSync(file, original.replace(/"version": "[^"]+"/, '"version": "9.8.7"'))
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out)).toBe("docs: src/version.ts differs from package.json's version (run `npm run docs`)")
    expect(docs(['--root', dir]).code).toBe(0)
    expect(readFileSync(join(dir, 'src/version.ts'), 'utf8')).toContain("export const VERSION = '9.8.7'")
    writeFileSync(file, original)
    expect(docs(['--root', dir]).code).toBe(0)
    expect(news(check().out)).toBe('')
  })

  it('fails when the code gains an error message Troubleshooting does not quote', () => {
    const file = join(dir, 'src/supervisors/nginx/drain.ts')
    const original = readFileSync(file, 'utf8')
    appendFileSync(file, "\nexport const x = () => new StepError('drain', `the moon ${1} is in the way`)\n")
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out)).toMatch(
      /^docs: docs\/troubleshooting.md: no entry quotes this message \(src\/supervisors\/nginx\/drain\.ts:\d+\): the moon … is in the way$/
    )
    writeFileSync(file, original)
    expect(news(check().out)).toBe('')
  })

  it('fails when Troubleshooting quotes a message the code no longer has', () => {
    const page = join(dir, TROUBLESHOOTING)
    const original = readFileSync(page, 'utf8')
    writeFileSync(page, original.replace('> `the new binary exited at once`', '> `the new binary fell over`'))
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out)).toContain(
      'docs/troubleshooting.md: quotes `the new binary fell over`, which no error message in src/ contains'
    )
    expect(news(r.out)).toMatch(/no entry quotes this message .*the new binary exited at once/)
    writeFileSync(page, original)
    expect(news(check().out)).toBe('')
  })

  it('fails on a link to a missing file or heading, and not on links in code', () => {
    const readme = join(dir, 'README.md')
    const original = readFileSync(readme, 'utf8')
    writeFileSync(
      readme,
      original +
        '\nSee [gone](docs/gone.md), [no such part](docs/fleets.md#no-such-part), ' +
        '[a real part](docs/troubleshooting.md#deploy-lock) and `[code](docs/nope.md)`.\n'
    )
    const r = check()
    expect(r.code).toBe(1)
    expect(news(r.out).split('\n').sort()).toEqual([
      'docs: README.md: the link to docs/fleets.md#no-such-part names a heading that does not exist',
      'docs: README.md: the link to docs/gone.md names a file that does not exist'
    ])
    writeFileSync(readme, original)
    expect(news(check().out)).toBe('')
  })
})
