// tableflip's part of the watchdog, run by sh against real processes on this machine: the case of
// a hand-over that never completed (a child that is not ready is stopped, the old process kept).
// The case after a hand-over is proven on the real Go server (tableflip-safety.test.ts).
import { afterAll, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { tableflipWatchdog } from '../src/supervisors/tableflip/watchdog.js'

// The helpers the generic watchdog script gives every part (src/safety/watchdog.ts), and $pf, $old, $sha.
const GENERIC =
  String.raw`
nap() { sleep 0.2; }
readpid() { p=; [ -r "$1" ] && { read -r p < "$1"; } 2>/dev/null; case $p in ''|*[!0-9]*) p=;; esac; echo "$p"; }
alive() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  s=; { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=$` +
  '{s##*) }' +
  String.raw`
  case $s in Z*|X*) return 1;; esac
  return 0
}
log() { echo "log: $*"; }
sha_of() { sha256sum -- "$1" 2>/dev/null | { read -r h _; echo "$h"; }; }
pf=$1 old=$2 sha=$3
`

function runPart(body: string, args: string[]): { out: string; code: number } {
  const script = GENERIC + tableflipWatchdog('HUP').script + body
  const r = spawnSync('sh', ['-c', script, 'sh', ...args], { encoding: 'utf8', timeout: 30_000 })
  return { out: r.stdout + r.stderr, code: r.status ?? -1 }
}

describe('the tableflip watchdog part', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-wd-'))
  const started: number[] = []
  afterAll(() => {
    for (const pid of started) spawnSync('kill', ['-KILL', String(pid)])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('is valid sh for each signal', () => {
    for (const sig of ['HUP', 'USR1', 'USR2'] as const) {
      const r = spawnSync('sh', ['-n', '-c', GENERIC + tableflipWatchdog(sig).script], { encoding: 'utf8' })
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      expect(tableflipWatchdog(sig).script).toContain(`kill -s ${sig} "$cur"`)
    }
  })

  it('stops a child that never became ready and keeps the old process, which then passes processes_ok', () => {
    // The "old process" (a sleep, once sh execs it) with a child that ignores TERM, as the Go
    // server's "hang" variant does: KILL follows.
    const old = spawn(
      '/bin/sh',
      ['-c', 'sh -c \'trap "" TERM; while :; do sleep 1; done\' & exec sleep 300'],
      {
        stdio: 'ignore'
      }
    )
    started.push(old.pid!)
    const pf = path.join(dir, 'app.pid')
    fs.writeFileSync(pf, `${old.pid}\n`)
    const sha = spawnSync('sha256sum', [`/proc/${old.pid}/exe`], { encoding: 'utf8' }).stdout.split(' ')[0]!
    // Wait for the child to exist.
    let kids = ''
    for (let i = 0; i < 100 && kids === ''; i++) {
      kids = runPart('tf_kids "$old"', [pf, String(old.pid), sha]).out.trim()
      if (kids === '') spawnSync('sleep', ['0.02'])
    }
    expect(kids).toMatch(/^\d+$/)
    started.push(Number(kids))
    const before = runPart('processes_ok && echo OK || echo "NOT OK: $seen"', [pf, String(old.pid), sha])
    expect(before.out).toContain('NOT OK')

    const r = runPart('revert_processes; processes_ok && echo "OK: $serving" || echo "NOT OK: $seen"', [
      pf,
      String(old.pid),
      sha
    ])
    expect(r.out).toContain(`sent TERM to ${kids}, the child of ${old.pid} that never became ready`)
    expect(r.out).toContain(`sent KILL to ${kids}`)
    expect(r.out).toContain(`OK: ${old.pid} serves the old binary`)
    expect(fs.existsSync(`/proc/${old.pid}`)).toBe(true)
  })
})
