/**
 * Paths as the system sees them, on a real sandbox host (127.0.0.214) laid out like a merged-/usr
 * distribution: the binary lives in /srv/app/usr/sbin and /srv/app/sbin is a symbolic link to it,
 * as /sbin is to /usr/sbin. The master runs /srv/app/usr/sbin/nginx; binary-path names it through
 * the link.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'

const REAL = '/srv/app/usr/sbin/nginx'
const VIA_LINK = '/srv/app/sbin/nginx'
let sb: Sandbox
let h: SandboxHost
let dir: string
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')

function sh(script: string): string {
  const r = sb.exec(h, ['sh', '-ec', script])
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`)
  return r.stdout
}

beforeAll(() => {
  sb = sandboxUp({ first: 214, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-merged-usr-')
  sb.nginxStop(h)
  sh(
    'mkdir -p /srv/app/usr/sbin && mv /srv/app/sbin/nginx /srv/app/usr/sbin/nginx && rmdir /srv/app/sbin && ' +
      'ln -s usr/sbin /srv/app/sbin && chown -R zd:zd /srv/app/usr && chown -h zd:zd /srv/app/sbin'
  )
  // Started by its real path, as a distribution's unit file does (ExecStart=/usr/sbin/nginx).
  sh(
    `setpriv --reuid=zd --regid=zd --init-groups -- ${REAL} -p /srv/app -c /srv/app/conf/nginx.conf -e /srv/app/logs/error.log`
  )
  for (let i = 0; i < 250 && sb.readPid(h) === null; i++) sh('sleep 0.02')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('merged /usr', () => {
  it('binary-path through a symbolic link is the file the master runs', async () => {
    const build = nginxBuild(dir, 'merged')
    const old = sb.readPid(h)
    const r = await runAction({ ...sandboxInputs(sb, [h]), binary: build, 'binary-path': VIA_LINK })
    if (r.outputs.result !== 'upgraded') console.log(r.log)
    expect(r.outputs.result).toBe('upgraded')
    expect(r.code).toBe(0)
    expect(r.log).toContain(`binary-path ${VIA_LINK} is ${REAL} once its links are resolved`)
    expect(sha256(sb.hostPath(h, REAL))).toBe(sha256(build))
    // The link is still a link: the file was replaced behind it, not the link by a file.
    expect(sh('readlink /srv/app/sbin').trim()).toBe('usr/sbin')
    expect(sb.readPid(h)).not.toBe(old)
  })

  it('another file is refused, and the message says nginx re-executes its argv[0]', async () => {
    const before = sb.readPid(h)
    const r = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'other'),
      'binary-path': '/srv/app/sbin/nginx.other'
    })
    expect(r.outputs.result).toBe('failed')
    expect(r.log).toContain(`On USR2 nginx re-executes its argv[0] (${REAL}), which is ${REAL}`)
    expect(sb.readPid(h)).toBe(before)
    // A host refused at pre-flight still reports what serves.
    expect(r.outputs['old-pid']).toBe(String(before))
    expect(r.outputs.version).toMatch(/^\d+\.\d+\.\d+$/)
  })
})
