/**
 * The HAProxy supervisor against a real HAProxy (Debian's, master-worker) on a sandbox host over a
 * real sshd: each member as the hot-upgrade strategy calls it, with the binary swapped by the
 * test the way the strategy swaps it (a rename over the live path). Connection-per-request load
 * runs through the host's HAProxy during every reload. Host: 127.0.0.100.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { chownSync, copyFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import * as http from 'node:http'
import { describeLoad, startLoad, type LoadResult } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { scratchDir } from './helpers/action.js'
import {
  HAPROXY,
  HAPROXY_PID_FILE,
  LIVE_HAPROXY,
  haproxyBuild,
  haproxyExitBuild,
  haproxyHealth500Build,
  haproxyNoBindBuild,
  haproxyWorkerDiesBuild
} from './helpers/haproxy.js'
import { connect } from './helpers/upgrade-host.js'
import { haproxy } from '../src/supervisors/haproxy/index.js'
import type { SupervisorContext, SupervisorSession } from '../src/supervisors/supervisor.js'
import type { SshHost } from '../src/host/ssh-host.js'

let sb: Sandbox
let h: SandboxHost
let host: SshHost
const dir = scratchDir('zerodown-haproxy-')
const notes: string[] = []
const ctx: SupervisorContext = { note: m => void notes.push(m), retrying: false }

beforeAll(async () => {
  sb = sandboxUp({ first: 100, count: 1, server: 'haproxy' })
  h = sb.hosts[0]!
  host = await connect(sb, h)
}, 60_000)

afterAll(async () => {
  await host?.close()
  sb?.down()
  rmSync(dir, { recursive: true, force: true })
})

beforeEach(() => {
  notes.length = 0
  sb.serverStart(h, { reset: true })
})

/** Puts `file` at the live path by a rename, as the strategy's swap does; the uid is the deploy user's. */
function swapIn(file: string): void {
  const live = sb.hostPath(h, LIVE_HAPROXY)
  const tmp = `${live}.test-new`
  copyFileSync(file, tmp)
  const { uid, gid } = {
    uid: Number(sb.exec(h, ['id', '-u', sb.user]).stdout),
    gid: Number(sb.exec(h, ['id', '-g', sb.user]).stdout)
  }
  chownSync(tmp, uid, gid)
  renameSync(tmp, live)
}

function workersOf(master: number): { pid: number; exe: string }[] {
  const r = sb.exec(h, [
    'sh',
    '-c',
    'for c in $(cat /proc/$1/task/*/children); do echo "$c $(stat -L -c %d:%i /proc/$c/exe)"; done',
    'sh',
    String(master)
  ])
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(l => ({ pid: Number(l.split(' ')[0]), exe: l.split(' ')[1]! }))
}

const liveId = () => sb.exec(h, ['stat', '-L', '-c', '%d:%i', LIVE_HAPROXY]).stdout.trim()

function load(path = '/pid') {
  return startLoad({
    host: h.address,
    port: h.httpPort,
    path,
    concurrency: 4,
    maxRequests: 200_000,
    maxMs: 60_000,
    timeoutMs: 5000
  })
}

function expectNoFailure(r: LoadResult, what: string): void {
  if (r.failed > 0) throw new Error(describeLoad(what, r))
  expect(r.requests).toBeGreaterThan(100)
  expect(r.failed).toBe(0)
}

async function opened(): Promise<SupervisorSession> {
  const s = haproxy.open(host, { pidFile: HAPROXY_PID_FILE, pollIntervalMs: 50 })
  await s.inspect(ctx)
  return s
}

