/**
 * A daemonized master whose orphans go to a subreaper (systemd --user, a container's init)
 * rather than to pid 1: after one upgrade the new master is neither a child of init nor a
 * session leader. A second upgrade must still go through (sandbox host 127.0.0.25).
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals'
import { readFileSync, rmSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { spawnAsDeployUser } from './helpers/upgrade-host.js'
import { waitUntil } from '../src/engine/wait.js'

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 25, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-subreaper-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** ppid and session id from /proc/<pid>/stat (the fields after the command name). */
function parentAndSession(pid: number): { ppid: number; sid: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { ppid: Number(fields[1]), sid: Number(fields[3]) }
}

it('upgrades twice a master whose parent is a subreaper, not init', async () => {
  sb.nginxStop(h)
  // A subreaper (PR_SET_CHILD_SUBREAPER = 36) that starts nginx daemonized, then stays (bounded).
  const reaper = [
    'import ctypes, subprocess, time',
    'ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)',
    "subprocess.call(['/srv/app/sbin/nginx', '-p', '/srv/app', '-c', '/srv/app/conf/nginx.conf', '-e', '/srv/app/logs/error.log'])",
    'time.sleep(300)'
  ].join('\n')
  spawnAsDeployUser(sb, h, `exec python3 -c '${reaper.replaceAll("'", "'\\''")}'`)
  const first = await waitUntil(10_000, 50, async () => {
    const pid = sb.readPid(h)
    return pid !== null && sb.isAlive(pid) ? pid : undefined
  })
  expect(first).toBeDefined()
  const reaperPid = parentAndSession(first!).ppid
  expect(reaperPid).not.toBe(1)

  const one = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'reaped-1') })
  expect(one.outputs.result).toBe('upgraded')
  // The new master was the old one's child: now the subreaper's, and no session leader.
  const second = sb.readPid(h)!
  expect(parentAndSession(second).ppid).toBe(reaperPid)
  expect(parentAndSession(second).sid).not.toBe(second)

  const two = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'reaped-2') })
  expect(two.log).toMatch(/not init, and it does not lead its own session/)
  expect(two.outputs.result).toBe('upgraded')
  expect(sb.readPid(h)).not.toBe(second)
  expect(sb.isAlive(second)).toBe(false)
})
