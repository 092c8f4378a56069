/**
 * The release store's record in one round trip, on a real sshd (127.0.11.2): the new release's
 * hard link, the check of what landed, state.json's write and the pruned folders' removal go out
 * together; the host writes state.json only if what landed checks out, and removes a pruned
 * folder only once state.json no longer names it.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { SshHost } from '../src/host/ssh-host.js'
import { emptyState, markLive, withRelease, type Release } from '../src/releases/state.js'
import { ReleaseStore, STORED_GATE } from '../src/releases/store.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { hostOptions } from './helpers/ssh.js'

let sb: Sandbox
let h: SandboxHost
let host: SshHost
beforeAll(async () => {
  sb = sandboxUp({ first: 2, count: 1, net: '127.0.11' })
  h = sb.hosts[0]!
  host = await SshHost.connect(hostOptions(sb, h))
})
afterAll(async () => {
  await host?.close()
  sb?.down()
})

const sha = (n: number) => String(n).repeat(64).slice(0, 64)
const rel = (sha256: string, version: string): Release => ({
  sha256,
  version,
  deployedAt: '2030-01-01T00:00:00.000Z',
  origin: 'deploy'
})

describe('the record in one round trip', () => {
  const live = '/srv/app/sbin/gated-app'
  let store: ReleaseStore
  let before: ReturnType<typeof emptyState>

  /** A store in `dir` holding releases 1 and 2 (2 live), and a live file of its own. */
  async function setUp(dir: string, content: string) {
    rmSync(sb.hostPath(h, dir), { recursive: true, force: true })
    sb.exec(h, ['install', '-d', '-o', sb.user, '-g', sb.user, dir])
    writeFileSync(sb.hostPath(h, live), content)
    sb.exec(h, ['chown', sb.user, live])
    store = new ReleaseStore(host, dir, 'gated-app')
    before = emptyState('gated-app')
    for (const n of [1, 2]) {
      mkdirSync(sb.hostPath(h, `${dir}/releases/${sha(n)}`), { recursive: true })
      before = markLive(withRelease(before, rel(sha(n), `${n}.0.0`)), sha(n), '2030-01-01T00:00:00.000Z')
    }
    sb.exec(h, ['chown', '-R', sb.user, dir])
    await store.write(before)
    return createHash('sha256').update(content).digest('hex')
  }

  // The live folder's mount (a hard link) and another mount (a copy), as pre-flight tells them.
  for (const [where, dir, link, how] of [
    ['beside the live file', '/srv/app/gated-store', true, 'linked'],
    ['on another mount', '/var/lib/zerodown/gated', false, 'copied']
  ] as const)
    it(`a release that landed intact (${where}): ${how}, state.json written, the oldest pruned`, async () => {
      const newSha = await setUp(dir, `build 3 ${how}\n`)
      const next = markLive(withRelease(before, rel(newSha, '3.0.0')), newSha, '2030-01-02T00:00:00.000Z')
      const put = store.put(live, newSha, null, { gate: STORED_GATE, link })
      const saved = await store.saveAndPruneIf(STORED_GATE, next, 2, rel(newSha, '3.0.0'))
      expect(await put).toBe(how)
      expect(saved?.pruned.map(p => p.version)).toEqual(['1.0.0'])
      expect((await store.read()).live).toBe(newSha)
      expect(readdirSync(sb.hostPath(h, `${dir}/releases`)).sort()).toEqual([sha(2), newSha].sort())
      expect(readFileSync(sb.hostPath(h, `${dir}/releases/${newSha}/gated-app`), 'utf8')).toBe(
        `build 3 ${how}\n`
      )
    })

  for (const [where, dir, link] of [
    ['beside the live file', '/srv/app/gated-store', true],
    ['on another mount', '/var/lib/zerodown/gated', false]
  ] as const)
    it(`a release that did not land as claimed (${where}): state.json untouched, nothing pruned`, async () => {
      await setUp(dir, 'build 4\n')
      const claimed = sha(9) // not what the live file holds
      const next = markLive(withRelease(before, rel(claimed, '4.0.0')), claimed, '2030-01-02T00:00:00.000Z')
      const put = store.put(live, claimed, null, { gate: STORED_GATE, link })
      const saved = store.saveAndPruneIf(STORED_GATE, next, 2, rel(claimed, '4.0.0'))
      await expect(put).rejects.toThrow(/changed while it was stored/)
      expect(await saved).toBeNull()
      expect(await store.read()).toEqual(before)
      expect(existsSync(sb.hostPath(h, `${dir}/releases/${sha(1)}`))).toBe(true)
      expect(existsSync(sb.hostPath(h, `${dir}/releases/${claimed}`))).toBe(false)
    })
})
