/**
 * src/host/coalesce.ts: the pieces ssh2 writes for each SSH packet (length, payload, tag) leave
 * in one writev(2) per tick instead of one write(2) each. Against a real sshd (127.0.1.241):
 * commands, a large argument and an upload still arrive byte-exact, and the socket's system-level
 * writes (Node's _writeGeneric, one per write or writev) are far fewer than the writes ssh2 makes
 * (without coalescing there is one per write, which fails the count).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { createHash, randomBytes } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { join } from 'node:path'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { SshHost } from '../src/host/ssh-host.js'
import { scratchDir } from './helpers/action.js'
import { hostOptions } from './helpers/ssh.js'

let sb: Sandbox
let h: SandboxHost
let scratch: string

beforeAll(() => {
  sb = sandboxUp({ net: '127.0.1', first: 241, count: 1 })
  h = sb.hosts[0]!
  scratch = scratchDir('zerodown-coalesce-test-')
})

afterAll(() => {
  sb?.down()
  if (scratch) rmSync(scratch, { recursive: true, force: true })
})

type Proto = { write: (...a: unknown[]) => boolean; _writeGeneric: (...a: unknown[]) => unknown }

describe('writes of one tick leave together', () => {
  it('makes far fewer system-level writes than ssh2 writes, and every byte arrives', async () => {
    const proto = Socket.prototype as unknown as Proto
    const { write, _writeGeneric } = proto
    const counts = { writes: 0, syscalls: 0 }
    const ours = (s: Socket) => s.remotePort === h.sshPort
    // Counted on the prototype, under the per-socket wrapper that coalesceWrites installs.
    proto.write = function (this: Socket, ...a: unknown[]) {
      if (ours(this)) counts.writes++
      return write.apply(this, a)
    }
    proto._writeGeneric = function (this: Socket, ...a: unknown[]) {
      if (ours(this)) counts.syscalls++
      return _writeGeneric.apply(this, a)
    }
    let host: SshHost | undefined
    try {
      host = await SshHost.connect(hostOptions(sb, h))
      for (let i = 0; i < 20; i++) {
        const r = await host.run(['echo', `line ${i}`])
        expect(r.stdout).toBe(`line ${i}\n`)
      }
      const big = randomBytes(60_000).toString('hex')
      const r = await host.run(['sh', '-c', 'printf %s "$1" | sha256sum', 'sh', big])
      expect(r.stdout.split(' ')[0]).toBe(createHash('sha256').update(big).digest('hex'))
      const file = join(scratch, 'upload')
      const data = randomBytes(300_000)
      writeFileSync(file, data)
      await host.upload(file, '/tmp/coalesce-upload')
      const up = await host.run(['sha256sum', '/tmp/coalesce-upload'])
      expect(up.stdout.split(' ')[0]).toBe(createHash('sha256').update(data).digest('hex'))
    } finally {
      proto.write = write
      proto._writeGeneric = _writeGeneric
      await host?.close()
    }
    expect(counts.writes).toBeGreaterThan(60)
    // AES-GCM: three writes per packet, coalesced into at most one system-level write.
    expect(counts.syscalls * 2).toBeLessThanOrEqual(counts.writes)
  })
})
