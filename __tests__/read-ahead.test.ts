/**
 * The release store's reads sent ahead (src/releases/read-ahead.ts): the host reads the running
 * binary's sha256 and its copy's in the store in one command. The real script runs here through
 * a local sh, against a `sleep` process of this test and a store in a temporary folder; the whole
 * path (sent behind the deploy lock, taken by the choose step) runs in every upgrade test on sshd.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import type { ExecResult, Host } from '../src/host/host.js'
import type { TrustedServer } from '../src/host/trust.js'
import { storeReadAhead } from '../src/releases/read-ahead.js'

let dir: string
let server: ChildProcess
let exe: string
let sha: string
const NEW = 'a'.repeat(64)

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zerodown-read-ahead-'))
  server = spawn('sleep', ['60'], { stdio: 'ignore' })
  exe = realpathSync(`/proc/${server.pid}/exe`)
  sha = createHash('sha256').update(readFileSync(exe)).digest('hex')
})
afterAll(() => {
  server?.kill()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

function localHost(helper = false) {
  const sent: string[][] = []
  const host = {
    name: 'local',
    address: 'local',
    sudo: helper,
    privileged: helper ? (argv: readonly string[]) => argv : undefined,
    run(argv: readonly string[]): Promise<ExecResult> {
      sent.push([...argv])
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' })
      return Promise.resolve({ stdout: r.stdout, stderr: r.stderr, code: r.status ?? 1 })
    },
    readFile: (path: string) => Promise.resolve(existsSync(path) ? readFileSync(path, 'utf8') : null)
  } as unknown as Host
  return { host, sent }
}

const running = (): TrustedServer => ({
  pid: server.pid!,
  livePath: exe,
  replaced: false,
  facts: {} as TrustedServer['facts']
})

/** A store folder holding `content` as the copy of the running binary (none when undefined). */
function store(name: string, content?: Buffer): string {
  const d = join(dir, name)
  if (content !== undefined) {
    mkdirSync(join(d, 'releases', sha), { recursive: true })
    writeFileSync(join(d, 'releases', sha, basename(exe)), content)
  } else mkdirSync(d, { recursive: true })
  return d
}

describe('the release store read ahead', () => {
  it('reads the running binary and its intact copy in one command', async () => {
    const d = store('intact')
    mkdirSync(join(d, 'releases', sha), { recursive: true })
    copyFileSync(exe, join(d, 'releases', sha, basename(exe)))
    const ahead = storeReadAhead(localHost().host, d, running(), NEW)!
    expect(ahead.dir).toBe(d)
    expect(await ahead.runningCopy).toEqual({ running: sha, stored: sha })
    expect(await ahead.storedNew.read).toBeNull()
    expect((await ahead.state).releases).toEqual([])
  })

  it('says when the store has no copy, and which sha256 a damaged copy has', async () => {
    const none = storeReadAhead(localHost().host, store('none'), running(), NEW)!
    expect(await none.runningCopy).toEqual({ running: sha, stored: null })
    const damaged = storeReadAhead(localHost().host, store('damaged', Buffer.from('not it')), running(), NEW)!
    const got = await damaged.runningCopy
    expect(got?.running).toBe(sha)
    expect(got?.stored).toBe(createHash('sha256').update('not it').digest('hex'))
  })

  it('reads nothing ahead through the sudo helper, which has no such command', () => {
    const { host, sent } = localHost(true)
    expect(storeReadAhead(host, store('helper'), running(), NEW)).toBeNull()
    expect(sent).toEqual([])
  })
})
