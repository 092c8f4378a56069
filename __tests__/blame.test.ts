/**
 * Messages that blame the right thing, on a real sandbox host (127.0.0.216): the printed config
 * test command is quoted as sh reads it (-g with spaces), WINCH waits for all the new workers, and
 * a health gate that fails because the configuration changed under the old master says so.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 216, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-blame-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** Restarts the host's nginx as the sandbox does, with extra arguments. */
function restart(extra: string[]): void {
  sb.nginxStop(h)
  const argv = [
    '/srv/app/sbin/nginx',
    '-p',
    '/srv/app',
    '-c',
    '/srv/app/conf/nginx.conf',
    '-e',
    '/srv/app/logs/error.log',
    ...extra
  ]
  const r = sb.exec(h, ['setpriv', '--reuid=zd', '--regid=zd', '--init-groups', '--', ...argv])
  expect(r.status).toBe(0)
  for (let i = 0; i < 250 && sb.readPid(h) === null; i++) sb.exec(h, ['sleep', '0.02'])
}

describe('messages that blame the right thing', () => {
  it('the failing config test is printed with -g quoted, ready to paste', async () => {
    restart(['-g', 'pcre_jit on;'])
    const bad = join(dir, 'bad-config')
    writeFileSync(
      bad,
      '#!/bin/sh\ncase " $* " in *" -T "*) echo "nginx: [emerg] zerodown test failure" >&2; exit 1;; esac\nexec /usr/sbin/nginx "$@"\n',
      { mode: 0o755 }
    )
    const r = await runAction({ ...sandboxInputs(sb, [h]), binary: bad })
    expect(r.outputs.result).toBe('failed')
    expect(r.log).toContain(
      "(/srv/app/sbin/.nginx.zerodown-new -T -p /srv/app -c /srv/app/conf/nginx.conf -e /srv/app/logs/error.log -g 'pcre_jit on;')"
    )
  })

  it('WINCH waits until all the new workers accept', async () => {
    restart([])
    const r = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'workers') })
    expect(r.outputs.result).toBe('upgraded')
    expect(r.log).toMatch(/new master \d+ is up with all 2 of its workers \(worker_processes 2\)/)
  })

  it('a health gate failing after the config changed under the old master names the change', async () => {
    const conf = sb.hostPath(h, '/srv/app/conf/nginx.conf')
    const text = readFileSync(conf, 'utf8')
    // A second later than the master's start, so the times tell (seconds, as stat gives them).
    await new Promise(r => setTimeout(r, 1100))
    writeFileSync(conf, text.replace('return 200 "ok\\n";', 'return 503 "changed\\n";'))
    const r = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'innocent'),
      'health-timeout': '3s'
    })
    writeFileSync(conf, text)
    expect(r.outputs.result).toBe('rolled-back')
    expect(r.log).toMatch(
      /The configuration changed since the old master started \([^)]+\): \/srv\/app\/conf\/nginx\.conf \(modified [^)]+\); the new master loads it as it is now, so the failure may come from that change rather than from the new binary/
    )
  })
})
