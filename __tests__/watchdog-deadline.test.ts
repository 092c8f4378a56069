/**
 * The watchdogs' deadline file, with the real scripts under a local sh: an extension replaces it
 * by a rename, so the watchdog (which reads it every second) never sees it empty; a watchdog that
 * reads it unreadable once does not roll back, and one that keeps finding it unreadable does.
 * Before, an extension truncated the file and wrote it again: a parked host's watchdog that read
 * it in between took the empty deadline as passed and rolled the host back (seen at 192 hosts on a
 * loaded runner).
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EXTEND_SCRIPT, LAUNCH_SCRIPT, watchdogScript } from '../src/safety/watchdog-scripts.js'
import { LB_EXTEND_SCRIPT } from '../src/strategies/upstream/lb-watchdog-script.js'
import { nginx } from '../src/supervisors/nginx/index.js'
import { sleep, until } from './helpers/ssh.js'

const dirs: string[] = []
const children: ChildProcess[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) {
    // The watchdog, if still running, ends when its state goes.
    const pid = existsSync(join(d, 'wd', 'pid')) ? Number(readFileSync(join(d, 'wd', 'pid'), 'utf8')) : 0
    if (pid > 1) spawnSync('kill', ['-KILL', String(pid)])
    rmSync(d, { recursive: true, force: true })
  }
})

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'zd-deadline-'))
  dirs.push(d)
  return d
}

/** Runs `extend` `times` times while a reader reads the deadline as fast as sh can; how often it read it empty. */
function emptyReads(extend: string, d: string, times: number): { empty: number; reads: number } {
  const script = String.raw`
d=$1 ext=$2 n=$3
( i=0; while [ "$i" -lt "$n" ]; do sh -c "$ext" sh "$d" tok 600 >/dev/null; i=$((i + 1)); done; : > "$d/writer-done" ) &
empty=0 reads=0
while [ ! -e "$d/writer-done" ]; do
  x=; { read -r x < "$d/deadline"; } 2>/dev/null
  reads=$((reads + 1))
  case $x in ''|*[!0-9]*) empty=$((empty + 1));; esac
done
wait
echo "$empty $reads"`
  const r = spawnSync('sh', ['-c', script, 'sh', d, extend, String(times)], { encoding: 'utf8' })
  const [empty, reads] = r.stdout.trim().split(' ').map(Number)
  return { empty: empty!, reads: reads! }
}

describe('an extension of the deadline', () => {
  for (const [name, extend] of [
    ['the host watchdog', EXTEND_SCRIPT],
    ["the load balancer's watchdog", LB_EXTEND_SCRIPT]
  ] as const)
    it(`${name}: a reader never finds the deadline empty while it is extended again and again`, () => {
      const d = scratch()
      writeFileSync(join(d, 'token'), 'tok\n')
      writeFileSync(join(d, 'deadline'), `${Math.floor(Date.now() / 1000) + 600}\n`)
      const { empty, reads } = emptyReads(extend, d, 400)
      expect(reads).toBeGreaterThan(400)
      expect(empty).toBe(0)
      // Nothing of the extensions is left beside it.
      expect(spawnSync('ls', ['-A', d], { encoding: 'utf8' }).stdout.split('\n').sort()).toEqual([
        '',
        'deadline',
        'token',
        'writer-done'
      ])
    })
})

describe('the host watchdog reading its deadline', () => {
  /** Arms the real watchdog (nginx's part) for a local `sleep`, with a 10-minute lease. */
  function arm() {
    const d = scratch()
    const old = spawn('sleep', ['600'], { stdio: 'ignore' })
    children.push(old)
    const live = join(d, 'nginx')
    writeFileSync(live, 'the old binary\n')
    const sha = createHash('sha256').update('the old binary\n').digest('hex')
    const wd = join(d, 'wd')
    const r = spawnSync(
      'sh',
      [
        '-c',
        LAUNCH_SCRIPT,
        'sh',
        watchdogScript(nginx.watchdog),
        wd,
        'tok',
        '600',
        join(d, 'nginx.pid'),
        String(old.pid),
        live,
        join(d, '.nginx.zerodown-prev'),
        sha
      ],
      { encoding: 'utf8' }
    )
    expect(r.stdout).toMatch(/^started \d+ /)
    return { wd, old }
  }

  it('does not roll back on one unreadable read; rolls back when it stays unreadable', async () => {
    const { wd, old } = arm()
    const deadline = readFileSync(join(wd, 'deadline'), 'utf8')
    // Empty for about two of its reads (a damaged write), then whole again: it carries on.
    writeFileSync(join(wd, 'deadline'), '')
    await sleep(2200)
    writeFileSync(join(wd, 'deadline'), deadline)
    await sleep(1200)
    expect(existsSync(join(wd, 'decided'))).toBe(false)
    expect(old.exitCode).toBeNull()

    // Gone for good: after 5 reads in a row it counts as passed, and the watchdog rolls back.
    rmSync(join(wd, 'deadline'))
    // (It decides, then works through nginx's revert against the sleep, which takes its time.)
    expect(await until(() => existsSync(join(wd, 'verdict')), 15_000, 100)).toBe(true)
    expect(readFileSync(join(wd, 'verdict'), 'utf8').trim()).toBe('rollback')
    expect(
      await until(() =>
        readFileSync(join(wd, 'log'), 'utf8').includes('no word from the action by the deadline')
      )
    ).toBe(true)
  })
})
