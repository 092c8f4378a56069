/**
 * Never a host half-upgraded: the bundle, run like GitHub runs it, is interrupted in every way a
 * real run can be, against real sandbox hosts:
 *
 * - SIGKILL right after USR2: the watchdog on the host restores the old master and binary (and
 *   connection-per-request clients see no failure); the post step then releases the lock;
 * - the sshd process serving the action killed mid-drain: the action reconnects and finishes;
 * - two deploys to one host at once: the second fails at once naming the first, never both upgrade;
 * - SIGTERM mid-health-gate (a cancelled job): the host ends on its old version before the
 *   process exits, and the post step finds nothing to do;
 * - SIGKILL with watchdog: false: the post step alone rolls the host back;
 * - stale state of an earlier run: an expired lock (taken over) and a watchdog still armed (explained).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import { ConnectionLostError, type Host } from '../src/host/host.js'
import { HostLock } from '../src/safety/lock.js'
import { postAction, type SafetyRecord } from '../src/safety/journal.js'
import { POST_HOST_COUNT, postHostKey, savedRecords } from '../src/state.js'
import { HostUpgrade } from '../src/fleet/host-upgrade.js'
import { first, insertAfter, type Step } from '../src/engine/index.js'
import { decideWatchdog, startWatchdog } from '../src/safety/watchdog.js'
import { nginx } from '../src/supervisors/nginx/index.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import {
  bigDownload,
  hostFiles,
  loadGenerator,
  type LoadResult,
  processesOf,
  runMain,
  runPost,
  savedState,
  stateFile
} from './helpers/safety.js'
import { hostOptions, sleep, sshdLogMark, sshdLogSince, sshdSessions, until } from './helpers/ssh.js'
import { connect as connectHost, memoryLogger, planFor, writeHostFile } from './helpers/upgrade-host.js'

const RELEASE_DIR = '/var/lib/zerodown/nginx'
const LOCK = `${RELEASE_DIR}/lock`
const WATCHDOG = `${RELEASE_DIR}/watchdog`

describe('interrupted runs: what the post step decides, what the hooks do', () => {
  const rec = (over: Partial<SafetyRecord>): SafetyRecord => ({
    host: 'zd@web1:22',
    token: 't',
    phase: 'changing',
    pidFile: '/run/nginx.pid',
    lock: '/var/lib/zerodown/nginx/lock',
    oldPid: 42,
    livePath: '/srv/app/sbin/nginx',
    oldSha256: 'a'.repeat(64),
    ...over
  })
  it('finishes a host from the phase its run saved', () => {
    expect(postAction(rec({ phase: 'settled' }))).toBe('nothing')
    expect(postAction(rec({ phase: 'locked' }))).toBe('unlock')
    expect(postAction(rec({ phase: 'locked', lock: undefined }))).toBe('nothing')
    expect(postAction(rec({ phase: 'changing' }))).toBe('rollback')
    expect(postAction(rec({ phase: 'rolling-back' }))).toBe('rollback')
    expect(postAction(rec({ phase: 'parked' }))).toBe('rollback')
    expect(postAction(rec({ phase: 'committing' }))).toBe('complete')
    expect(postAction(rec({ phase: 'changing', oldPid: undefined }))).toBe('unlock')
  })
  it('reads the saved state defensively', () => {
    const from = (state: Record<string, string>) => savedRecords(name => state[name] ?? '')
    expect(from({})).toEqual([])
    const two = {
      [POST_HOST_COUNT]: '3',
      [postHostKey(0)]: JSON.stringify(rec({})),
      [postHostKey(1)]: '{"host":1}'
    }
    expect(from(two)).toEqual([rec({})])
    expect(() => from({ [POST_HOST_COUNT]: 'many' })).toThrow('the saved number of hosts is not a number')
  })
  it('slots layered steps in at their anchors, in order; the binary chosen after pre-flight is the one later steps see', async () => {
    const calls: string[] = []
    const chosen = { sha256: 'plan' }
    const step = (name: string, fn: () => void = () => undefined): Step => ({
      name,
      stage: 'prepare',
      run: async () => {
        calls.push(name)
        fn()
      }
    })
    let steps: Step[] = [step('preflight'), step('verify', () => calls.push(`verify saw ${chosen.sha256}`))]
    // The release store first (it chooses after pre-flight), then the lock around everything.
    steps = insertAfter(
      steps,
      'preflight',
      step('a.choose', () => (chosen.sha256 = 'from-a'))
    )
    steps = insertAfter(
      steps,
      'a.choose',
      step('b.choose', () => calls.push(`b saw ${chosen.sha256}`))
    )
    steps = first(steps, step('lock'))
    expect(steps.map(s => [s.name, s.report ?? s.name])).toEqual([
      ['lock', 'preflight'],
      ['preflight', 'preflight'],
      ['a.choose', 'preflight'],
      ['b.choose', 'preflight'],
      ['verify', 'verify']
    ])
    for (const s of steps) await s.run({} as never)
    expect(calls).toEqual([
      'lock',
      'preflight',
      'a.choose',
      'b.choose',
      'b saw from-a',
      'verify',
      'verify saw from-a'
    ])
  })
})

describe('interrupted runs', () => {
  let sb: Sandbox
  let dir: string
  const host = (octet: number): SandboxHost => sb.hosts.find(h => h.address === `127.0.0.${octet}`)!
  const github = (run: string, sha = 'c0ffee0123456789c0ffee0123456789c0ffee01') => ({
    GITHUB_REPOSITORY: 'octo/shop',
    GITHUB_RUN_ID: run,
    GITHUB_RUN_ATTEMPT: '1',
    GITHUB_SHA: sha,
    GITHUB_WORKFLOW: 'deploy'
  })
  const watchdogs = (h: SandboxHost) => processesOf(sb, h, /zerodown-watchdog/)
  const real = (h: SandboxHost, p: string) => sb.hostPath(h, p)

  beforeAll(() => {
    sb = sandboxUp({ first: 63, count: 5 })
    dir = scratchDir()
  })
  afterAll(() => sb?.down())

  it('SIGKILL right after USR2: the watchdog restores the old master and binary; no request fails; post releases the lock', async () => {
    const h = host(63)
    const before = hostFiles(sb, h)
    const oldPid = before.pid!
    const inputs = {
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'killed'),
      // The watchdog's lease is these three plus a margin: 2 + 3 + 2 + 10.7 s.
      'start-timeout': '2s',
      'health-timeout': '3s',
      'drain-timeout': '2s'
    }
    const state = stateFile()
    const load = loadGenerator(h.address, h.httpPort, { concurrency: 4, maxMs: 90_000 })
    let traffic: LoadResult
    try {
      const run = await runMain(inputs, state, {
        env: github('5001'),
        kill: { when: /sent USR2/, signal: 'SIGKILL' }
      })
      expect(run.signal).toBe('SIGKILL')
      expect(run.log).toMatch(
        /watchdog \d+ armed on the host: unless this run confirms, it rolls the host back by itself in 17\.7s/
      )
      // The runner is gone mid-upgrade: a new master runs beside the old one.
      expect(sb.nginxMasters(h).length).toBe(2)
      const result = await until(
        () =>
          existsSync(real(h, `${WATCHDOG}/result`)) && readFileSync(real(h, `${WATCHDOG}/result`), 'utf8'),
        45_000,
        200
      )
      expect(result).toBe('rolled-back\n')
      await sleep(500)
    } finally {
      traffic = await load.stop()
    }
    const after = hostFiles(sb, h)
    expect(after.pid).toBe(oldPid)
    expect(sb.nginxMasters(h)).toEqual([oldPid])
    expect(after.oldbin).toBe(false)
    expect(after.binary.equals(before.binary)).toBe(true)
    expect(await until(() => watchdogs(h).length === 0, 5000)).toBe(true)
    expect(traffic.ok).toBeGreaterThan(50)
    expect(traffic).toMatchObject({ failed: 0, errors: [] })
    // The killed run still holds the lock: its post step (post-if: always()) finds the host rolled back and releases it.
    expect(existsSync(real(h, `${LOCK}/owner`))).toBe(true)
    const saved = savedState(state)
    expect(savedRecords(name => saved[name] ?? '')[0]).toMatchObject({ phase: 'changing', oldPid })
    const post = await runPost(inputs, state, { env: github('5001') })
    expect(post.code).toBe(0)
    expect(post.log).toContain('the watchdog already ended: rolled-back')
    expect(post.log).toContain(`released the deploy lock ${LOCK}`)
    expect(post.log).toMatch(/ends rolled-back: the old version serves/)
    expect(existsSync(real(h, LOCK))).toBe(false)
    expect(sb.readPid(h)).toBe(oldPid)
  })

  it('the sshd process serving the action is killed mid-drain: the action reconnects and finishes the upgrade', async () => {
    const h = host(64)
    const binary = nginxBuild(dir, 'reconnect')
    const download = bigDownload(h.address, h.httpPort)
    await download.started
    let killed: number[] = []
    let ended = false
    let log = ''
    try {
      const run = await runMain({ ...sandboxInputs(sb, [h]), binary, 'drain-timeout': '60s' }, stateFile(), {
        env: github('5002'),
        timeoutMs: 90_000,
        onLog: chunk => {
          log += chunk
          if (killed.length === 0 && /\[drain\] 1 old worker left/.test(log)) {
            killed = sshdSessions(h)
            for (const pid of killed) process.kill(pid, 'SIGKILL')
          }
          // Once the action is back, the download ends and the drain can finish.
          if (!ended && killed.length > 0 && /reconnected \(attempt \d+\)/.test(log)) {
            ended = true
            setTimeout(() => download.end(), 500)
          }
        }
      })
      expect(killed.length).toBe(1)
      expect(run.log).toMatch(/reconnected \(attempt \d+\)/)
      expect(run.code).toBe(0)
      expect(run.outputs.result).toBe('upgraded')
    } finally {
      download.end()
    }
    const after = hostFiles(sb, h)
    expect(after.binary.equals(readFileSync(binary))).toBe(true)
    expect(sb.nginxMasters(h)).toEqual([after.pid])
    expect(after.oldbin).toBe(false)
    expect(existsSync(real(h, LOCK))).toBe(false)
    expect(watchdogs(h)).toEqual([])
  })

  it('a connection lost in the middle of a command: the step reconnects, reads the state back, and never signals twice', async () => {
    const h = host(64)
    const real = await connectHost(sb, h)
    const log = memoryLogger()
    const cut = () => {
      for (const pid of sshdSessions(h)) process.kill(pid, 'SIGKILL')
    }
    let usr2Cut = false
    let drainCut = false
    // The host as the machine sees it, with two real connection losses: one right after USR2 took
    // effect (its answer lost), one while a probe of the drain is in flight.
    const flaky: Host = {
      get name() {
        return real.name
      },
      get address() {
        return real.address
      },
      get sudo() {
        return real.sudo
      },
      run: async (argv, options) => {
        if (!usr2Cut && argv[0] === 'kill' && argv.includes('USR2')) {
          usr2Cut = true
          await real.run(argv, options)
          cut()
          throw new ConnectionLostError(real.name, 'the connection closed')
        }
        if (!drainCut && argv[0] === 'sh' && log.text().includes('[drain] 1 old worker left')) {
          drainCut = true
          const inFlight = real.run(['sleep', '5'])
          await sleep(200)
          cut()
          setTimeout(() => download.end(), 1000) // then the drain can end
          return inFlight // rejects: the command was in flight when the connection went
        }
        return real.run(argv, options)
      },
      upload: (l, r, p) => real.upload(l, r, p),
      readFile: (p, o) => real.readFile(p, o),
      http: (u, t) => real.http(u, t),
      close: () => real.close()
    }
    const errorLog = sb.hostPath(h, '/srv/app/logs/error.log')
    const usr2Before = (readFileSync(errorLog, 'utf8').match(/signal 12 \(SIGUSR2\) received/g) ?? []).length
    const build = nginxBuild(dir, 'flaky')
    const download = bigDownload(h.address, h.httpPort)
    await download.started
    try {
      const report = await new HostUpgrade(flaky, planFor(build), log).run()
      expect([report.result, report.error]).toEqual(['upgraded', undefined])
    } finally {
      download.end()
      await real.close()
    }
    expect(usr2Cut && drainCut).toBe(true)
    const text = log.text()
    expect(text).toMatch(
      /\[usr2\] .*the SSH connection was lost.*reconnecting and reading the host's state back \(attempt 2 of 4\)/
    )
    expect(text).toContain('USR2 had reached the old master')
    expect(text).toMatch(
      /\[drain\] .*the SSH connection was lost.*reading the host's state back \(attempt 2 of 4\)/
    )
    const usr2After = (readFileSync(errorLog, 'utf8').match(/signal 12 \(SIGUSR2\) received/g) ?? []).length
    expect(usr2After - usr2Before).toBe(1)
    const after = hostFiles(sb, h)
    expect(after.binary.equals(readFileSync(build))).toBe(true)
    expect(sb.nginxMasters(h)).toEqual([after.pid])
  })

  it('two deploys to one host at once: the second fails at once naming the first; never both upgrade', async () => {
    const h = host(65)
    const first = nginxBuild(dir, 'first')
    const second = nginxBuild(dir, 'second')
    const download = bigDownload(h.address, h.httpPort)
    await download.started
    let secondRun: ReturnType<typeof runMain> | undefined
    let log = ''
    try {
      const a = await runMain(
        { ...sandboxInputs(sb, [h]), binary: first, 'drain-timeout': '60s' },
        stateFile(),
        {
          env: github('5003', 'aaaa1111bbbb2222cccc3333dddd4444eeee5555'),
          timeoutMs: 90_000,
          onLog: chunk => {
            log += chunk
            if (!secondRun && /\[drain\] 1 old worker left/.test(log)) {
              secondRun = runMain({ ...sandboxInputs(sb, [h]), binary: second }, stateFile(), {
                env: github('6003', '9999888877776666555544443333222211110000')
              })
              // The first one goes on once the second has given up.
              void secondRun.then(() => download.end())
            }
          }
        }
      )
      expect(a.code).toBe(0)
      expect(a.outputs.result).toBe('upgraded')
    } finally {
      download.end()
    }
    const b = await secondRun!
    expect(b.code).toBe(1)
    expect(b.outputs.result).toBe('failed')
    expect(b.log).toContain(`another deploy holds the lock ${LOCK}: octo/shop run 5003.1 (workflow "deploy")`)
    expect(b.log).toContain('commit aaaa1111bbbb')
    expect(b.log).toMatch(/since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/)
    expect(b.log).toContain('Nothing was changed on this host')
    expect(b.log).not.toMatch(/\[(upload|swap|usr2)\]/)
    expect(hostFiles(sb, h).binary.equals(readFileSync(first))).toBe(true)
    expect(existsSync(real(h, LOCK))).toBe(false)
  })

  it('SIGTERM mid-health-gate (a cancelled job): the host ends on the old version before the action exits', async () => {
    const h = host(66)
    const before = hostFiles(sb, h)
    const inputs = { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'cancelled'), 'health-checks': '40' }
    const state = stateFile()
    const load = loadGenerator(h.address, h.httpPort, { concurrency: 4, maxMs: 60_000 })
    let signalledAt = 0
    let log = ''
    let run: ActionRun
    let traffic: LoadResult
    try {
      run = await runMain(inputs, state, {
        env: github('5004'),
        kill: { when: /\[health\] check 2: pass/, signal: 'SIGTERM' },
        onLog: chunk => {
          log += chunk
          if (!signalledAt && /\[health\] check 2: pass/.test(log)) signalledAt = Date.now()
        }
      })
    } finally {
      traffic = await load.stop()
    }
    // GitHub kills the process tree 10 s after its first signal: everything happened before.
    expect(Date.now() - signalledAt).toBeLessThan(10_000)
    expect(run.signal).toBeNull()
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.log).toContain('received SIGTERM: the run is being cancelled')
    expect(run.log).toContain('health failed: the run was cancelled (SIGTERM) during health')
    expect(run.log).toMatch(/disarmed the watchdog \(cancel\)/)
    expect(run.log).toContain(`released the deploy lock ${LOCK}`)
    const after = hostFiles(sb, h)
    expect(after.pid).toBe(before.pid)
    expect(sb.nginxMasters(h)).toEqual([before.pid])
    expect(after.oldbin).toBe(false)
    expect(after.binary.equals(before.binary)).toBe(true)
    expect(existsSync(real(h, LOCK))).toBe(false)
    expect(watchdogs(h)).toEqual([])
    expect(traffic).toMatchObject({ failed: 0, errors: [] })
    // The post step reads that every host was settled and connects nowhere.
    const mark = sshdLogMark(h)
    const post = await runPost(inputs, state, { env: github('5004') })
    expect(post.code).toBe(0)
    expect(post.log).toContain('zerodown post: the main step settled every host')
    expect(sshdLogSince(h, mark)).not.toContain('Connection from')
  })

  it('SIGKILL mid-upgrade with watchdog: false: the post step alone rolls the host back and releases the lock', async () => {
    const h = host(67)
    sb.nginxStart(h, { reset: true })
    const before = hostFiles(sb, h)
    const inputs = { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'no-watchdog'), watchdog: 'false' }
    const state = stateFile()
    const run = await runMain(inputs, state, {
      env: github('5005'),
      kill: { when: /sent WINCH/, signal: 'SIGKILL' }
    })
    expect(run.signal).toBe('SIGKILL')
    expect(run.log).not.toMatch(/watchdog \d+ armed/)
    await sleep(500)
    expect(sb.nginxMasters(h).length).toBe(2)
    expect(watchdogs(h)).toEqual([])
    const load = loadGenerator(h.address, h.httpPort, { concurrency: 4, maxMs: 60_000 })
    let post: ActionRun
    let traffic: LoadResult
    try {
      post = await runPost(inputs, state, { env: github('5005') })
    } finally {
      traffic = await load.stop()
    }
    expect(post.code).toBe(0)
    expect(post.log).toContain('the main step was interrupted with 1 host(s) unfinished')
    expect(post.log).toMatch(/sent HUP to the old master \d+/)
    expect(post.log).toMatch(/ends rolled-back: the old version serves/)
    const after = hostFiles(sb, h)
    expect(after.pid).toBe(before.pid)
    expect(sb.nginxMasters(h)).toEqual([before.pid])
    expect(after.oldbin).toBe(false)
    expect(after.binary.equals(before.binary)).toBe(true)
    expect(existsSync(real(h, LOCK))).toBe(false)
    expect(traffic).toMatchObject({ failed: 0, errors: [] })
  })

  it('stale state found by pre-flight: a dead .oldbin and a staging file are cleaned up; two live masters are explained', async () => {
    const h = host(63)
    sb.nginxStart(h, { reset: true })
    const inputs = (label: string) => ({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, label) })
    // Left by an interrupted run: a .oldbin naming a master that is gone, a half-written staging file.
    writeHostFile(sb, h, '/run/nginx.pid.oldbin', '4194000\n')
    writeHostFile(sb, h, '/srv/app/sbin/.nginx.zerodown-new', 'half an upload', 0o755)
    const cleaned = await runMain(inputs('after-stale'), stateFile(), { env: github('5008') })
    expect(cleaned.outputs.result).toBe('upgraded')
    expect(cleaned.log).toContain('removed a stale /run/nginx.pid.oldbin (its pid 4194000 is not running)')
    expect(cleaned.log).toMatch(/\[upload\] sent 1\.\d MB/)

    // Two live masters (a USR2 whose run vanished, with no watchdog): explained, nothing changed.
    const old = sb.readPid(h)!
    sb.exec(h, ['kill', '-USR2', String(old)])
    const fresh = await until(() => {
      const p = sb.readPid(h)
      return p !== old && p !== null && sb.nginxWorkers(h, p).length > 0 ? p : 0
    }, 10_000)
    const refused = await runMain(inputs('refused-two-masters'), stateFile(), { env: github('5009') })
    expect(refused.code).toBe(1)
    expect(refused.log).toContain(
      `an upgrade is in progress or was interrupted: the old master ${old} (/run/nginx.pid.oldbin) and the master ${fresh} are both alive`
    )
    expect(refused.log).toContain(`To go back to the old one: kill -HUP ${old}; kill -QUIT ${fresh}`)
    expect(refused.log).not.toMatch(/\[(upload|swap|usr2)\]/)
    expect(existsSync(real(h, LOCK))).toBe(false)
    // The commands given repair it.
    sb.exec(h, ['kill', '-HUP', String(old)])
    sb.exec(h, ['kill', '-QUIT', String(fresh)])
    expect(await until(() => sb.readPid(h) === old && sb.nginxMasters(h).length === 1, 10_000)).toBe(true)
  })

  it('stale state of an earlier run: an expired lock is taken over with a warning; an armed watchdog is explained', async () => {
    const h = host(67)
    sb.nginxStart(h, { reset: true })
    const ssh = await SshHost.connect(hostOptions(sb, h))
    try {
      // A run that vanished 11 s ago, with a lease of 10 s (the smallest lock-lease).
      await HostLock.acquire(ssh, {
        path: LOCK,
        token: 'vanished',
        leaseMs: 10_000,
        owner: { repository: 'octo/shop', runId: '4000', commit: 'dead00beef' },
        renewEveryMs: 3_600_000
      })
      sb.exec(h, ['touch', '-d', '11 seconds ago', `${LOCK}/owner`])
      const run = await runMain({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'heir') }, stateFile(), {
        env: github('5006')
      })
      expect(run.log).toMatch(
        /::warning.*took over the deploy lock \/var\/lib\/zerodown\/nginx\/lock: its holder \(octo\/shop run 4000, commit dead00beef\b/
      )
      expect(run.outputs.result).toBe('upgraded')
      expect(existsSync(real(h, LOCK))).toBe(false)

      // A watchdog of another run is still armed on the host: refused, explained, nothing changed.
      const pid = sb.readPid(h)!
      const wd = await startWatchdog(ssh, {
        dir: WATCHDOG,
        token: 'other-run',
        pidFile: '/run/nginx.pid',
        oldPid: pid,
        livePath: '/srv/app/sbin/nginx',
        previousPath: '/srv/app/sbin/.nginx.zerodown-prev',
        oldSha256: 'a'.repeat(64),
        leaseMs: 600_000,
        part: nginx.watchdog
      })
      const refused = await runMain(
        { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'refused') },
        stateFile(),
        {
          env: github('5007')
        }
      )
      expect(refused.code).toBe(1)
      expect(refused.log).toContain(
        `a watchdog of another run (other-run) is still armed (pid ${wd.pid}, state in ${WATCHDOG})`
      )
      expect(refused.log).toContain(`stop it: kill ${wd.pid}`)
      expect(refused.log).not.toMatch(/\[(upload|swap|usr2)\]/)
      expect(sb.readPid(h)).toBe(pid)
      expect(existsSync(real(h, LOCK))).toBe(false) // released on this exit path too
      expect((await decideWatchdog(ssh, WATCHDOG, 'other-run', 'cancel')).decided).toBe(true)
    } finally {
      await ssh.close()
    }
  })
})
