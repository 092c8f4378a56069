/**
 * The HAProxy supervisor's pure parts: the probe's parser, the master's command line read back,
 * the config check's argv, and how a reload's outcome is judged from the processes (the shapes
 * measured on Debian's HAProxy 2.6; the integration tests run the real thing).
 */
import { describe, expect, it } from '@jest/globals'
import {
  checkArgv,
  daemonizes,
  describe as describeSnap,
  parseSnapshot,
  parseVersion,
  reloading,
  startArgs
} from '../src/supervisors/haproxy/protocol.js'
import { reloadOutcome } from '../src/supervisors/haproxy/reload.js'
import { haproxy } from '../src/supervisors/haproxy/index.js'
import { spawnSync } from 'node:child_process'

const OLD = '65024:100'
const NEW = '65024:200'

function probeOutput(o: {
  master?: { state?: string; id: string; argv: string[] }
  kids?: { pid: number; state?: string; id: string }[]
}): string {
  const lines = ['pidfile 500', `live ${NEW}`]
  const argvText = (argv: string[]) => argv.join('\t') + '\t'
  if (o.master) {
    lines.push(
      `proc\t500\t${o.master.state ?? 'S'}\t1\t${o.master.id}\t/srv/app/sbin/haproxy\t${argvText(o.master.argv)}`
    )
    lines.push('mworker', 'cwd /')
  }
  for (const k of o.kids ?? [])
    lines.push(
      `proc\t${k.pid}\t${k.state ?? 'S'}\t500\t${k.id}\t/srv/app/sbin/haproxy\t${argvText(['/srv/app/sbin/haproxy', '-W'])}`
    )
  return lines.join('\n') + '\n'
}

const START = ['/srv/app/sbin/haproxy', '-W', '-D', '-f', '/srv/app/conf/haproxy.cfg']
const RELOADING = [
  '/srv/app/sbin/haproxy',
  '-sf',
  '601',
  '-x',
  'sockpair@3',
  '-W',
  '-D',
  '-f',
  '/srv/app/conf/haproxy.cfg'
]

describe('parseSnapshot', () => {
  it('reads the pid file, the live file, the master (argv split on NULs) and its children', () => {
    const snap = parseSnapshot(
      probeOutput({
        master: { id: NEW, argv: RELOADING },
        kids: [
          { pid: 602, id: NEW },
          { pid: 601, id: OLD }
        ]
      }),
      500
    )
    expect(snap.pidFile).toBe(500)
    expect(snap.liveId).toBe(NEW)
    expect(snap.mworker).toBe(true)
    expect(snap.cwd).toBe('/')
    expect(snap.master?.argv).toEqual(RELOADING)
    expect(snap.children.map(c => c.pid)).toEqual([601, 602])
    expect(reloading(snap.master!)).toBe(true)
  })

  it('a missing pid file and no master', () => {
    const snap = parseSnapshot('pidfile -\nlive -\n', 0)
    expect(snap.pidFile).toBeNull()
    expect(snap.master).toBeNull()
    expect(snap.liveId).toBe('-')
  })
})

describe("the master's command line", () => {
  it('takes out what a reload added (-sf pids, -x sockpair@N), keeps the rest', () => {
    expect(startArgs(RELOADING)).toEqual({
      argv0: '/srv/app/sbin/haproxy',
      args: ['-W', '-D', '-f', '/srv/app/conf/haproxy.cfg']
    })
    expect(
      startArgs([
        '/usr/sbin/haproxy',
        '-Ws',
        '-f',
        '/etc/haproxy/haproxy.cfg',
        '-p',
        '/run/haproxy.pid',
        '-S',
        '/run/haproxy-master.sock'
      ])
    ).toEqual({
      argv0: '/usr/sbin/haproxy',
      args: [
        '-Ws',
        '-f',
        '/etc/haproxy/haproxy.cfg',
        '-p',
        '/run/haproxy.pid',
        '-S',
        '/run/haproxy-master.sock'
      ]
    })
  })

  it('the config check keeps the config arguments and drops what only a running master needs', () => {
    expect(
      checkArgv('/srv/app/sbin/.staged', [
        '-W',
        '-D',
        '-f',
        '/a.cfg',
        '-f',
        '/b.cfg',
        '-p',
        '/run/h.pid',
        '-S',
        '/run/m.sock',
        '-L',
        'peer1'
      ])
    ).toEqual(['/srv/app/sbin/.staged', '-c', '-f', '/a.cfg', '-f', '/b.cfg', '-L', 'peer1'])
    expect(checkArgv('/x', ['-Ws', '-f', '/etc/h.cfg', '--', '/etc/h.d/1.cfg', '/etc/h.d/2.cfg'])).toEqual([
      '/x',
      '-c',
      '-f',
      '/etc/h.cfg',
      '--',
      '/etc/h.d/1.cfg',
      '/etc/h.d/2.cfg'
    ])
  })

  it('only a master started with -D runs in the background by itself', () => {
    expect(daemonizes(['-W', '-D', '-f', '/a.cfg'])).toBe(true)
    expect(daemonizes(['-Ws', '-f', '/a.cfg'])).toBe(false)
  })

  it('reads the version from -v', () => {
    expect(parseVersion('HAProxy version 2.6.12-1+deb12u4 2023/12/12 - https://haproxy.org/\n')).toBe(
      '2.6.12-1+deb12u4'
    )
    expect(parseVersion('nothing here')).toBeNull()
  })
})

