/**
 * The hot upgrade against a real sandbox host (sshd + nginx on 127.0.0.21): pre-flight refusals
 * that leave the host untouched, and successful upgrades, through the bundle (runAction, as
 * GitHub runs it) and through HostUpgrade with a real SshHost for finer assertions.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import * as http from 'node:http'
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HostUpgrade } from '../src/fleet/host-upgrade.js'
import type { HostReport } from '../src/engine/types.js'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import {
  connect,
  exeIdentity,
  health,
  hostState,
  memoryLogger,
  planFor,
  sha256,
  spawnAsDeployUser,
  writeHostFile,
  type HostState
} from './helpers/upgrade-host.js'

const STEPS = ['preflight', 'upload', 'verify', 'swap', 'usr2', 'winch', 'health', 'drain', 'quit']
const NGINX_VERSION = /nginx\/(\S+)/.exec(
  execFileSync('sh', ['-c', '/usr/sbin/nginx -v 2>&1'], { encoding: 'utf8' })
)![1]!

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 21, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-upgrade-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Runs HostUpgrade with a real SshHost; returns its report and log. */
async function upgradeDirect(plan: ReturnType<typeof planFor>) {
  const host = await connect(sb, h)
  const log = memoryLogger()
  try {
    const report = await new HostUpgrade(host, plan, log).run()
    return { report, log: log.text() }
  } finally {
    await host.close()
  }
}

/** The host is exactly as before: same master serving, same live binary, nothing left behind. */
async function expectUntouched(before: HostState) {
  const after = hostState(sb, h)
  expect(after).toEqual({ ...before, leftovers: before.leftovers })
  expect(after.pidAlive).toBe(true)
  expect(await health(h)).toBe('200 ok')
}

