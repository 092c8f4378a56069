/**
 * Issue #14 item 7: least-privilege sudo. On a sandbox host (127.0.3.3) whose nginx runs as root
 * from root-owned folders, the deploy user `zdhelper` has exactly the published sudoers lines
 * (host/sudoers: the helper, nothing else) and the helper of this checkout with a config naming
 * the sandbox's nginx. A whole upgrade, an automatic rollback and a mode: rollback run through it
 * under load with no failed request; the helper refuses what its config does not name.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import { startWatchdog } from '../src/safety/watchdog.js'
import { throughHelper } from '../src/sudo-helper/check.js'
import { nginx } from '../src/supervisors/nginx/index.js'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { HELPER_PATH } from '../src/sudo-helper/policy.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { actionUnderLoad } from './helpers/load.js'
import { hostOptions, sha256Of, sshdSessions, until } from './helpers/ssh.js'
import { runMain, runPost, stateFile } from './helpers/safety.js'

let sb: Sandbox
let h: SandboxHost
let dir: string
const LIVE = '/srv/app/sbin/nginx'
const STORE = '/var/lib/zerodown/nginx'

/** Runs a shell line on the host as the helper's deploy user (a login through su, no password). */
function asDeployUser(line: string): { status: number; out: string } {
  const r = sb.exec(h, ['su', '-s', '/bin/sh', sb.helperUser, '-c', line])
  return { status: r.status, out: r.stdout + r.stderr }
}

const helper = (args: string) => asDeployUser(`sudo -n ${HELPER_PATH} ${args}`)

beforeAll(() => {
  sb = sandboxUp({ first: 3, count: 1, net: '127.0.3' })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-sudo-helper-')
  // A host as distributions set it up: root's nginx in root's folders, the deploy user owns nothing.
  sb.nginxStop(h)
  for (const argv of [
    ['chown', '-R', 'root:root', '/srv/app', '/var/lib/zerodown'],
    ['chown', 'root:root', '/run'],
    [
      '/srv/app/sbin/nginx',
      '-p',
      '/srv/app',
      '-c',
      '/srv/app/conf/nginx.conf',
      '-e',
      '/srv/app/logs/error.log'
    ]
  ]) {
    const r = sb.exec(h, argv)
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  }
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))
const masterUid = () => statSync(`/proc/${sb.readPid(h)}`).uid
const liveSha = () => sha256Of(sb.hostPath(h, LIVE))

function inputs(extra: Record<string, string>): Record<string, string> {
  return {
    ...sandboxInputs(sb, [h]),
    hosts: `${sb.helperUser}@${h.address}:${h.sshPort}`,
    sudo: 'true',
    'sudo-helper': HELPER_PATH,
    ...extra
  }
}

/** The action under connection-per-request load on /pid; an automatic rollback is expected to exit 1. */
const underLoad = (label: string, extra: Record<string, string>) =>
  actionUnderLoad(h, label, inputs(extra), { expectCode: label.includes('automatic') ? 1 : 0 })

