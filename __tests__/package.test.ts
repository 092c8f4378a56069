/**
 * The npm package: `npm pack` holds the bundle with its license notices, action.yml, LICENSE,
 * README and CHANGELOG, and none of the sources or tests. Installed from that tarball, offline
 * (the bundle carries its dependencies, so the package declares none), it gives the command
 * `zerodown-action`, which `npx zerodown-action` finds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, scratchDir } from './helpers/action.js'

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  bin: Record<string, string>
  dependencies?: Record<string, string>
}

let dir: string
let tarball: string
let files: string[]
let app: string

/** A clean environment: no GitHub variables, no npm settings of the test runner. */
const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir })

beforeAll(() => {
  dir = scratchDir('zerodown-package-')
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe']
    })
  ) as { filename: string; files: { path: string }[] }[]
  tarball = join(dir, packed[0]!.filename)
  files = packed[0]!.files.map(f => f.path).sort()
  app = join(dir, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
})

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('npm pack', () => {
  it('holds the bundle, its notices and the docs a user needs, and no source or test', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'CHANGELOG.md',
        'LICENSE',
        'README.md',
        'action.yml',
        'dist/index.js',
        'dist/licenses.txt',
        'package.json'
      ])
    )
    expect(files.filter(f => /^(src|__tests__|scripts|test|bench|node_modules)\//.test(f))).toEqual([])
    expect(pkg.dependencies).toBeUndefined()
    expect(pkg.bin).toEqual({ 'zerodown-action': 'dist/index.js' })
  })
})

describe('installed from the tarball', () => {
  beforeAll(() => {
    execFileSync(
      'npm',
      [
        'install',
        '--offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--cache',
        join(dir, 'cache'),
        tarball
      ],
      { cwd: app, env: env(), stdio: ['ignore', 'pipe', 'pipe'] }
    )
  })

  it('zerodown-action --version prints the version of this package', () => {
    const r = spawnSync(join(app, 'node_modules/.bin/zerodown-action'), ['--version'], {
      env: env(),
      encoding: 'utf8'
    })
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(`zerodown-action ${pkg.version}\n`)
    expect(r.status).toBe(0)
  })

  it('importing the package runs nothing: it exports no module, only its package.json', () => {
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "await import('zerodown-action').then(() => console.log('imported'))"],
      { cwd: app, env: env(), encoding: 'utf8' }
    )
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain('ERR_PACKAGE_PATH_NOT_EXPORTED')
    expect(r.stdout).toBe('')
    // No run of the action: it would have printed its help or an error about inputs.
    expect(r.stdout + r.stderr).not.toMatch(/^::|Input '|Usage:/m)
    const meta = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import p from 'zerodown-action/package.json' with { type: 'json' }; console.log(p.name)"
      ],
      { cwd: app, env: env(), encoding: 'utf8' }
    )
    expect(meta.stdout).toBe('zerodown-action\n')
  })

  it('npx zerodown-action deploy --help shows the flags of deploy; a bare run shows the help', () => {
    const npx = (...args: string[]) =>
      spawnSync('npx', ['--offline', '--no', '--cache', join(dir, 'cache'), 'zerodown-action', ...args], {
        cwd: app,
        env: env(),
        encoding: 'utf8'
      })
    const help = npx('deploy', '--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toContain('Flags of deploy:')
    expect(help.stdout).toMatch(/^ {2}--binary VALUE/m)
    const bare = npx()
    expect(bare.status).toBe(0)
    expect(bare.stdout).toContain('zerodown-action deploy --help')
    expect(bare.stdout).not.toMatch(/^::/m)
  })
})
