/**
 * --verbose (and RUNNER_DEBUG=1, GitHub's debug logging) shows every remote command, upload and
 * health request with its time and outcome; without them, none. Proven on real hot upgrades of a
 * sandbox host (127.0.0.190) through the bundle, from the command line and as GitHub runs it.
 * The trace shows host data only with its control characters made visible.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { setTrace, trace, visible } from '../src/host/trace.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, NODE24, ROOT, runAction, sandboxInputs, scratchDir } from './helpers/action.js'

describe('the trace (unit)', () => {
  it('makes control characters visible and cuts long text', () => {
    expect(visible('a\x1b[31mred\x07\nnext\ttab\x9b')).toBe('a\\x1b[31mred\\x07\\nnext\\ttab\\x9b')
    expect(visible('x'.repeat(700))).toBe(`${'x'.repeat(600)}… (100 more characters)`)
  })

  it('is silent without a sink, and writes one safe line per operation with one', () => {
    const lines: string[] = []
    trace('web1', '$ true', 'exit 0', Date.now())
    setTrace(l => lines.push(l))
    try {
      trace('web\x1b1', '$ printf "\\033]0;x\\007"', 'exit 0, stderr: \x1b[2J', Date.now() - 5)
    } finally {
      setTrace(undefined)
    }
    trace('web1', '$ true', 'exit 0', Date.now())
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^web\\x1b1: \$ printf "\\033]0;x\\007" → exit 0, stderr: \\x1b\[2J in \d+ms$/)
  })
})

describe('through the bundle (sandbox 127.0.0.190)', () => {
  let sb: Sandbox
  let h: SandboxHost
  let dir: string
  beforeAll(() => {
    sb = sandboxUp({ first: 190, count: 1 })
    h = sb.hosts[0]!
    dir = scratchDir('zerodown-verbose-')
  })
  afterAll(() => {
    sb?.down()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const label = () => `${sb.user}@${h.address}:${h.sshPort}`

  function deployCli(build: string, extra: string[], env: Record<string, string> = {}) {
    const args = [
      join(ROOT, 'dist/index.js'),
      'deploy',
      '--hosts',
      label(),
      '--private-key-file',
      sb.privateKeyPath,
      '--known-hosts-file',
      sb.knownHostsPath,
      '--binary',
      build,
      '--health-url',
      'http://{host}:8080/health',
      '--health-interval',
      '200ms',
      '--poll-interval',
      '100ms',
      ...extra
    ]
    return new Promise<{ code: number | null; stdout: string; stderr: string }>(resolve => {
      const child = spawn(NODE24, args, {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', d => (stdout += d))
      child.stderr.on('data', d => (stderr += d))
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
      child.on('close', code => {
        clearTimeout(timer)
        resolve({ code, stdout, stderr })
      })
    })
  }

  /** The traced operations of a log: `[what, outcome]` for each debug line of the host. */
  function traced(log: string, prefix: RegExp): [string, string][] {
    const re = new RegExp(
      `${prefix.source}${label().replace(/[.[\]]/g, '\\$&')}: (.*) → (.*) in \\d+ms$`,
      'gm'
    )
    return [...log.matchAll(re)].map(m => [m[1]!, m[2]!])
  }

  it('--verbose shows every remote command, the upload and each health request, with its outcome', async () => {
    sb.nginxStart(h, { reset: true })
    const build = nginxBuild(dir, 'verbose-1')
    const r = await deployCli(build, ['--verbose'])
    expect(r.stdout).toContain('zerodown: upgraded')
    expect(r.code).toBe(0)
    const ops = traced(r.stderr, /^debug: /)
    const commands = ops.filter(([what]) => what.startsWith('$ '))
    // Pre-flight alone reads the pid file, /proc and the binary: many commands, each with its status.
    expect(commands.length).toBeGreaterThan(10)
    for (const [, outcome] of commands) expect(outcome).toMatch(/^exit \d+/)
    expect(commands.some(([what]) => /\bkill\b.*\bUSR2\b/.test(what))).toBe(true)
    expect(ops.filter(([what]) => /^upload .* \(stream\)$/.test(what))).toEqual([
      // What landed, as the host computed it: the build's own sha256.
      [
        expect.stringContaining('nginx-verbose-1'),
        `done, sha256 ${createHash('sha256').update(readFileSync(build)).digest('hex')}`
      ]
    ])
    const checks = ops.filter(([what]) => what.startsWith('GET http://127.0.0.190:8080/health'))
    expect(checks.length).toBeGreaterThanOrEqual(3)
    expect(checks.every(([, outcome]) => outcome === 'status 200')).toBe(true)
  })

  it('RUNNER_DEBUG=1 turns it on from the environment; without either there is no trace', async () => {
    const on = await deployCli(nginxBuild(dir, 'verbose-2'), [], { RUNNER_DEBUG: '1' })
    expect(on.code).toBe(0)
    expect(traced(on.stderr, /^debug: /).length).toBeGreaterThan(10)
    const off = await deployCli(nginxBuild(dir, 'verbose-3'), [])
    expect(off.code).toBe(0)
    expect(off.stderr + off.stdout).not.toMatch(/^debug: /m)
  })

  it('in GitHub, debug logging (RUNNER_DEBUG=1) puts the trace in ::debug:: lines; off by default', async () => {
    const inputs = { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'verbose-4') }
    const on = await runAction(inputs, { env: { RUNNER_DEBUG: '1' } })
    expect(on.outputs.result).toBe('upgraded')
    const ops = traced(on.log, /^::debug::/)
    expect(ops.filter(([what]) => what.startsWith('$ ')).length).toBeGreaterThan(10)
    const off = await runAction({ ...inputs, binary: nginxBuild(dir, 'verbose-5') })
    expect(off.outputs.result).toBe('upgraded')
    expect(off.log).not.toMatch(/^::debug::.* → /m)
  })
})
