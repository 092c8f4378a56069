/**
 * The job summary's rollback link comes from the `rollback-workflow` input, or from the checked-out
 * repository's own workflow that runs zerodown-action with mode: rollback; never a made-up file.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { findRollbackWorkflow } from '../src/local/rollback-workflow.js'
import { contextFromEnv } from '../src/report/index.js'
import { ROOT, scratchDir } from './helpers/action.js'
import { settingsWith } from './helpers/inputs.js'

let ws: string
const workflows = () => join(ws, '.github/workflows')

beforeAll(() => {
  ws = scratchDir('zerodown-workspace-')
  mkdirSync(workflows(), { recursive: true })
})
afterAll(() => {
  if (ws) rmSync(ws, { recursive: true, force: true })
})

describe('the rollback workflow of the checkout', () => {
  it('is none without a checkout or without a workflow that rolls back with zerodown-action', () => {
    expect(findRollbackWorkflow(join(ws, 'missing'))).toBeUndefined()
    writeFileSync(join(workflows(), 'deploy.yml'), readFileSync(join(ROOT, 'examples/deploy.yml')))
    writeFileSync(
      join(workflows(), 'other.yml'),
      'jobs:\n  x:\n    steps:\n      - uses: x/y@v1\n        with:\n          mode: rollback\n'
    )
    expect(findRollbackWorkflow(ws)).toBeUndefined()
  })

  it('is the file that runs zerodown-action with mode: rollback (the example rollback workflow)', () => {
    writeFileSync(join(workflows(), 'undo-nginx.yaml'), readFileSync(join(ROOT, 'examples/rollback.yml')))
    expect(findRollbackWorkflow(ws)).toBe('undo-nginx.yaml')
    const ctx = contextFromEnv({
      GITHUB_WORKSPACE: ws,
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_REPOSITORY: 'a/b'
    })
    expect(ctx.rollbackWorkflow).toBe('undo-nginx.yaml')
  })

  it('the rollback-workflow input wins, and is a file name or an http(s) URL', () => {
    expect(contextFromEnv({ GITHUB_WORKSPACE: ws }, 'rollback.yml').rollbackWorkflow).toBe('rollback.yml')
    expect(settingsWith({ 'rollback-workflow': 'rollback.yml' }).rollbackWorkflow).toBe('rollback.yml')
    expect(settingsWith({ 'rollback-workflow': 'https://ci.example/jobs/rollback' }).rollbackWorkflow).toBe(
      'https://ci.example/jobs/rollback'
    )
    expect(() => settingsWith({ 'rollback-workflow': '../x.yml' })).toThrow(
      "Input 'rollback-workflow': '../x.yml' is neither a workflow file name nor an http(s) URL"
    )
    expect(() => settingsWith({ 'rollback-workflow': 'javascript:alert(1)' })).toThrow(
      'neither a workflow file'
    )
  })
})