describe('pre-flight refuses, and nothing on the host changes', () => {
  beforeEach(() => {
    sb.nginxStart(h, { reset: true })
  })

  /** Restarts the host's nginx as the deploy user with a command line of the test's choosing. */
  function restartNginxWith(shellLine: string, conf?: string, workers = true): number {
    sb.nginxStop(h)
    if (conf !== undefined) writeHostFile(sb, h, '/srv/app/conf/test.conf', conf)
    spawnAsDeployUser(sb, h, shellLine)
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const pid = sb.readPid(h)
      if (pid !== null && sb.isAlive(pid) && (!workers || sb.nginxWorkers(h, pid).length > 0)) return pid
      execFileSync('sleep', ['0.05'])
    }
    throw new Error(
      `nginx did not start: ${readFileSync(sb.hostPath(h, '/srv/app/logs/test-start.log'), 'utf8')}`
    )
  }
  const noDaemonLine = (conf: string) =>
    conf.replace(/^daemon on;\n/m, '').replace(/^master_process on;\n/m, '')

  it('refuses a master run with -g "daemon off;" (WINCH would be ignored), and explains', async () => {
    const conf = noDaemonLine(readFileSync(sb.hostPath(h, h.confPath), 'utf8'))
    const pid = restartNginxWith(
      `exec /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/test.conf -e /srv/app/logs/error.log -g 'daemon off;'`,
      conf
    )
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'daemon-off')))
    expect(report.result).toBe('failed')
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toMatch(
      new RegExp(`the master ${pid} does not run daemonized \\(its command line sets daemon off\\)`)
    )
    expect(report.error).toMatch(/nginx ignores WINCH/)
    expect(report.error).toMatch(/Type=forking/)
    expect(report.steps.map(s => s.name)).toEqual(['preflight'])
    await expectUntouched(before)
  })

  it('refuses daemon off set in the config file at verify, before the swap, and removes the staged file', async () => {
    const conf = noDaemonLine(readFileSync(sb.hostPath(h, h.confPath), 'utf8')).replace(
      /^pid /m,
      'daemon off;\nmaster_process on;\npid '
    )
    restartNginxWith(
      'exec /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/test.conf -e /srv/app/logs/error.log',
      conf
    )
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'daemon-off-conf')))
    expect(report.result).toBe('failed')
    expect(report.failedStep).toBe('verify')
    expect(report.error).toMatch(/does not run daemonized \(the config sets daemon off\)/)
    expect(report.steps.map(s => s.name)).toEqual(['preflight', 'upload', 'verify', 'rollback'])
    await expectUntouched(before)
  })

  it('refuses master_process off', async () => {
    const conf = noDaemonLine(readFileSync(sb.hostPath(h, h.confPath), 'utf8'))
    restartNginxWith(
      `exec /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/test.conf -e /srv/app/logs/error.log -g 'master_process off;'`,
      conf,
      false
    )
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'master-off')))
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toMatch(/master_process off a binary upgrade is impossible/)
    await expectUntouched(before)
  }, 60_000)

  it('refuses a master started with a relative argv[0] (cd /srv/app && sbin/nginx ...)', async () => {
    const pid = restartNginxWith('exec sbin/nginx -p /srv/app -c conf/nginx.conf -e logs/error.log')
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'relative')))
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toBe(
      `the master ${pid} was started as "sbin/nginx", a relative path; nginx re-executes argv[0] on USR2, which then fails. ` +
        'Start it with its absolute path (/srv/app/sbin/nginx) once, then deploy'
    )
    await expectUntouched(before)
  })

  it('refuses while an .oldbin master is alive (an interrupted upgrade), with the commands that finish or undo it', async () => {
    const oldPid = h.nginxPid
    sb.exec(h, ['kill', '-USR2', String(oldPid)])
    let newPid: number | null = null
    for (let i = 0; i < 100 && !(newPid && newPid !== oldPid && sb.nginxWorkers(h, newPid).length > 0); i++) {
      execFileSync('sleep', ['0.05'])
      newPid = sb.readPid(h)
    }
    expect(newPid).not.toBe(oldPid)
    const before = hostState(sb, h)
    expect(before.oldbin).toBe(true)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'oldbin-alive')))
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toContain(
      `the old master ${oldPid} (/run/nginx.pid.oldbin) and the master ${newPid} are both alive`
    )
    expect(report.error).toContain(`To keep the new one: kill -QUIT ${oldPid}`)
    expect(report.error).toContain(`To go back to the old one: kill -HUP ${oldPid}; kill -QUIT ${newPid}`)
    expect(hostState(sb, h)).toEqual(before)
    expect(sb.isAlive(oldPid)).toBe(true)
  })

  it('refuses while an .oldbin master is alive whose new master never wrote the pid file, naming that child', async () => {
    const oldPid = h.nginxPid
    // a "new binary" that sleeps instead of starting: swapped in by hand, then USR2 by hand
    writeHostFile(sb, h, '/srv/app/sbin/nginx', '#!/bin/sh\nexec sleep 600\n', 0o755)
    sb.exec(h, ['kill', '-USR2', String(oldPid)])
    for (let i = 0; i < 100 && !hostState(sb, h).oldbin; i++) execFileSync('sleep', ['0.05'])
    const before = hostState(sb, h)
    expect(before.oldbin).toBe(true)
    expect(before.pid).toBeNull()
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'oldbin-no-pid')))
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toMatch(
      new RegExp(
        `^an upgrade is in progress or was interrupted: the old master ${oldPid} \\(/run/nginx\\.pid\\.oldbin\\) is alive and pid-file /run/nginx\\.pid names no running master \\(its child (\\d+) never wrote it\\)\\. To go back to the old one: kill -HUP ${oldPid}; kill -TERM \\1 `
      )
    )
    expect(hostState(sb, h)).toEqual(before)
  })

  it('removes a .oldbin whose pid now belongs to another program (pid reuse) instead of advising to kill it', async () => {
    writeHostFile(sb, h, '/run/nginx.pid.oldbin', `${h.sshdPid}\n`)
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(
      planFor(nginxBuild(dir, 'binary-path'), { binaryPath: '/nope/nginx' })
    )
    // the stale file is repaired first, then the (deliberately) wrong binary-path stops the run
    expect(report.steps[0]!.observations[0]).toMatch(
      new RegExp(
        `^removed a stale /run/nginx\\.pid\\.oldbin \\(its pid ${h.sshdPid} is now ".*sshd.*", not an nginx master\\)`
      )
    )
    expect(report.failedStep).toBe('preflight')
    expect(sb.isAlive(h.sshdPid)).toBe(true)
    await expectUntouched({ ...before, oldbin: false })
  })

  it('refuses a binary-path that is not the file the master runs', async () => {
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(
      planFor(nginxBuild(dir, 'binary-path'), { binaryPath: '/usr/sbin/nginx' })
    )
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toMatch(
      /binary-path is \/usr\/sbin\/nginx, but the master \d+ runs \/srv\/app\/sbin\/nginx\. .*set it to \/srv\/app\/sbin\/nginx/
    )
    await expectUntouched(before)
  })

  it('refuses a pid file that names no running process', async () => {
    sb.nginxStop(h)
    writeHostFile(sb, h, '/run/nginx.pid', '4000000\n')
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'dead-pid')))
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toBe(
      'pid-file /run/nginx.pid names pid 4000000, which is not running. Start the server first'
    )
    expect(sb.nginxMasters(h)).toEqual([])
  })

  it('refuses when the binary folder lacks the disk space for the upload', async () => {
    const before = hostState(sb, h)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'disk'), { source: { bytes: 1e15 } }))
    expect(report.failedStep).toBe('preflight')
    expect(report.error).toMatch(
      /^\/srv\/app\/sbin has \d+ KiB free; the upload needs \d+ KiB\. Free some disk space$/
    )
    await expectUntouched(before)
  })

  it('through the action: refuses a binary built for another architecture (ELF header read on the runner)', async () => {
    const foreign = join(dir, 'nginx-aarch64')
    copyFileSync('/usr/sbin/nginx', foreign)
    const bytes = readFileSync(foreign)
    bytes.writeUInt16LE(0xb7, 18) // e_machine: AArch64
    writeFileSync(foreign, bytes)
    const before = hostState(sb, h)
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: foreign })
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toMatch(
      /the new binary is built for aarch64, but the host is x86_64\. Build it for x86_64/
    )
    await expectUntouched(before)
  })

  it("through the action: a new binary that fails the config test with the master's -p/-c/-g is refused at verify", async () => {
    const bad = join(dir, 'fails-config-test')
    writeFileSync(
      bad,
      '#!/bin/sh\necho "nginx: [emerg] unknown directive \\"zerodown\\" in $5:1" >&2\nexit 1\n',
      {
        mode: 0o755
      }
    )
    const before = hostState(sb, h)
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: bad })
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toContain(
      'the new binary fails its config test (/srv/app/sbin/.nginx.zerodown-new -T -p /srv/app -c /srv/app/conf/nginx.conf -e /srv/app/logs/error.log): nginx: [emerg] unknown directive "zerodown" in /srv/app/conf/nginx.conf:1'
    )
    await expectUntouched(before)
  })
})

