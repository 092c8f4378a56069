/**
 * Zero downtime, proven with real traffic against a sandbox host (127.0.0.23): a bounded load of
 * connection-per-request clients runs while the action (the bundle, under Node 24) upgrades the
 * host, and while it rolls a broken binary back; not one request may fail. Keep-alive clients are
 * measured apart: their idle-close races are counted and printed, never asserted away.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import * as http from 'node:http'
import { rmSync } from 'node:fs'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { brokenBuild, nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { actionUnderLoad } from './helpers/load.js'
import { confWith, writeHostFile } from './helpers/upgrade-host.js'

let sb: Sandbox
let h: SandboxHost
let dir: string
let originalPid = 0

beforeAll(() => {
  sb = sandboxUp({ first: 23, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-zdt-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  originalPid = sb.nginxStart(h, { reset: true })
})

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** The action under load on /pid (keep-alive clients when asked); a rollback is expected to exit 1. */
const underLoad = (label: string, inputs: Record<string, string>, keepAlive = false) =>
  actionUnderLoad(h, label, inputs, {
    expectCode: label.includes('rollback') ? 1 : 0,
    keepAlive,
    countBodies: true
  })

describe('connection-per-request clients see no failed request', () => {
  it('during a hot upgrade', async () => {
    const oldWorkers = sb.nginxWorkers(h, originalPid)
    const { run, load, duringAction } = await underLoad('upgrade, connection per request', {
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'zdt')
    })
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(load.failed).toBe(0)
    expect(load.failures).toEqual({})
    expect(load.endedBy).toBe('stop')
    expect(duringAction).toBeGreaterThan(100)
    // the load spanned the switch: old workers and new workers both answered it
    const newPid = Number(run.outputs['new-pid'])
    const newWorkers = sb.nginxWorkers(h, newPid)
    const byOld = oldWorkers.reduce((n, w) => n + (load.bodies[String(w)] ?? 0), 0)
    const byNew = newWorkers.reduce((n, w) => n + (load.bodies[String(w)] ?? 0), 0)
    expect(byOld).toBeGreaterThan(0)
    expect(byNew).toBeGreaterThan(0)
  })

  it('during an automatic rollback (the new binary answers /health with 500)', async () => {
    writeHostFile(
      sb,
      h,
      '/srv/app/conf/health500.conf',
      confWith(
        sb,
        h,
        'location = /health { default_type text/plain; return 200 "ok\\n"; }',
        'location = /health { default_type text/plain; return 500 "broken\\n"; }'
      )
    )
    const broken = brokenBuild(
      dir,
      'zdt-health500',
      'exec /usr/sbin/nginx -p /srv/app -c /srv/app/conf/health500.conf -e /srv/app/logs/error.log'
    )
    const { run, load } = await underLoad('rollback (health 500), connection per request', {
      ...sandboxInputs(sb, [h]),
      binary: broken,
      'health-timeout': '2s'
    })
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(sb.readPid(h)).toBe(originalPid)
    expect(load.failed).toBe(0)
    expect(load.failures).toEqual({})
  })

  it('during a rollback after a drain timeout, with long downloads held on an old AND a new worker (HUP before QUIT)', async () => {
    // A download on an old worker holds the drain past drain-timeout; one on a new worker keeps
    // the new master from exiting on QUIT for a while. Unless the old master is HUP'ed first, no
    // worker accepts in between and the clients' connections hang.
    const downloads: http.ClientRequest[] = []
    const startDownload = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.get({ host: h.address, port: h.httpPort, path: '/big', agent: false }, res => {
          res.once('data', () => resolve())
          res.on('error', () => undefined)
        })
        req.on('error', e => reject(e))
        downloads.push(req)
      })
    await startDownload() // served by an old worker
    const load = startLoad({
      host: h.address,
      port: h.httpPort,
      path: '/pid',
      concurrency: 4,
      maxRequests: 200_000,
      maxMs: 60_000,
      timeoutMs: 3000
    })
    try {
      while (load.count() < 100) await sleep(10)
      let newWorkerDownload: Promise<void> | null = null
      let log = ''
      const run = await runAction(
        { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'zdt-drain'), 'drain-timeout': '1500ms' },
        {
          // once no old worker accepts, a new connection goes to a new worker: start a download there
          onLog: chunk => {
            log += chunk
            if (newWorkerDownload === null && /\[winch\] no old worker accepts/.test(log))
              newWorkerDownload = startDownload().catch((e: Error) => {
                throw new Error(`the download from a new worker did not start: ${e.message}`)
              })
          }
        }
      )
      await sleep(300)
      const result = await load.stop()
      console.log(describeLoad('rollback (drain timeout), connection per request', result))
      if (run.code !== 1 || result.failed > 0) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
      expect(newWorkerDownload).not.toBeNull()
      await newWorkerDownload
      expect(run.code).toBe(1)
      expect(run.outputs.result).toBe('rolled-back')
      expect(run.log).toMatch(/\[rollback\] sent HUP to the old master/)
      expect(sb.readPid(h)).toBe(originalPid)
      expect(result.failed).toBe(0)
    } finally {
      await load.stop()
      for (const d of downloads) d.destroy()
    }
  })
})

describe('keep-alive clients', () => {
  it('during a hot upgrade: idle-close races are counted and reported; no refused connection, timeout or error status', async () => {
    const { run, load } = await underLoad(
      'upgrade, keep-alive clients',
      { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'zdt-keepalive') },
      true
    )
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(load.requests).toBeGreaterThan(100)
    // Reported, not asserted: the HTTP/1.1 race of a server closing an idle keep-alive connection
    // (old workers close theirs on WINCH), and the same close hitting a connection opened a moment
    // before (accepted by an old worker, closed as idle before its request was read).
    console.log(
      `keep-alive clients during the upgrade: ${load.idleCloseRaces} idle-close races on reused connections, ` +
        `${load.freshResets} resets of fresh connections${load.firstFailures.length ? `: ${load.firstFailures.join('; ')}` : ''}`
    )
    // Refused connections, timeouts and error statuses would be downtime: none.
    expect(load.failures).toEqual({})
    expect(load.failed).toBe(0)
  })
})
