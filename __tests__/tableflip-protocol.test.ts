import { afterAll, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { Host } from '../src/host/host.js'
import {
  argv0Problem,
  describe as describeProcs,
  exitingParent,
  isAlive,
  judgeStart,
  parseSnapshot,
  probe,
  type StartWatch
} from '../src/supervisors/tableflip/protocol.js'

const APP = '/srv/app/sbin/app'
const CMD = `${APP} -listen 127.0.0.1:8080 -pid-file /run/app.pid`
const proc = (pid: number, state: string, ppid: number, exe: string, cmd = CMD) =>
  `proc\t${pid}\t${state}\t${ppid}\t${exe}\t${cmd.split(' ')[0]}\t${cmd}`

const watch = (over: Partial<StartWatch> = {}): StartWatch => ({
  oldPid: 100,
  livePath: APP,
  signal: 'HUP',
  sawChild: false,
  quiet: false,
  ...over
})

describe('tableflip snapshots', () => {
  it('parses the pid file and the processes with argv[0]', () => {
    const snap = parseSnapshot(
      ['pidfile 200', proc(100, 'S', 1, `${APP} (deleted)`), proc(200, 'S', 100, APP)].join('\n')
    )
    expect(snap.pid).toBe(200)
    expect(snap.procs.get(100)).toMatchObject({ ppid: 1, exe: `${APP} (deleted)`, argv0: APP, cmdline: CMD })
    expect(parseSnapshot('pidfile -\n').pid).toBeNull()
  })
})

describe('judging a start', () => {
  it('is ready once the pid file names a child running the live file', () => {
    const snap = parseSnapshot(
      ['pidfile 200', proc(100, 'S', 1, `${APP} (deleted)`), proc(200, 'S', 100, APP)].join('\n')
    )
    expect(judgeStart(snap, watch())).toEqual({ kind: 'ready', pid: 200 })
  })
  it('is ready when the old process already exited and the child was re-parented', () => {
    const snap = parseSnapshot(['pidfile 200', proc(100, 'Z', 1, '-'), proc(200, 'S', 1, APP)].join('\n'))
    expect(judgeStart(snap, watch())).toEqual({ kind: 'ready', pid: 200 })
  })
  it('waits while a child lives that has not written the pid file', () => {
    const snap = parseSnapshot(
      ['pidfile 100', proc(100, 'S', 1, `${APP} (deleted)`), proc(200, 'S', 100, APP)].join('\n')
    )
    expect(judgeStart(snap, watch({ quiet: true }))).toEqual({ kind: 'waiting', children: [200] })
  })
  it('fails when a child was seen and is gone with the pid file unchanged', () => {
    const snap = parseSnapshot(['pidfile 100', proc(100, 'S', 1, `${APP} (deleted)`)].join('\n'))
    expect(judgeStart(snap, watch({ sawChild: true }))).toMatchObject({
      kind: 'failed',
      message: expect.stringContaining('exited before it was ready')
    })
    expect(judgeStart(snap, watch())).toEqual({ kind: 'waiting', children: [] })
    expect(judgeStart(snap, watch({ quiet: true }))).toMatchObject({
      kind: 'failed',
      message: expect.stringContaining('no new process appeared after HUP')
    })
  })
  it('fails when the old process died of the signal', () => {
    const snap = parseSnapshot(['pidfile 100'].join('\n'))
    expect(judgeStart(snap, watch())).toMatchObject({
      kind: 'failed',
      message: expect.stringContaining('exited after HUP')
    })
  })
  it('fails when the pid file names a process running another file', () => {
    const snap = parseSnapshot(
      ['pidfile 200', proc(100, 'S', 1, APP), proc(200, 'S', 100, '/usr/bin/other')].join('\n')
    )
    expect(judgeStart(snap, watch())).toMatchObject({
      kind: 'failed',
      message: expect.stringContaining('/usr/bin/other')
    })
  })
  it('a zombie child counts as gone', () => {
    const snap = parseSnapshot(
      ['pidfile 100', proc(100, 'S', 1, APP), proc(200, 'Z', 100, '-', '')].join('\n')
    )
    expect(judgeStart(snap, watch({ sawChild: true })).kind).toBe('failed')
  })
  it('describes what it saw', () => {
    const snap = parseSnapshot(['pidfile 100', proc(100, 'S', 1, APP), proc(200, 'S', 100, APP)].join('\n'))
    expect(describeProcs(snap, 100)).toBe(
      `pid file: 100; old process 100 alive; child 200 (${APP}) not ready`
    )
  })
})

describe('pre-flight judgements', () => {
  it('finds a parent still exiting from an earlier hand-over', () => {
    const snap = parseSnapshot(
      ['pidfile 200', proc(100, 'S', 1, `${APP} (deleted)`), proc(200, 'S', 100, APP)].join('\n')
    )
    expect(exitingParent(snap, 200)?.pid).toBe(100)
    const started = parseSnapshot(
      ['pidfile 200', proc(90, 'S', 1, '/usr/bin/bash', 'bash run.sh'), proc(200, 'S', 90, APP)].join('\n')
    )
    expect(exitingParent(started, 200)).toBeNull()
    const gone = parseSnapshot(['pidfile 200', proc(100, 'Z', 1, '-'), proc(200, 'S', 100, APP)].join('\n'))
    expect(exitingParent(gone, 200)).toBeNull()
  })
  it('refuses an argv[0] that would not start the live file again', () => {
    expect(argv0Problem(APP, APP, APP)).toBeNull()
    expect(argv0Problem('app', APP, null)).toContain('PATH lookup')
    expect(argv0Problem('./sbin/app', APP, null)).toContain('relative path')
    expect(argv0Problem('/usr/local/bin/app', APP, '/opt/app')).toContain('resolves to /opt/app')
    expect(argv0Problem('/usr/local/bin/app', APP, APP)).toBeNull()
  })
})

/** A Host that runs argv on this machine: the probe's sh against real processes. */
const local: Host = {
  name: 'local',
  address: '127.0.0.1',
  sudo: false,
  async run(argv) {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 })
    return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 }
  },
  upload: () => Promise.reject(new Error('not here')),
  readFile: () => Promise.resolve(null),
  http: () => Promise.reject(new Error('not here')),
  close: () => Promise.resolve()
}