describe('pre-flight repairs a stale .oldbin file', () => {
  it('removes a .oldbin whose pid is not running, says so, and upgrades', async () => {
    sb.nginxStart(h, { reset: true })
    writeHostFile(sb, h, '/run/nginx.pid.oldbin', '4000001\n')
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'stale-oldbin')))
    expect(report.result).toBe('upgraded')
    expect(report.steps[0]!.observations[0]).toBe(
      'removed a stale /run/nginx.pid.oldbin (its pid 4000001 is not running), left by an interrupted run'
    )
    expect(hostState(sb, h).oldbin).toBe(false)
  })

  it('removes a .oldbin that names the running master itself (a copied pid file), instead of advising to QUIT it', async () => {
    const pid = sb.nginxStart(h, { reset: true })
    writeHostFile(sb, h, '/run/nginx.pid.oldbin', `${pid}\n`)
    const { report } = await upgradeDirect(planFor(nginxBuild(dir, 'oldbin-self')))
    expect(report.result).toBe('upgraded')
    expect(report.steps[0]!.observations[0]).toMatch(/removed a stale \/run\/nginx\.pid\.oldbin/)
  })
})

describe('a successful hot upgrade', () => {
  function checkReport(r: HostReport) {
    expect(r.steps.map(s => s.name)).toEqual(STEPS)
    for (const s of r.steps) {
      expect(s.outcome).toBe('ok')
      expect(Date.parse(s.startedAt)).toBeLessThanOrEqual(Date.parse(s.endedAt))
      expect(s.observations.length).toBeGreaterThan(0)
    }
  }

  it('through the action: the new master runs the new file, the old master is gone, the outputs are right', async () => {
    const oldPid = sb.nginxStart(h, { reset: true })
    const build = nginxBuild(dir, 'action')
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: build })
    expect(run.log).not.toMatch(/::error/)
    expect(run.code).toBe(0)
    const newPid = sb.readPid(h)!
    expect(newPid).not.toBe(oldPid)
    expect(sb.isAlive(oldPid)).toBe(false)
    expect(sb.nginxMasters(h)).toEqual([newPid])
    const exe = exeIdentity(sb, h, newPid)
    expect(exe.proc).toBe(exe.live)
    expect(sha256(sb.hostPath(h, '/srv/app/sbin/nginx'))).toBe(sha256(build))
    const st = hostState(sb, h)
    expect(st.oldbin).toBe(false)
    // Nothing of ours beside the live binary: the replaced build is kept in the release store only.
    expect(st.leftovers).toEqual([])
    const old = sha256('/usr/sbin/nginx')
    expect(sha256(sb.hostPath(h, `/var/lib/zerodown/nginx/releases/${old}/nginx`))).toBe(old)
    // a new worker answers
    const w = Number((await httpGet(h.address, h.httpPort, '/pid')).body.trim())
    expect(sb.nginxWorkers(h, newPid)).toContain(w)

    expect(run.outputs.result).toBe('upgraded')
    expect(run.outputs['old-pid']).toBe(String(oldPid))
    expect(run.outputs['new-pid']).toBe(String(newPid))
    expect(run.outputs.version).toBe(NGINX_VERSION)
    expect(run.outputs['previous-version']).toBe(NGINX_VERSION)
    expect(Number(run.outputs.duration)).toBeGreaterThan(0)
    const report = JSON.parse(run.outputs.report!) as { result: string; hosts: HostReport[] }
    expect(report.result).toBe('upgraded')
    expect(report.hosts).toHaveLength(1)
    const hr = report.hosts[0]!
    expect(hr).toMatchObject({ result: 'upgraded', oldPid, newPid, sha256: sha256(build) })
    expect(hr.steps[0]!.name).toBe('connect')
    checkReport({ ...hr, steps: hr.steps.slice(1) })
    expect(run.summary).toContain('upgraded')
  })

  it('HostUpgrade with SshHost: 3 health passes, a drain to 0, QUIT, and a complete report', async () => {
    const oldPid = sb.readPid(h)!
    const oldWorkers = sb.nginxWorkers(h, oldPid)
    expect(oldWorkers.length).toBe(2)
    const build = nginxBuild(dir, 'direct')
    const { report, log } = await upgradeDirect(planFor(build))
    expect(report.result).toBe('upgraded')
    checkReport(report)
    expect(report.oldPid).toBe(oldPid)
    expect(report.newPid).toBe(sb.readPid(h))
    expect(report.health.filter(c => c.ok)).toHaveLength(3)
    expect(report.health.every(c => c.ok)).toBe(true)
    expect(report.drain.at(-1)!.oldWorkers).toBe(0)
    expect(log).toMatch(/\[drain\] 0 old workers left after/)
    expect(log).toMatch(/\[health\] check 3: pass 3\/3 \(http:\/\/127\.0\.0\.21:8080\/health 200\)/)
    for (const w of oldWorkers) expect(sb.isAlive(w)).toBe(false)
    expect(sb.isAlive(oldPid)).toBe(false)
    const exe = exeIdentity(sb, h, report.newPid!)
    expect(exe.proc).toBe(exe.live)
  })

  it('health-command with health-expect on its output; a failure resets the count of consecutive passes', async () => {
    const oldPid = sb.readPid(h)!
    // passes, fails once, then passes: the failure resets the count, so 3 more passes are needed
    const command =
      'f=/tmp/zd-health-count; n=$(cat $f 2>/dev/null || echo 0); echo $((n + 1)) > $f; [ "$n" != 1 ] || exit 1; cat /srv/app/html/index.html'
    sb.exec(h, ['rm', '-f', '/tmp/zd-health-count'])
    const { report, log } = await upgradeDirect(
      planFor(nginxBuild(dir, 'health-command'), {
        health: { url: undefined, command, expect: /zerodown sandbox host 127\.0\.0\.21/ }
      })
    )
    expect(report.result).toBe('upgraded')
    expect(report.health.map(c => c.ok)).toEqual([true, false, true, true, true])
    expect(report.health[1]!.detail).toBe('health-command exited 1')
    expect(log).toMatch(/\[health\] check 1: pass 1\/3 \(health-command exit 0\)/)
    expect(log).toMatch(/\[health\] check 2: FAIL \(health-command exited 1\)/)
    expect(log).toMatch(/\[health\] check 5: pass 3\/3 \(health-command exit 0\)/)
    expect(sb.isAlive(oldPid)).toBe(false)
  })

  it('the drain waits for a busy old worker and logs the count as it falls', async () => {
    const oldPid = sb.readPid(h)!
    // a download held by an old worker, ended by the client 1.5 s into the drain
    let received = 0
    const req = http.get({ host: h.address, port: h.httpPort, path: '/big', agent: false }, res =>
      res.on('data', (c: Buffer) => (received += c.length)).on('error', () => undefined)
    )
    req.on('error', () => undefined)
    while (received === 0) await new Promise(r => setTimeout(r, 20))
    const host = await connect(sb, h)
    const log = memoryLogger()
    const info = log.info
    log.info = m => {
      info(m)
      if (/\[drain\] 1 old worker left/.test(m)) setTimeout(() => req.destroy(), 1500)
    }
    let report: HostReport
    try {
      report = await new HostUpgrade(
        host,
        planFor(nginxBuild(dir, 'drain-falls'), { drainTimeoutMs: 20_000 }),
        log
      ).run()
    } finally {
      req.destroy()
      await host.close()
    }
    expect(report.result).toBe('upgraded')
    expect(report.drain.map(d => d.oldWorkers)).toEqual([1, 0])
    expect(report.drain[1]!.atMs).toBeGreaterThanOrEqual(1400)
    expect(log.text()).toMatch(
      /\[drain\] 1 old worker left after 0\.\ds[\s\S]*\[drain\] 0 old workers left after [1-9]\.\ds/
    )
    expect(sb.isAlive(oldPid)).toBe(false)
  })

  it('is unchanged (no signal sent) when the live binary already is the new build', async () => {
    const pid = sb.readPid(h)!
    const live = join(dir, 'same-as-live')
    copyFileSync(sb.hostPath(h, '/srv/app/sbin/nginx'), live)
    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: live })
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('unchanged')
    expect(sb.readPid(h)).toBe(pid)
  })
})
