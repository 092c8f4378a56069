/**
 * USR2 and WINCH sent ahead behind the swap (src/supervisors/nginx/ahead.ts), on a real sandbox
 * host (sshd + nginx on 127.0.14.2): the host's own readiness check (READY) agrees with the
 * runner's judgement of the same process tree, refuses what the runner would refuse, and the
 * wait after WINCH (STOPPED) ends with no old worker accepting. Then a deploy through the bundle
 * takes both chains: the config test answered with the upload (staged-ahead.ts), USR2 and WINCH
 * with the swap.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { rmSync } from 'node:fs'
import type { SshHost } from '../src/host/ssh-host.js'
import { READY, STOPPED } from '../src/supervisors/nginx/ahead.js'
import { acceptingWorkers, isAlive, probe } from '../src/supervisors/nginx/protocol.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { until } from './helpers/ssh.js'
import { connect, LIVE } from './helpers/upgrade-host.js'

const PID_FILE = '/run/nginx.pid'
let sb: Sandbox
let h: SandboxHost
let host: SshHost
let dir: string

beforeAll(async () => {
  sb = sandboxUp({ first: 2, count: 1, net: '127.0.14' })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-ahead-')
  host = await connect(sb, h)
})
afterAll(async () => {
  await host?.close()
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const ready = (oldPid: number, workers: string, live = LIVE) =>
  host.run(['sh', '-c', READY, 'sh', String(oldPid), PID_FILE, workers, live])
const kill = async (sig: string, pid: number) =>
  expect((await host.run(['kill', '-s', sig, '--', String(pid)])).code).toBe(0)

describe('the start sent ahead: the host judges the new master as the runner does', () => {
  it('READY waits for the new master with all its workers, and refuses another file or too few workers', async () => {
    const before = await probe(host, PID_FILE)
    const oldPid = before.pid!
    const oldWorkers = acceptingWorkers(before, oldPid).length
    expect(oldWorkers).toBeGreaterThan(0)
    // No USR2 yet: no new master, however long it waits.
    expect((await ready(oldPid, 'auto')).code).toBe(1)

    await kill('USR2', oldPid)
    expect((await ready(oldPid, 'auto')).code).toBe(0)
    // What the runner reads now agrees: a child of the old master, running the live file, all its workers.
    const snap = await probe(host, PID_FILE, [oldPid])
    const newPid = snap.pid!
    expect(snap.oldbinPid).toBe(oldPid)
    expect(snap.procs.get(newPid)?.ppid).toBe(oldPid)
    expect(snap.procs.get(newPid)?.exe).toBe(LIVE)
    expect(acceptingWorkers(snap, newPid).length).toBe(oldWorkers)
    expect((await ready(oldPid, String(oldWorkers))).code).toBe(0)
    // The runner would refuse these: the host does too (WINCH then waits for the runner).
    expect((await ready(oldPid, String(oldWorkers + 1))).code).toBe(1)
    expect((await ready(oldPid, 'auto', '/srv/app/sbin/nginx.other')).code).toBe(1)
    expect((await ready(newPid, 'auto')).code).toBe(1)

    // WINCH: STOPPED ends once no old worker accepts; the new master's workers still do.
    await kill('WINCH', oldPid)
    expect((await host.run(['sh', '-c', STOPPED, 'sh', String(oldPid)])).code).toBe(0)
    const after = await probe(host, PID_FILE, [oldPid, newPid])
    expect(acceptingWorkers(after, oldPid)).toEqual([])
    expect(acceptingWorkers(after, newPid).length).toBe(oldWorkers)

    // Back as it was: the new master goes, the old one takes its workers and pid file again.
    await kill('HUP', oldPid)
    await kill('QUIT', newPid)
    await until(async () => {
      const s = await probe(host, PID_FILE, [oldPid, newPid])
      return s.pid === oldPid && !isAlive(s, newPid) && acceptingWorkers(s, oldPid).length === oldWorkers
    }, 15_000)
  })

  it('a deploy through the bundle takes the config test from the upload’s round trip and USR2 and WINCH from the swap’s, and the host serves the new binary', async () => {
    const before = (await probe(host, PID_FILE)).pid!
    const run = await runAction({ ...sandboxInputs(sb), binary: nginxBuild(dir, 'ahead') })
    expect([run.code, run.outputs.result]).toEqual([0, 'upgraded'])
    expect(run.log).toMatch(
      /\[verify\] the config test ran on the host as soon as the upload checked out there/
    )
    expect(run.log).toMatch(/\[usr2\] sent USR2 to the old master \d+ \(right behind the swap\)/)
    expect(run.log).toMatch(
      /\[winch\] sent WINCH to the old master \d+ \(once the host, too, found the new master ready\)/
    )
    const snap = await probe(host, PID_FILE)
    expect(snap.pid).not.toBe(before)
    expect(snap.procs.get(snap.pid!)?.exe).toBe(LIVE)
    expect(isAlive(snap, before)).toBe(false)
  })
})
