/**
 * The release store on the live binary's own mount, as on most real hosts (one root file system):
 * through the bundle on a real sandbox host (127.0.12.2), pre-flight's free-space reads show one
 * mount, so the running binary and every new release go into the store as hard links (no copy),
 * and a rollback takes its release back from there. The sandbox's default store is on another
 * mount than /srv/app, which every other upgrade test uses (the copy path).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { rmSync, statSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { sha256 } from './helpers/upgrade-host.js'

const STORE = '/srv/app/zerodown-store'
const LIVE = '/srv/app/sbin/nginx'

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 2, count: 1, net: '127.0.12' })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-store-link-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const inode = (remote: string) => statSync(sb.hostPath(h, remote)).ino

describe("a release store on the binary's own mount", () => {
  it('stores by hard links: the found binary, each deploy, and a rollback back to one', async () => {
    const original = sha256(sb.hostPath(h, LIVE))
    const one = nginxBuild(dir, 'one')
    const first = await runAction({ ...sandboxInputs(sb, [h]), binary: one, 'release-dir': STORE })
    expect(first.code).toBe(0)
    expect(first.log).toMatch(/recorded the running binary \(version [^,]+, sha256 [0-9a-f]{12}, linked\)/)
    expect(first.log).toMatch(/release store: recorded [^(]+\(sha256 [0-9a-f]{12}, linked\)/)
    // The live file is the release's file itself: one inode, nothing copied.
    const oneSha = sha256(one)
    expect(inode(LIVE)).toBe(inode(`${STORE}/releases/${oneSha}/nginx`))
    expect(sha256(sb.hostPath(h, `${STORE}/releases/${original}/nginx`))).toBe(original)

    const two = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'two'),
      'release-dir': STORE
    })
    expect(two.code).toBe(0)
    expect(two.log).toMatch(/, linked\)/)

    const back = await runAction({ ...sandboxInputs(sb, [h]), mode: 'rollback', 'release-dir': STORE })
    expect(back.code).toBe(0)
    expect(back.outputs.result).toBe('upgraded')
    expect(sha256(sb.hostPath(h, LIVE))).toBe(oneSha)
    // The stored release is intact after its file went back to the live path.
    expect(sha256(sb.hostPath(h, `${STORE}/releases/${oneSha}/nginx`))).toBe(oneSha)
  })
})
