/**
 * Issue #13, item 7: leftovers. An upload that cannot fit (a full /tmp with sudo) is refused before
 * it starts and leaves no partial file (a real host, 127.0.0.173, with a 1 MB tmpfs on its /tmp);
 * the commands printed for people quote their paths.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { readdirSync, rmSync } from 'node:fs'
import type { ExecResult, Host } from '../src/host/host.js'
import { inspectMaster } from '../src/supervisors/nginx/inspect.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { hostState, sha256 } from './helpers/upgrade-host.js'

describe('commands printed for people', () => {
  it('quote their paths (a pid file with a space, an old master left under .oldbin)', async () => {
    const probe = [
      'pidfile -',
      'oldbin 42',
      'oldbinfile',
      'proc\t42\tS\t1\t42\t/usr/sbin/nginx\tnginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf',
      ''
    ].join('\n')
    const host: Host = {
      name: 'fake',
      address: 'fake',
      sudo: false,
      run: async (): Promise<ExecResult> => ({ stdout: probe, stderr: '', code: 0 }),
      upload: async () => null,
      readFile: async () => null,
      http: async () => ({ status: 200, body: '' }),
      close: async () => undefined
    }
    const plan = { pidFile: "/run/my nginx's.pid" }
    await expect(inspectMaster(host, plan, { note: () => undefined })).rejects.toThrow(
      `kill -HUP 42; mv -- '/run/my nginx'\\''s.pid.oldbin' '/run/my nginx'\\''s.pid'`
    )
  })
})

let sb: Sandbox
let h: SandboxHost
let dir: string
beforeAll(() => {
  sb = sandboxUp({ first: 173, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-leftovers-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('a full /tmp with sudo', () => {
  it('is refused before the upload starts, and no partial file is left', async () => {
    const mount = sb.exec(h, ['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=1777', 'zd-small-tmp', '/tmp'])
    expect(mount.status).toBe(0)
    try {
      const original = sha256(sb.hostPath(h, h.binaryPath))
      const run = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'big'), sudo: 'true' })
      expect(run.code).toBe(1)
      expect(run.log).toMatch(/\/tmp has \d+ KiB free; the upload needs \d+ KiB\. Free some disk space/)
      const left = sb.exec(h, ['ls', '-A', '/tmp']).stdout.trim()
      expect(left).toBe('')
      expect(hostState(sb, h)).toMatchObject({ liveSha256: original, leftovers: [] })
      expect(readdirSync(sb.hostPath(h, '/srv/app/sbin'))).toEqual(['nginx'])
    } finally {
      sb.exec(h, ['umount', '/tmp'])
    }
  })
})