describe('the probe on real processes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-probe-'))
  const children: number[] = []
  afterAll(() => {
    for (const pid of children) spawnSync('kill', ['-KILL', '--', String(pid)])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('reads the pid file, its process, its child, its parent and argv[0]', async () => {
    // A parent sh (named in the pid file) with one child sleep: like a server and its new process.
    const parent = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' })
    children.push(parent.pid!)
    fs.writeFileSync(path.join(dir, 'app.pid'), `${parent.pid}\n`)
    let snap = await probe(local, path.join(dir, 'app.pid'))
    for (let i = 0; i < 100 && snap.procs.size < 3; i++) {
      await new Promise(r => setTimeout(r, 20))
      snap = await probe(local, path.join(dir, 'app.pid'))
    }
    expect(snap.pid).toBe(parent.pid)
    const me = snap.procs.get(parent.pid!)!
    expect(me).toMatchObject({ argv0: '/bin/sh', ppid: process.pid })
    expect(me.cmdline).toBe('/bin/sh -c sleep 30 & wait')
    const kid = [...snap.procs.values()].find(p => p.ppid === parent.pid)
    expect(kid?.argv0).toBe('sleep')
    children.push(kid!.pid)
    expect(snap.procs.get(process.pid)?.exe).toBe(fs.realpathSync(process.execPath))
  })
  it('reads the pid file again after the processes, and reads again when it changed between', async () => {
    // The race of a hand-over: the child writes the pid file (Ready) and its parent exits while
    // the probe runs. The pid file gives a gone pid at the first read, then a live one. A probe
    // that read it once would report "pid file: the gone pid", a failed hand-over.
    // It is a symlink to a FIFO, one FIFO per value: the writer's open waits for the probe's
    // read; once it has its reader, the symlink moves to the next FIFO, then the value is
    // written. So each read gets exactly the next value, however fast or slow either side is (one
    // FIFO for every value lost lines to a reader still open, or let the next read join the last).
    const pidFile = path.join(dir, 'race.pid')
    spawnSync('mkfifo', [`${pidFile}.0`])
    fs.symlinkSync(`${pidFile}.0`, pidFile)
    const live = spawn('/bin/sh', ['-c', 'sleep 30'], { stdio: 'ignore' })
    children.push(live.pid!)
    const gone = 999_999_999
    const serve = [
      'pf=$0 k=0',
      'for v in "$@"; do',
      '  exec 3> "$pf.$k"',
      '  k=$((k + 1)); mkfifo "$pf.$k" && ln -sfn "$pf.$k" "$pf.tmp" && mv -Tf "$pf.tmp" "$pf"',
      '  printf "%s\\n" "$v" >&3; exec 3>&-',
      'done'
    ].join('\n')
    const values = [String(gone), ...Array<string>(5).fill(String(live.pid))]
    const writer = spawn('/bin/sh', ['-c', serve, pidFile, ...values], { stdio: 'ignore', detached: true })
    // Its whole group: a value left unread keeps a subshell waiting on the FIFO.
    children.push(-writer.pid!)
    const snap = await probe(local, pidFile, [live.pid!])
    expect(snap.pid).toBe(live.pid)
    expect(isAlive(snap, live.pid)).toBe(true)
  })
  it('reads a missing pid file as none, and keeps watched pids in view', async () => {
    const snap = await probe(local, path.join(dir, 'missing.pid'), [process.pid])
    expect(snap.pid).toBeNull()
    expect([...snap.procs.keys()]).toContain(process.pid)
  })
})
