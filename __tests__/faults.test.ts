/**
 * Faults injected with small replacement "binaries" (#! scripts that pass -t/-T/-v and misbehave
 * otherwise) on a real sandbox host (127.0.0.22). Every fault must end the same way: the job fails
 * (exit 1) naming the step, the result is rolled-back, the ORIGINAL master still serves with its
 * original pid, the live binary is byte-identical to the original, and no .oldbin is left.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import * as http from 'node:http'
import { rmSync } from 'node:fs'
import { HostUpgrade } from '../src/fleet/host-upgrade.js'
import type { HostReport } from '../src/engine/types.js'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import {
  brokenBuild,
  nginxBuild,
  runAction,
  sandboxInputs,
  scratchDir,
  type ActionRun
} from './helpers/action.js'
import {
  confWith,
  connect,
  hostState,
  LIVE,
  memoryLogger,
  planFor,
  sha256,
  writeHostFile
} from './helpers/upgrade-host.js'

let sb: Sandbox
let h: SandboxHost
let dir: string
const ORIGINAL = sha256('/usr/sbin/nginx')
let originalPid = 0

beforeAll(() => {
  sb = sandboxUp({ first: 22, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-faults-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  originalPid = sb.nginxStart(h, { reset: true })
})

/** The same nginx, exec'd by the script with another config: it inherits the listening sockets. */
const execNginx = (conf: string) => `exec /usr/sbin/nginx -p /srv/app -c ${conf} -e /srv/app/logs/error.log`

/** The host serves again from its original master, with the original binary, and nothing is left over. */
async function expectRolledBack(run: ActionRun, step: string, observed: RegExp) {
  if (process.env.ZD_SHOW_LOG) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
  expect(run.code).toBe(1)
  expect(run.outputs.result).toBe('rolled-back')
  const report = JSON.parse(run.outputs.report!) as { hosts: HostReport[] }
  const hr = report.hosts[0]!
  expect(hr.result).toBe('rolled-back')
  expect(hr.failedStep).toBe(step)
  expect(hr.error).toMatch(observed)
  expect(hr.steps.at(-1)).toMatchObject({ name: 'rollback', outcome: 'ok' })
  // the job's message: the failed step, what was observed, and that the old version serves
  expect(run.log).toMatch(new RegExp(`::error::rolled-back: .* failed at ${step} \\(rolled back\\): `))
  expect(run.log).toMatch(observed)
  expect(run.log).toMatch(/The old version is serving/)
  await expectOriginalServes()
}

async function expectOriginalServes() {
  const st = hostState(sb, h)
  expect(st.pid).toBe(originalPid)
  expect(st.pidAlive).toBe(true)
  expect(st.masters).toEqual([originalPid])
  expect(st.liveSha256).toBe(ORIGINAL)
  expect(st.oldbin).toBe(false)
  expect(st.leftovers).toEqual([])
  const health = await httpGet(h.address, h.httpPort, '/health', 5000)
  expect(health).toEqual({ status: 200, body: 'ok\n' })
  // answered by a worker of the original master
  const worker = Number((await httpGet(h.address, h.httpPort, '/pid', 5000)).body.trim())
  expect(sb.nginxWorkers(h, originalPid)).toContain(worker)
}

const inputs = (over: Record<string, string> = {}) => ({
  ...sandboxInputs(sb, [h]),
  'start-timeout': '5s',
  'health-timeout': '3s',
  ...over
})

describe('each fault is rolled back to the original master', () => {
  it('a new binary that exits at once (usr2)', async () => {
    const run = await runAction(
      inputs({ binary: brokenBuild(dir, 'exit', 'echo "broken build" >&2; exit 1') })
    )
    await expectRolledBack(run, 'usr2', /the new binary exited at once/)
  })

  it('a new binary that never writes its pid file (usr2, start-timeout)', async () => {
    const run = await runAction(
      inputs({ binary: brokenBuild(dir, 'sleep', 'exec sleep 600'), 'start-timeout': '2s' })
    )
    await expectRolledBack(run, 'usr2', /no new master within start-timeout 2\.0s: .*new master \d+ /)
  })

  it('a new binary whose workers die at start (working_directory missing: fatal exit, not respawned) (usr2)', async () => {
    writeHostFile(
      sb,
      h,
      '/srv/app/conf/no-workdir.conf',
      confWith(sb, h, /^pid /m, 'working_directory /srv/app/missing-dir;\npid ')
    )
    const run = await runAction(
      inputs({
        binary: brokenBuild(dir, 'workdir', execNginx('/srv/app/conf/no-workdir.conf')),
        'start-timeout': '3s'
      })
    )
    await expectRolledBack(
      run,
      'usr2',
      /no new master within start-timeout 3\.0s: .*new master \d+ .* with 0 workers/
    )
  })

  it('a new binary that starts but whose /health answers 500 (health)', async () => {
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
    const run = await runAction(
      inputs({ binary: brokenBuild(dir, 'health500', execNginx('/srv/app/conf/health500.conf')) })
    )
    await expectRolledBack(
      run,
      'health',
      /did not pass 3 health checks in a row within health-timeout 3\.0s; last failure: http:\/\/127\.0\.0\.22:8080\/health answered 500/
    )
  })

  it('a new binary whose workers keep crashing (killed and respawned: the gate sees other worker pids) (health)', async () => {
    // A crash loop made real: the script forks a killer that SIGKILLs the workers of the master it
    // becomes ($$ after exec), and nginx respawns them, with new pids.
    const killer =
      '( sleep 0.3; while kill -0 $$ 2>/dev/null; do pkill -KILL -P $$ -f "nginx: worker"; sleep 0.2; done ) >/dev/null 2>&1 &'
    const run = await runAction(
      inputs({
        binary: brokenBuild(dir, 'crashloop', `${killer}\n${execNginx('/srv/app/conf/nginx.conf')}`),
        'health-checks': '5',
        'health-interval': '300ms'
      })
    )
    await expectRolledBack(run, 'health', /workers of the new master are crashing: [\d, ]+ exited/)
  })

  it('a health-expect that the body does not match (health)', async () => {
    const run = await runAction(inputs({ binary: nginxBuild(dir, 'expect'), 'health-expect': '^healthy$' }))
    await expectRolledBack(
      run,
      'health',
      /but the body does not match health-expect \/\^healthy\$\/: "ok\\n"/
    )
  })

  it('an old worker held past drain-timeout by a long download (drain): the download goes on, the old master serves again', async () => {
    // GET /big at 200 KB/s from a client started before the upgrade: its old worker cannot exit.
    let received = 0
    let ended: string | null = null
    const req = http.get({ host: h.address, port: h.httpPort, path: '/big', agent: false }, res => {
      res.on('data', (c: Buffer) => (received += c.length))
      res.on('end', () => (ended = 'end'))
      res.on('error', e => (ended = e.message))
    })
    req.on('error', e => (ended = e.message))
    try {
      while (received === 0) await new Promise(r => setTimeout(r, 20))
      const run = await runAction(inputs({ binary: nginxBuild(dir, 'drain'), 'drain-timeout': '2s' }))
      await expectRolledBack(
        run,
        'drain',
        /old workers still busy after drain-timeout 2\.0s: 1 left \(\d+\), held by long requests .*Raise drain-timeout, or set drain-timeout-action: proceed/
      )
      expect(run.log).toMatch(/\[drain\] 1 old worker left after/)
      // the download is still flowing (its worker finishes it), not cut
      const before = received
      await new Promise(r => setTimeout(r, 1500)) // limit_rate sends ~200 KB bursts about once a second
      expect(ended).toBeNull()
      expect(received).toBeGreaterThan(before)
    } finally {
      req.destroy()
    }
  })
})