describe('the published sudoers lines allow the helper and nothing else', () => {
  it('sudo refuses any other command to the deploy user', () => {
    const r = asDeployUser('sudo -n sh -c id')
    expect(r.status).not.toBe(0)
    expect(r.out).toMatch(/password is required|not allowed/)
  })

  it('the helper refuses paths, pids and arguments its config does not name', () => {
    const outside = helper('rm /srv/app/conf/nginx.conf')
    expect(outside.status).toBe(97)
    expect(outside.out).toMatch(
      /refused: \/srv\/app\/conf\/nginx\.conf is not a staging, kept, \.oldbin or store file/
    )
    expect(sb.exec(h, ['test', '-f', '/srv/app/conf/nginx.conf']).status).toBe(0)

    const sshd = helper(`kill TERM ${h.sshdPid}`)
    expect(sshd.status).toBe(97)
    expect(sshd.out).toMatch(
      `refused: pid ${h.sshdPid} does not run a binary named in /etc/zerodown/sudo.conf`
    )
    expect(helper('kill STOP 1').out).toMatch(/signal 'STOP' is not one of/)

    const dotdot = helper('mkdir /var/lib/zerodown/nginx/../../../etc/evil')
    expect(dotdot.status).toBe(97)
    expect(sb.exec(h, ['test', '-e', '/etc/evil']).status).not.toBe(0)

    // An "upload" that is a symlink to root's file is not copied in.
    const up = '/tmp/zerodown-upload-0123456789abcdef'
    asDeployUser(`ln -sf /etc/shadow ${up}`)
    const copy = helper(`cp ${up} /srv/app/sbin/.nginx.zerodown-new`)
    expect(copy.status).toBe(97)
    expect(copy.out).toMatch(/is not a regular file of the user who ran sudo/)
    expect(sb.exec(h, ['test', '-e', '/srv/app/sbin/.nginx.zerodown-new']).status).not.toBe(0)

    // The config test runs with the master's own arguments only (-c /etc/shadow would print a line of it).
    const test = helper('config-test /srv/app/sbin/.nginx.zerodown-new -c /etc/shadow')
    expect(test.status).toBe(97)
    expect(test.out).toMatch(/'-c' is not an argument of a running master|'\/etc\/shadow' is not an argument/)

    expect(helper('sh -c id').out).toMatch(/'sh' is not a sub-command of zerodown-sudo/)
    // What the config names is accepted (no stale .oldbin here: rm -f succeeds).
    expect(helper('rm /run/nginx.pid.oldbin').status).toBe(0)

    // A folder of the store that the deploy user may write: a link planted there is never followed.
    expect(
      sb.exec(h, ['sh', '-c', `mkdir -p ${STORE}/planted && chown ${sb.helperUser} ${STORE}/planted`]).status
    ).toBe(0)
    asDeployUser(`ln -sf /etc/shadow ${STORE}/planted/state.json`)
    const planted = helper(`read-file ${STORE}/planted/state.json`)
    expect(planted.status).toBe(97)
    expect(planted.out).toContain(`${STORE}/planted must be owned by root and writable by root alone`)
    expect(planted.out).not.toMatch(/^root:/m)
    expect(sb.exec(h, ['rm', '-rf', `${STORE}/planted`]).status).toBe(0)
  })

  it('refuses a deploy user without the sudoers lines, naming them', async () => {
    const run = await runAction(
      inputs({ binary: nginxBuild(dir, 'no-rule'), hosts: `${sb.noSudoUser}@${h.address}:${h.sshPort}` })
    )
    expect(run.code).toBe(1)
    expect(run.log).toMatch(/the sudo helper does not run \(sudo -n \S+ config: sudo asked for a password/)
    expect(run.log).toMatch(/needs the sudoers line of docs\/sudo\.md/)
  })

  it('refuses a run whose pid file the config does not name, before anything changes', async () => {
    const before = liveSha()
    const run = await runAction(
      inputs({ binary: nginxBuild(dir, 'other-pid'), 'pid-file': '/srv/app/logs/nginx.pid' })
    )
    expect(run.code).toBe(1)
    expect(run.log).toMatch(
      /the sudo helper's config \/etc\/zerodown\/sudo\.conf names no pid file \/srv\/app\/logs\/nginx\.pid/
    )
    expect(liveSha()).toBe(before)
    const store = await runAction(
      inputs({ binary: nginxBuild(dir, 'other-store'), 'release-dir': '/srv/app/store' })
    )
    expect(store.code).toBe(1)
    expect(store.log).toMatch(
      /the sudo helper's config \/etc\/zerodown\/sudo\.conf names no release store \/srv\/app\/store/
    )
    expect(sb.exec(h, ['test', '-e', '/srv/app/store']).status).not.toBe(0)
  })
})

describe('a whole upgrade through the helper, under load', () => {
  let original = ''
  let originalPid = 0

  it('upgrades root-owned nginx with no failed request; the store is root-owned', async () => {
    original = liveSha()
    originalPid = sb.readPid(h)!
    expect(masterUid()).toBe(0)
    const build = nginxBuild(dir, 'helper-a')
    const { run, load } = await underLoad('upgrade through the sudo helper', {
      binary: build,
      version: '2.0.0'
    })
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(load.failed).toBe(0)
    expect(load.failures).toEqual({})
    expect(liveSha()).toBe(sha256Of(build))
    expect(sb.readPid(h)).not.toBe(originalPid)
    expect(masterUid()).toBe(0)
    const state = sb.hostPath(h, `${STORE}/state.json`)
    expect(statSync(state).uid).toBe(0)
    expect((JSON.parse(readFileSync(state, 'utf8')) as { live: string }).live).toBe(sha256Of(build))
    // The lock was taken and released, the watchdog armed and confirmed, through the helper.
    expect(run.log).toMatch(/took the deploy lock \/var\/lib\/zerodown\/nginx\/lock/)
    expect(readFileSync(sb.hostPath(h, `${STORE}/watchdog/result`), 'utf8').trim()).toBe('confirm')
  })

  it('rolls a build that fails its health gate back automatically, with no failed request', async () => {
    const pid = sb.readPid(h)!
    const live = liveSha()
    // Healthy means "answered by one of the serving workers": after WINCH only new workers answer.
    const workers = sb.nginxWorkers(h, pid)
    const { run, load } = await underLoad('automatic rollback through the sudo helper', {
      binary: nginxBuild(dir, 'helper-unhealthy'),
      version: '3.0.0',
      'health-url': 'http://{host}:8080/pid',
      'health-expect': `^(${workers.join('|')})\\s*$`,
      'health-timeout': '2s'
    })
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(load.failed).toBe(0)
    expect(load.failures).toEqual({})
    expect(sb.readPid(h)).toBe(pid)
    expect(liveSha()).toBe(live)
    expect(sb.exec(h, ['test', '-e', '/run/nginx.pid.oldbin']).status).not.toBe(0)
  })

  it('mode: rollback hands over to the previous release from the store, with no failed request', async () => {
    const { run, load } = await underLoad('mode: rollback through the sudo helper', { mode: 'rollback' })
    expect(run.code).toBe(0)
    expect(load.failed).toBe(0)
    expect(liveSha()).toBe(original)
    expect(run.outputs['previous-version']).toBe('2.0.0')
    expect(masterUid()).toBe(0)
  })

  it('prunes the store to keep-releases through the helper', async () => {
    const build = nginxBuild(dir, 'helper-c')
    const { run, load } = await underLoad('upgrade and prune through the sudo helper', {
      binary: build,
      version: '4.0.0',
      'keep-releases': '2'
    })
    expect(run.code).toBe(0)
    expect(load.failed).toBe(0)
    const state = JSON.parse(readFileSync(sb.hostPath(h, `${STORE}/state.json`), 'utf8')) as {
      releases: { sha256: string }[]
    }
    expect(state.releases.map(r => r.sha256)).toEqual([original, sha256Of(build)])
    expect(
      sb
        .exec(h, ['ls', `${STORE}/releases`])
        .stdout.trim()
        .split('\n')
        .sort()
    ).toEqual([original, sha256Of(build)].sort())
  })
})

describe('the watchdog, started through the helper, rolls back alone when the runner vanishes', () => {
  it('brings the old master and binary back at its deadline, with no failed request', async () => {
    const oldPid = sb.readPid(h)!
    const oldSha = liveSha()
    // Half an upgrade, done as root by hand: a new binary in place and a new master started.
    const half = [
      'cp -- /srv/app/sbin/nginx /srv/app/sbin/.nginx.zerodown-new',
      'printf "\\nwatchdog build\\n" >> /srv/app/sbin/.nginx.zerodown-new',
      'ln -f -- /srv/app/sbin/nginx /srv/app/sbin/.nginx.zerodown-prev',
      'mv -f -- /srv/app/sbin/.nginx.zerodown-new /srv/app/sbin/nginx',
      `kill -s USR2 ${oldPid}`
    ]
    expect(sb.exec(h, ['sh', '-c', half.join(' && ')]).status).toBe(0)
    const newPid = await until(() => {
      const p = sb.readPid(h)
      return p !== oldPid && p !== null && sb.nginxWorkers(h, p).length > 0 ? p : 0
    }, 10_000)
    const load = startLoad({
      host: h.address,
      port: h.httpPort,
      path: '/pid',
      concurrency: 4,
      maxRequests: 200_000,
      maxMs: 60_000
    })
    const host = await SshHost.connect(
      hostOptions(sb, h, { user: sb.helperUser, sudo: true, privileged: throughHelper(HELPER_PATH) })
    )
    let result: string | false
    try {
      await startWatchdog(host, {
        dir: `${STORE}/watchdog`,
        token: 'helper-run-1',
        pidFile: '/run/nginx.pid',
        oldPid,
        livePath: LIVE,
        previousPath: '/srv/app/sbin/.nginx.zerodown-prev',
        oldSha256: oldSha,
        leaseMs: 2000,
        part: nginx.watchdog
      })
      await host.close()
      for (const pid of sshdSessions(h)) process.kill(pid, 'SIGKILL')
      const resultFile = sb.hostPath(h, `${STORE}/watchdog/result`)
      result = await until(() => existsSync(resultFile) && readFileSync(resultFile, 'utf8'), 20_000)
      await sleep(300)
    } finally {
      await host.close()
    }
    const traffic = await load.stop()
    console.log(describeLoad('watchdog rollback started through the sudo helper', traffic))
    expect(result).toBe('rolled-back\n')
    expect(sb.readPid(h)).toBe(oldPid)
    expect(sb.isAlive(newPid)).toBe(false)
    expect(liveSha()).toBe(oldSha)
    expect(traffic.failed).toBe(0)
  })
})

describe('a run killed mid-upgrade: its post step rolls back through the helper', () => {
  it('with watchdog: false, the post step alone brings the old master and binary back', async () => {
    const oldPid = sb.readPid(h)!
    const oldSha = liveSha()
    const run = inputs({ binary: nginxBuild(dir, 'helper-killed'), version: '5.0.0', watchdog: 'false' })
    const state = stateFile()
    const main = await runMain(run, state, { kill: { when: /sent WINCH/, signal: 'SIGKILL' } })
    if (main.signal !== 'SIGKILL') console.log(main.log)
    expect(main.signal).toBe('SIGKILL')
    await sleep(500)
    expect(sb.nginxMasters(h).length).toBe(2)
    const load = startLoad({
      host: h.address,
      port: h.httpPort,
      path: '/pid',
      concurrency: 4,
      maxRequests: 200_000,
      maxMs: 60_000
    })
    let post: ActionRun
    try {
      post = await runPost(run, state)
    } finally {
      await sleep(300)
    }
    const traffic = await load.stop()
    console.log(describeLoad('post step rollback through the sudo helper', traffic))
    if (post.code !== 0) console.log(post.log)
    expect(post.code).toBe(0)
    expect(post.log).toMatch(/sent HUP to the old master \d+/)
    expect(post.log).toMatch(/ends rolled-back: the old version serves/)
    expect(sb.readPid(h)).toBe(oldPid)
    expect(sb.nginxMasters(h)).toEqual([oldPid])
    expect(liveSha()).toBe(oldSha)
    expect(sb.exec(h, ['test', '-e', `${STORE}/lock`]).status).not.toBe(0)
    expect(traffic.failed).toBe(0)
  })
})
