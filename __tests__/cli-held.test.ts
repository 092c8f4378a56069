/**
 * A held fleet finished from a terminal: the bundle as a command line (`node dist/index.js`, no
 * GITHUB_* variables) against a real sandbox host (sshd + nginx on 127.0.9.10). `deploy --hold`
 * leaves the old master parked; `abort` returns the host to its original master and binary;
 * a second `abort` finds nothing held.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { HostReport } from '../src/engine/types.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, NODE24, ROOT, scratchDir } from './helpers/action.js'
import { processesOf } from './helpers/safety.js'
import { health, hostState, sha256 } from './helpers/upgrade-host.js'

const HELD = '/var/lib/zerodown/nginx/held'

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ net: '127.0.9', first: 10, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-cli-held-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Runs the bundle with arguments, as a user would in a terminal. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    const child = spawn(NODE24, [join(ROOT, 'dist/index.js'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' }
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

const connect = () => [
  '--hosts',
  `${sb.user}@${h.address}:${h.sshPort}`,
  '--private-key-file',
  sb.privateKeyPath,
  '--known-hosts-file',
  sb.knownHostsPath,
  '--pid-file',
  '/run/nginx.pid',
  '--health-url',
  `http://{host}:${h.httpPort}/health`,
  '--health-interval',
  '100ms',
  '--health-checks',
  '2',
  '--poll-interval',
  '100ms',
  '--json'
]

const watchdogs = () => processesOf(sb, h, /zerodown-watchdog/)

describe('a held host finished through the command line (sandbox 127.0.9.10)', () => {
  it('deploy --hold parks the old master; abort returns the host to it; abort again finds nothing held', async () => {
    const original = hostState(sb, h)
    const oldSha = original.liveSha256
    const build = nginxBuild(dir, 'cli-held')
    const hold = await runCli(['deploy', ...connect(), '--binary', build, '--hold'])
    expect([hold.code, hold.stderr.slice(-2000)]).toEqual([0, expect.any(String)])
    expect(JSON.parse(hold.stdout).result).toBe('parked')
    // Held: two masters, the new one in the pid file, the record and the hold run's watchdog.
    const held = hostState(sb, h)
    expect([held.masters.length, held.liveSha256, existsSync(sb.hostPath(h, HELD))]).toEqual([
      2,
      sha256(build),
      true
    ])
    expect(held.masters).toContain(original.pid)
    expect(watchdogs()).toHaveLength(1)

    const abort = await runCli(['abort', ...connect()])
    expect([abort.code, abort.stderr.slice(-2000)]).toEqual([0, expect.any(String)])
    const report = JSON.parse(abort.stdout) as { result: string; hosts: HostReport[] }
    expect([report.result, report.hosts.map(r => r.result)]).toEqual(['rolled-back', ['rolled-back']])
    const back = hostState(sb, h)
    expect([back.pid, back.pidAlive, back.masters, back.liveSha256, back.oldbin]).toEqual([
      original.pid,
      true,
      [original.pid],
      oldSha,
      false
    ])
    expect([existsSync(sb.hostPath(h, HELD)), watchdogs()]).toEqual([false, []])
    expect(await health(h)).toBe('200 ok')
    expect(readFileSync(sb.hostPath(h, '/srv/app/sbin/nginx')).equals(readFileSync(build))).toBe(false)

    const again = await runCli(['abort', ...connect()])
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout).result).toBe('unchanged')
    expect(again.stderr).toMatch(/nothing held here/)
    expect(sb.readPid(h)).toBe(original.pid)
  })

  it('abort refuses a binary before any host is touched (exit 2)', async () => {
    const r = await runCli(['abort', ...connect(), '--binary', '/usr/sbin/nginx'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/Input 'binary': is set but mode is abort/)
    expect(JSON.parse(r.stdout).result).toBe('failed')
  })
})