describe('reloadOutcome: judged from the processes, never from a sleep', () => {
  const before = [601]

  it('not yet: the master still runs the old file (USR2 not handled yet)', () => {
    const snap = parseSnapshot(
      probeOutput({ master: { id: OLD, argv: START }, kids: [{ pid: 601, id: OLD }] }),
      500
    )
    expect(reloadOutcome(snap, before, NEW)).toBeUndefined()
  })

  it('not yet: the master re-executed the new file and is still reloading (-sf), even with a new worker', () => {
    const snap = parseSnapshot(
      probeOutput({
        master: { id: NEW, argv: RELOADING },
        kids: [
          { pid: 601, id: OLD },
          { pid: 602, id: NEW }
        ]
      }),
      500
    )
    expect(reloadOutcome(snap, before, NEW)).toBeUndefined()
  })

  it('done: the master left its reload and a new worker runs the live file', () => {
    const snap = parseSnapshot(
      probeOutput({
        master: { id: NEW, argv: START },
        kids: [
          { pid: 601, id: OLD },
          { pid: 602, id: NEW }
        ]
      }),
      500
    )
    expect(reloadOutcome(snap, before, NEW)).toEqual({ ok: true, workers: [602] })
  })

  it('failed: the master left its reload on the new file with no new worker (wait mode)', () => {
    const snap = parseSnapshot(
      probeOutput({ master: { id: NEW, argv: START }, kids: [{ pid: 601, id: OLD }] }),
      500
    )
    expect(reloadOutcome(snap, before, NEW)).toEqual({ ok: false, why: 'wait-mode' })
  })

  it('failed: the master is gone (a zombie counts as gone)', () => {
    const snap = parseSnapshot(probeOutput({ master: { id: NEW, argv: START, state: 'Z' } }), 500)
    expect(reloadOutcome(snap, before, NEW)).toEqual({ ok: false, why: 'gone' })
  })

  it('an old worker is never taken for a new one, whatever it runs', () => {
    const snap = parseSnapshot(
      probeOutput({ master: { id: NEW, argv: START }, kids: [{ pid: 601, id: NEW }] }),
      500
    )
    expect(reloadOutcome(snap, before, NEW)?.ok).toBe(false)
  })

  it('describe names the master, the workers and the old ones left', () => {
    const snap = parseSnapshot(
      probeOutput({
        master: { id: NEW, argv: START },
        kids: [
          { pid: 601, id: OLD },
          { pid: 602, id: NEW }
        ]
      }),
      500
    )
    expect(describeSnap(snap, before)).toBe('master 500, workers: 602 (live file), old workers left: 601')
  })
})

describe("the watchdog's HAProxy part", () => {
  it('is valid POSIX sh (dash -n), defines what the watchdog calls, and holds no path, pid or token', () => {
    const script = haproxy.watchdog.script
    const r = spawnSync('dash', ['-n'], { input: script, encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(script).toMatch(/^revert_processes\(\) \{/m)
    expect(script).toMatch(/^processes_ok\(\) \{/m)
    expect(script).not.toMatch(/\/srv\/|\/run\/|\/var\/lib/)
    expect(script).not.toContain('@{')
  })

  it('declares what HAProxy cannot do: no hold, a rollback is another reload, the master keeps its pid', () => {
    expect(haproxy.capabilities).toEqual({
      canHold: false,
      handBack: true,
      revert: 'handoff',
      samePid: true
    })
    expect(haproxy.names.id).toBe('haproxy')
  })
})