describe('haproxy supervisor on a real HAProxy', () => {
  it('inspect reads the master, its arguments and workers; verify runs -c with them and refuses a binary that fails it', async () => {
    const s = haproxy.open(host, { pidFile: HAPROXY_PID_FILE, pollIntervalMs: 50 })
    const running = await s.inspect(ctx)
    expect(running.pid).toBe(h.serverPid)
    expect(running.livePath).toBe(LIVE_HAPROXY)
    expect(running.version).toMatch(/^\d+\.\d+/)
    expect(notes.join('\n')).toContain('-W -D -f /srv/app/conf/haproxy.cfg')
    const staged = '/srv/app/sbin/.staged-test'
    copyFileSync(haproxyBuild(dir, 'verify'), sb.hostPath(h, staged))
    await expect(s.verify(ctx, staged)).resolves.toEqual({ version: running.version })
    expect(notes.join('\n')).toContain('-c -f /srv/app/conf/haproxy.cfg')
    sb.exec(h, ['sh', '-c', 'printf "#!/bin/sh\\necho no >&2\\nexit 3\\n" > $1; chmod 755 $1', 'sh', staged])
    await expect(s.verify(ctx, staged)).rejects.toThrow(/fails its config check.*no/)
  })

  it('upgrade and rollback under connection-per-request load: 0 failed, the master keeps its pid, workers run the live file', async () => {
    const s = await opened()
    const master = h.serverPid
    const oldWorkers = workersOf(master).map(w => w.pid)
    const running = load()
    swapIn(haproxyBuild(dir, 'v2'))
    const newId = liveId()
    expect(await s.start(ctx, { startTimeoutMs: 20_000, intervalMs: 50 })).toBe(master)
    const serving = await s.serving()
    expect(serving.workers.length).toBeGreaterThan(0)
    for (const w of workersOf(master).filter(w => serving.workers.includes(w.pid))) expect(w.exe).toBe(newId)
    await s.stillServing(serving)
    expect(await s.drain(ctx, { timeoutMs: 20_000, intervalMs: 50, record: () => undefined })).toBe(true)
    expect(workersOf(master).some(w => oldWorkers.includes(w.pid))).toBe(false)
    // rollback: the old binary back at the live path, the same reload
    swapIn(HAPROXY)
    const oldId = liveId()
    await s.revert(ctx)
    const after = workersOf(master)
    expect(after.length).toBeGreaterThan(0)
    expect(after.every(w => w.exe === oldId)).toBe(true)
    expectNoFailure(await running.stop(), 'upgrade + rollback')
    expect(sb.readPid(h)).toBe(master)
  }, 90_000)

  it('a build whose /health answers 500 is live after the reload; its rollback loses no request', async () => {
    const s = await opened()
    const running = load()
    swapIn(haproxyHealth500Build(dir))
    await s.start(ctx, { startTimeoutMs: 20_000, intervalMs: 50 })
    const st = await new Promise<number>(resolve =>
      http.get(
        { host: h.address, port: h.httpPort, path: '/health', agent: false },
        r => (r.resume(), resolve(r.statusCode ?? 0))
      )
    )
    expect(st).toBe(500)
    swapIn(HAPROXY)
    await s.revert(ctx)
    expectNoFailure(await running.stop(), 'rollback from health 500')
  }, 90_000)

  it('a reload that cannot bind leaves the master in wait mode and the old workers serving; revert reloads the old binary', async () => {
    const s = await opened()
    const master = h.serverPid
    const oldWorkers = workersOf(master).map(w => w.pid)
    swapIn(haproxyNoBindBuild(dir))
    await expect(s.start(ctx, { startTimeoutMs: 20_000, intervalMs: 50 })).rejects.toThrow(/wait mode/)
    expect(workersOf(master).map(w => w.pid)).toEqual(oldWorkers)
    swapIn(HAPROXY)
    await s.revert(ctx)
    expect(workersOf(master).every(w => w.exe === liveId())).toBe(true)
  }, 90_000)

  it('a binary that exits at once ends the master (HAProxy has no old master to fall back on): revert starts the old binary again', async () => {
    const s = await opened()
    const master = h.serverPid
    swapIn(haproxyExitBuild(dir))
    await expect(s.start(ctx, { startTimeoutMs: 20_000, intervalMs: 50 })).rejects.toThrow(
      /master \d+ exited during the reload/
    )
    expect(sb.isAlive(master)).toBe(false)
    swapIn(HAPROXY)
    await s.revert(ctx)
    const now = sb.readPid(h)!
    expect(now).not.toBe(master)
    expect(workersOf(now).every(w => w.exe === liveId())).toBe(true)
    expect(notes.join('\n')).toMatch(/started the old binary again/)
  }, 90_000)

  it('a new worker that dies after start takes the master along: detected, and revert starts the old binary again', async () => {
    const s = await opened()
    const master = h.serverPid
    swapIn(haproxyWorkerDiesBuild(dir))
    let failed = ''
    try {
      await s.start(ctx, { startTimeoutMs: 20_000, intervalMs: 50 })
      // the worker may die just after the reload looked done: the health gate's check sees it
      for (let i = 0; i < 40; i++) {
        await s.stillServing(await s.serving())
        await new Promise(r => setTimeout(r, 50))
      }
    } catch (e) {
      failed = (e as Error).message
    }
    expect(failed).toMatch(/master|exited/)
    swapIn(HAPROXY)
    await s.revert(ctx)
    const now = sb.readPid(h)!
    expect(sb.isAlive(now)).toBe(true)
    expect(workersOf(now).every(w => w.exe === liveId())).toBe(true)
    expect(master).toBeGreaterThan(0)
  }, 90_000)

  it('drain waits for an old worker busy with a slow request, and times out while it is busy', async () => {
    const s = await opened()
    // Held in flight on the old worker until the test releases it (the slow backend's gate file),
    // whatever the machine's load; the first byte says the old worker has it.
    let started!: () => void
    const first = new Promise<void>(r => (started = r))
    const slow = new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      http
        .get({ host: h.address, port: h.httpPort, path: '/slow/120/drainsup', agent: false }, res => {
          let bytes = 0
          res.on('data', (c: Buffer) => {
            bytes += c.length
            started()
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }))
        })
        .on('error', reject)
    })
    await first
    swapIn(haproxyBuild(dir, 'drain'))
    await s.start(ctx, { startTimeoutMs: 20_000, intervalMs: 50 })
    expect(await s.drain(ctx, { timeoutMs: 500, intervalMs: 50, record: () => undefined })).toBe(false)
    expect((await s.busyOld()).length).toBe(1)
    writeFileSync(sb.hostPath(h, '/srv/app/release-drainsup'), '')
    expect(await s.drain(ctx, { timeoutMs: 20_000, intervalMs: 50, record: () => undefined })).toBe(true)
    expect(await slow).toEqual({ status: 200, bytes: 120 })
  }, 90_000)
})
