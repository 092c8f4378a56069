/**
 * The watchdog knows the old server by its pid and its start time, against a real sandbox host on
 * 127.0.2.5: armed for a process that then exits, and whose pid the kernel gives to an unrelated
 * process of the same user before the deadline, it signals nothing. Before, it took the newcomer
 * for the old nginx master and sent it HUP (which ends a `sleep`).
 *
 * The pid is really used again: the test writes /proc/sys/kernel/ns_last_pid (root) and starts
 * a process right after, until one gets it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import { inspectWatchdog, startWatchdog, waitForWatchdog } from '../src/safety/watchdog.js'
import { nginx } from '../src/supervisors/nginx/index.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { hostOptions } from './helpers/ssh.js'

const DIR = '/var/lib/zerodown/nginx/watchdog'
const LIVE = '/srv/app/sbin/nginx'

const idOf = (flag: string, user: string) =>
  Number(spawnSync('id', [flag, user], { encoding: 'utf8' }).stdout.trim())

/** State letter of a process (field 3 of /proc/PID/stat), or null when it is gone. */
function stateOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!
  } catch {
    return null
  }
}

/** Field 22 of /proc/PID/stat: when the process started (clock ticks after boot). */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!
  } catch {
    return null
  }
}

/**
 * A `sleep` of the deploy user that gets exactly `pid` (free now): the kernel hands out
 * ns_last_pid + 1 next, and sh forks right after it wrote it. Another process of the machine may
 * fork in between: then again.
 */
function spawnWithPid(pid: number, user: string): number {
  const script =
    'echo "$1" > /proc/sys/kernel/ns_last_pid || exit 1; setpriv --reuid="$2" --regid="$2" --init-groups sleep 600 </dev/null >/dev/null 2>&1 & echo $!'
  for (let i = 0; i < 200; i++) {
    const r = spawnSync('sh', ['-c', script, 'sh', String(pid - 1), user], { encoding: 'utf8' })
    const got = Number(r.stdout.trim())
    if (got === pid) return got
    if (got > 1) process.kill(got, 'SIGKILL')
  }
  throw new Error(`no process got pid ${pid} in 200 attempts`)
}

describe('watchdog: a pid used again by another process is never signalled', () => {
  let sb: Sandbox
  let h: SandboxHost
  let host: SshHost | undefined
  const children: ChildProcess[] = []
  let newcomer = 0

  beforeAll(() => {
    sb = sandboxUp({ first: 5, count: 1, net: '127.0.2' })
    h = sb.hosts[0]!
  })
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL')
    if (newcomer > 0 && stateOf(newcomer) !== null) process.kill(newcomer, 'SIGKILL')
    await host?.close()
    sb?.down()
  })

  it('armed for a process that exits and whose pid goes to an unrelated one: the newcomer survives', async () => {
    host = await SshHost.connect(hostOptions(sb, h))
    const uid = idOf('-u', sb.user)
    const gid = idOf('-g', sb.user)
    const liveBefore = readFileSync(sb.hostPath(h, LIVE))
    // The "old master": a process of the deploy user, as nginx's master is.
    const old = spawn('sleep', ['600'], { uid, gid, stdio: 'ignore' })
    children.push(old)
    const oldPid = old.pid!
    const armed = await startWatchdog(host, {
      dir: DIR,
      token: 'run-pid',
      pidFile: '/run/nginx.pid',
      oldPid,
      livePath: LIVE,
      previousPath: '/srv/app/sbin/.nginx.zerodown-prev',
      oldSha256: createHash('sha256').update(liveBefore).digest('hex'),
      leaseMs: 5000,
      part: nginx.watchdog
    })
    expect(armed.pid).toBeGreaterThan(1)
    expect(readFileSync(sb.hostPath(h, `${DIR}/log`), 'utf8')).toMatch(
      new RegExp(`armed for old pid ${oldPid} \\(started at tick \\d+;`)
    )

    // The old process exits (reaped at once: it is this process's child); its pid goes to another.
    const exited = new Promise(r => old.once('exit', r))
    old.kill('SIGKILL')
    await exited
    newcomer = spawnWithPid(oldPid, sb.user)
    const newcomerStart = startTime(newcomer)
    expect(newcomerStart).not.toBeNull()
    // The replacement happened before the watchdog's deadline: it has not decided yet.
    const before = await inspectWatchdog(host, DIR)
    expect(before).toMatchObject({ running: true, verdict: null })

    const end = await waitForWatchdog(host, DIR, 60_000)
    expect(end).toMatchObject({ running: false, verdict: 'rollback', result: 'nothing' })
    const log = readFileSync(sb.hostPath(h, `${DIR}/log`), 'utf8')
    expect(log).toContain(`pid ${oldPid} is another process now`)
    expect(log).not.toMatch(/sent HUP|sent QUIT|sent TERM|sent KILL/)
    // The newcomer was not signalled (HUP would have ended the sleep); the host is as it was.
    expect(stateOf(newcomer)).toMatch(/^[RS]$/)
    expect(startTime(newcomer)).toBe(newcomerStart)
    expect(readFileSync(sb.hostPath(h, LIVE)).equals(liveBefore)).toBe(true)
  })
})