describe('a drain timeout with drain-timeout-action: proceed', () => {
  it('upgrades: the old master is told to QUIT and its busy worker finishes the download on its own', async () => {
    let received = 0
    let ended: string | null = null
    const req = http.get({ host: h.address, port: h.httpPort, path: '/big', agent: false }, res => {
      res.on('data', (c: Buffer) => (received += c.length))
      res.on('end', () => (ended = 'end'))
      res.on('error', e => (ended = e.message))
    })
    req.on('error', e => (ended = e.message))
    try {
      while (received === 0) await new Promise(r => setTimeout(r, 20))
      const oldWorker = sb.nginxWorkers(h, originalPid)
      const run = await runAction(
        inputs({
          binary: nginxBuild(dir, 'proceed'),
          'drain-timeout': '1s',
          'drain-timeout-action': 'proceed'
        })
      )
      expect(run.code).toBe(0)
      expect(run.outputs.result).toBe('upgraded')
      const newPid = Number(run.outputs['new-pid'])
      expect(sb.readPid(h)).toBe(newPid)
      expect(run.log).toMatch(/drain-timeout-action is proceed: the old master is told to QUIT/)
      expect(run.log).toMatch(
        new RegExp(
          `the old master ${originalPid} is exiting \\(it accepts nothing\\) once its 1 busy workers`
        )
      )
      // new connections go to the new master's workers; the download goes on from the old worker
      const w = Number((await httpGet(h.address, h.httpPort, '/pid')).body.trim())
      expect(sb.nginxWorkers(h, newPid)).toContain(w)
      expect(oldWorker.some(p => sb.isAlive(p))).toBe(true)
      const before = received
      await new Promise(r => setTimeout(r, 1500)) // limit_rate sends ~200 KB bursts about once a second
      expect(ended).toBeNull()
      expect(received).toBeGreaterThan(before)
    } finally {
      req.destroy()
    }
  })
})

describe('a rollback that itself fails', () => {
  it('says so, with the exact host state and the commands that repair it', async () => {
    // The health command deletes the kept old binary, then fails: the rollback cannot put it back.
    const host = await connect(sb, h)
    const log = memoryLogger()
    let report: HostReport
    try {
      report = await new HostUpgrade(
        host,
        planFor(nginxBuild(dir, 'unrepairable'), {
          health: {
            url: undefined,
            command: 'rm -f /srv/app/sbin/.nginx.zerodown-prev; exit 1',
            timeoutMs: 1000
          }
        }),
        log
      ).run()
    } finally {
      await host.close()
    }
    expect(report.result).toBe('failed')
    expect(report.failedStep).toBe('health')
    expect(report.rollbackError).toMatch(
      /the kept binary \/srv\/app\/sbin\/\.nginx\.zerodown-prev is missing/
    )
    // the masters were restored all the same: the old master serves (a file with a new binary at the live path)
    const st = hostState(sb, h)
    expect(st.pid).toBe(originalPid)
    expect(st.masters).toEqual([originalPid])
    expect(st.liveSha256).not.toBe(ORIGINAL)
    const repair = report.repair!.join('\n')
    expect(repair).toMatch(
      new RegExp(`pid file: ${originalPid}; \\.oldbin: none; old master ${originalPid} alive with 2 workers`)
    )
    expect(repair).toMatch(new RegExp(`${LIVE} is NOT the old binary`))
    expect(repair).toContain(ORIGINAL)
    if (process.env.ZD_SHOW_LOG) console.log(log.text())
    expect(log.text()).toContain(report.repair![0]!)
  })
})
