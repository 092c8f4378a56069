/**
 * The first read of a host's run (src/safety/lock-trust.ts): the running server and the trust
 * checks in one round trip when the host names the same paths as the runner, two otherwise, and
 * always two through the sudo helper (which checks every argument first). The real trust probe
 * runs here, through a local sh, against this test's own process (its pid in a pid file); the
 * attacks on a real sandbox host over sshd are in trust.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecResult, Host } from '../src/host/host.js'
import { checkTrust } from '../src/host/trust.js'
import { firstRead } from '../src/safety/lock-trust.js'
import { sidePaths } from '../src/strategies/hot-upgrade/install.js'

let dir: string
let pidFile: string
const exe = realpathSync(process.execPath)

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'zerodown-lock-trust-'))
  pidFile = join(dir, 'server.pid')
  writeFileSync(pidFile, `${process.pid}\n`)
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A host whose commands run in a local sh; `alter` may change an answer, as a host could. */
function localHost(o: { helper?: boolean; alter?: (out: string) => string } = {}) {
  const sent: string[][] = []
  const host = {
    name: 'local',
    address: 'local',
    sudo: o.helper === true,
    privileged: o.helper ? (argv: readonly string[]) => ['zerodown-sudo', ...argv] : undefined,
    run(argv: readonly string[]): Promise<ExecResult> {
      sent.push([...argv])
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' })
      const stdout = o.alter ? o.alter(r.stdout) : r.stdout
      return Promise.resolve({ stdout, stderr: r.stderr, code: r.status ?? 1 })
    }
  } as unknown as Host
  return { host, sent }
}

const options = () => ({ pidFile, releaseDir: join(dir, 'store') })

describe('the first read: the running server and the trust checks', () => {
  it('takes one round trip when the host names the same paths; pre-flight reuses its facts', async () => {
    const { host, sent } = localHost()
    const r = await firstRead(host, options())
    expect(r.master).toEqual({ pid: process.pid, path: exe, replaced: false })
    expect(r.trusted?.facts.master.pid).toBe(process.pid)
    expect(r.releaseDir).toBe(join(dir, 'store'))
    expect(sent).toHaveLength(1)
    // The supervisor's pre-flight checks the same plan: answered from what was read.
    await checkTrust(host, {
      pidFile,
      pid: process.pid,
      livePath: exe,
      stagingPath: sidePaths(exe).staging,
      storeDir: join(dir, 'store')
    })
    expect(sent).toHaveLength(1)
  })

  it('names the default store after the binary when no release-dir is given', async () => {
    const { host, sent } = localHost()
    const r = await firstRead(host, { pidFile })
    expect(r.releaseDir).toBe(`/var/lib/zerodown/${exe.split('/').pop()}`)
    expect(sent).toHaveLength(1)
  })

  it('probes again with its own paths when the host named others', async () => {
    const { host, sent } = localHost({ alter: out => out.replace(/^storedir\t.*$/m, 'storedir\t/elsewhere') })
    const r = await firstRead(host, options())
    expect(r.master?.pid).toBe(process.pid)
    expect(sent).toHaveLength(2)
    expect(sent[1]!.slice(4, 9)).toEqual([
      pidFile,
      String(process.pid),
      exe,
      sidePaths(exe).staging,
      join(dir, 'store')
    ])
  })

  it('through the sudo helper: the pid file first, then the probe with every path given', async () => {
    const { host, sent } = localHost({ helper: true })
    const r = await firstRead(host, options())
    expect(r.master?.path).toBe(exe)
    expect(sent).toHaveLength(2)
    expect(sent[1]!.slice(4, 8)).toEqual([pidFile, String(process.pid), exe, sidePaths(exe).staging])
  })

  it('refuses a pid file every user can write, from the one read', async () => {
    const { host, sent } = localHost()
    chmodSync(pidFile, 0o666)
    try {
      await expect(firstRead(host, options())).rejects.toThrow(/pid-file .* is writable by every user/)
    } finally {
      chmodSync(pidFile, 0o644)
    }
    expect(sent).toHaveLength(1)
  })

  it('a pid file that names no server: no master, the store only when given', async () => {
    const { host } = localHost()
    const empty = join(dir, 'empty.pid')
    writeFileSync(empty, '')
    expect(await firstRead(host, { pidFile: empty })).toEqual({ master: null, releaseDir: undefined })
    expect(await firstRead(host, { pidFile: empty, releaseDir: '/srv/store' })).toEqual({
      master: null,
      releaseDir: '/srv/store'
    })
  })
})
