/**
 * Integration tests of putting a binary in place (src/strategies/hot-upgrade/install.ts) on a real sandbox host
 * (127.0.0.13): staging beside the live path, sha256 checked on the host, one rename, the old
 * file kept; nothing sent twice; an interrupted upload leaves the live binary and nginx alone.
 * The last tests run the whole action (dist/index.js under Node 24) twice and kill it mid-upload.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { randomBytes } from 'node:crypto'
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import path from 'node:path'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { ConnectionLostError, type UploadProgress } from '../src/host/host.js'
import { SshHost } from '../src/host/ssh-host.js'
import { restorePrevious, sidePaths, stageBinary, swapBinary } from '../src/strategies/hot-upgrade/install.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import {
  childPids,
  exeInode,
  fileInode,
  hostOptions,
  sha256Of,
  sleep,
  sshSessionPid,
  sshdLogMark,
  sshdLogSince,
  sshdSessions,
  until
} from './helpers/ssh.js'

let sb: Sandbox
let h: SandboxHost
let host: SshHost
let dir: string
const logged: string[] = []

beforeAll(async () => {
  sb = sandboxUp({ first: 13, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-install-test-')
  host = await SshHost.connect(hostOptions(sb, h, { log: m => logged.push(m) }))
})

afterAll(async () => {
  await host?.close()
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const live = () => h.binaryPath
const onHost = (p: string) => sb.hostPath(h, p)
const mode = (p: string) => statSync(p).mode & 0o7777

/** A working nginx with `mb` MB of random bytes appended (ELF ignores them). */
function bigBuild(label: string, mb: number): string {
  const path = nginxBuild(dir, label)
  for (let i = 0; i < mb; i++) appendFileSync(path, randomBytes(1 << 20))
  return path
}

async function serving(): Promise<void> {
  expect(await httpGet(h.address, h.httpPort, '/health')).toEqual({ status: 200, body: 'ok\n' })
}

describe('stage, swap, restore (SshHost + install.ts)', () => {
  let oldSha: string
  let oldInode: string

  it('stageBinary + swapBinary put a new build in place, keeping the old file for a rollback', async () => {
    const { staging, previous } = sidePaths(live())
    const build = nginxBuild(dir, 'stage-a')
    const sha = sha256Of(build)
    oldSha = sha256Of(onHost(live()))
    oldInode = fileInode(onHost(live()))
    expect(sha).not.toBe(oldSha)
    expect(exeInode(h.nginxPid)).toBe(oldInode)

    const progress: UploadProgress[] = []
    const staged = await stageBinary(host, {
      localPath: build,
      sha256: sha,
      livePath: live(),
      onProgress: p => progress.push(p)
    })
    expect(staged.sent).toBe(true)
    expect(staged.bytes).toBe(statSync(build).size)
    expect(progress.at(-1)).toEqual({ transferred: staged.bytes, total: staged.bytes })
    // Staged beside the live path, checked, executable; the live file not touched yet.
    expect(sha256Of(onHost(staging))).toBe(sha)
    expect(mode(onHost(staging))).toBe(0o755)
    expect(sha256Of(onHost(live()))).toBe(oldSha)

    await swapBinary(host, live(), sha)
    expect(sha256Of(onHost(live()))).toBe(sha)
    expect(mode(onHost(live()))).toBe(0o755)
    expect(existsSync(onHost(staging))).toBe(false)
    // The previous file is the very inode the running master was started from.
    expect(sha256Of(onHost(previous))).toBe(oldSha)
    expect(fileInode(onHost(previous))).toBe(oldInode)
    expect(exeInode(h.nginxPid)).toBe(oldInode)
    expect(sb.nginxMasters(h)).toEqual([h.nginxPid])
    await serving()
  })

  it('stageBinary writes a new file: a symlink planted at the staging name is replaced, its target untouched', async () => {
    const { staging } = sidePaths(live())
    const victim = path.join(path.dirname(onHost(staging)), 'victim')
    writeFileSync(victim, 'precious\n', { mode: 0o666 })
    chmodSync(victim, 0o666) // writable by the SSH user: only the upload's own care protects it
    rmSync(onHost(staging), { force: true })
    symlinkSync('victim', onHost(staging))
    const build = nginxBuild(dir, 'symlinked')
    const staged = await stageBinary(host, { localPath: build, sha256: sha256Of(build), livePath: live() })
    expect(staged.sent).toBe(true)
    expect(readFileSync(victim, 'utf8')).toBe('precious\n')
    expect(lstatSync(onHost(staging)).isSymbolicLink()).toBe(false)
    expect(sha256Of(onHost(staging))).toBe(sha256Of(build))
    rmSync(onHost(staging))
    rmSync(victim)
  })

  it('restorePrevious puts the old file back with one rename (and is a no-op when already done)', async () => {
    const { previous } = sidePaths(live())
    await restorePrevious(host, live(), oldSha)
    expect(sha256Of(onHost(live()))).toBe(oldSha)
    expect(fileInode(onHost(live()))).toBe(oldInode)
    expect(existsSync(onHost(previous))).toBe(false)
    await restorePrevious(host, live(), oldSha)
    expect(sha256Of(onHost(live()))).toBe(oldSha)
    await expect(restorePrevious(host, live(), 'f'.repeat(64))).rejects.toThrow(/cannot restore/)
  })

  it('does not send a binary the staging file already holds, and re-sends a changed one', async () => {
    const { staging } = sidePaths(live())
    const build = nginxBuild(dir, 'stage-twice')
    const sha = sha256Of(build)
    expect((await stageBinary(host, { localPath: build, sha256: sha, livePath: live() })).sent).toBe(true)
    const before = statSync(onHost(staging))

    const mark = sshdLogMark(h)
    const progress: UploadProgress[] = []
    const again = await stageBinary(host, {
      localPath: build,
      sha256: sha,
      livePath: live(),
      onProgress: p => progress.push(p)
    })
    expect(again).toEqual({ sent: false, bytes: statSync(build).size, uploadMs: 0 })
    expect(progress).toEqual([])
    expect(statSync(onHost(staging)).mtimeMs).toBe(before.mtimeMs)
    expect(statSync(onHost(staging)).ino).toBe(before.ino)

    appendFileSync(onHost(staging), 'tampered')
    const third = await stageBinary(host, {
      localPath: build,
      sha256: sha,
      livePath: live(),
      onProgress: p => progress.push(p)
    })
    expect(third.sent).toBe(true)
    expect(sha256Of(onHost(staging))).toBe(sha)
    // Every byte streamed again (the progress of the upload counts them).
    expect(progress.at(-1)).toEqual({ transferred: statSync(build).size, total: statSync(build).size })
    // On the connection already open: no second login.
    expect(sshdLogSince(h, mark)).not.toMatch(/Accepted publickey/)
    rmSync(onHost(staging))
  })

  it('swapBinary refuses a staged file changed since its check: the live file untouched, nothing kept beside it', async () => {
    const { staging, previous } = sidePaths(live())
    rmSync(onHost(previous), { force: true })
    const build = nginxBuild(dir, 'stage-tampered')
    const sha = sha256Of(build)
    await stageBinary(host, { localPath: build, sha256: sha, livePath: live() })
    const liveBefore = readFileSync(onHost(live()))
    appendFileSync(onHost(staging), 'changed after the check')
    const error = await swapBinary(host, live(), sha).catch((e: unknown) => e)
    expect((error as Error).message).toMatch(
      new RegExp(`the staged file ${staging} is missing or changed \\(sha256 ${sha256Of(onHost(staging))}\\)`)
    )
    expect(readFileSync(onHost(live())).equals(liveBefore)).toBe(true)
    expect(existsSync(onHost(previous))).toBe(false)
    rmSync(onHost(staging))
    const gone = await swapBinary(host, live(), sha).catch((e: unknown) => e)
    expect((gone as Error).message).toMatch(/is missing or changed \(sha256 none\)/)
    expect(existsSync(onHost(previous))).toBe(false)
    await serving()
  })

  it('an upload cut mid-transfer leaves the live binary byte-identical and nginx serving; staging is cleaned up', async () => {
    const { staging } = sidePaths(live())
    const build = bigBuild('cut', 60)
    const sha = sha256Of(build)
    const liveBefore = readFileSync(onHost(live()))
    const master = sb.readPid(h)!
    const session = await sshSessionPid(host)
    let cutAt = -1
    let total = 0
    const error = await stageBinary(host, {
      localPath: build,
      sha256: sha,
      livePath: live(),
      onProgress: p => {
        total = p.total
        if (cutAt < 0 && p.transferred >= 8e6) {
          cutAt = p.transferred
          process.kill(session, 'SIGKILL') // the network dies under the transfer
        }
      }
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect((error as Error).message).toMatch(/while uploading/)
    expect(cutAt).toBeGreaterThan(0)
    expect(cutAt).toBeLessThan(total)

    expect(readFileSync(onHost(live())).equals(liveBefore)).toBe(true)
    expect(sb.readPid(h)).toBe(master)
    expect(sb.nginxMasters(h)).toEqual([master])
    expect(existsSync(onHost(h.pidFile + '.oldbin'))).toBe(false)
    await serving()
    // stageBinary reconnected to remove the partial staging file.
    expect(existsSync(onHost(staging))).toBe(false)
    expect(logged.some(m => /reconnected/.test(m))).toBe(true)

    // The same Host, reconnected, can send it now.
    const retry = await stageBinary(host, { localPath: build, sha256: sha, livePath: live() })
    expect(retry.sent).toBe(true)
    expect(sha256Of(onHost(staging))).toBe(sha)
    rmSync(onHost(staging))
  })
})

describe('through the action (dist/index.js under Node 24)', () => {
  it('an unchanged binary is not sent again: the second run says unchanged and uploads nothing', async () => {
    sb.nginxStart(h, { reset: true })
    const build = nginxBuild(dir, 'twice')
    const inputs = { ...sandboxInputs(sb, [h]), binary: build }

    const first = await runAction(inputs)
    expect(first.outputs.result).toBe('upgraded')
    expect(first.log).toMatch(/\[upload\] sent /)
    const servingPid = Number(first.outputs['new-pid'])
    expect(sb.readPid(h)).toBe(servingPid)

    const mark = sshdLogMark(h)
    // With the trace on (RUNNER_DEBUG=1, as a debug re-run sets it): every upload is a trace line.
    const second = await runAction(inputs, { env: { RUNNER_DEBUG: '1' } })
    expect(second.code).toBe(0)
    expect(second.outputs.result).toBe('unchanged')
    expect(second.log).toMatch(/already has sha256 .*nothing to do/)
    expect(second.log).not.toMatch(/\[upload\]/)
    expect(second.log).not.toMatch(/USR2/)
    // sshd: the run logged in; the trace: the staging file was read, nothing was uploaded.
    const s = await until(() => {
      const t = sshdLogSince(h, mark)
      return /Disconnected from user/.test(t) ? t : ''
    })
    expect(s).toMatch(/Accepted publickey for zd/)
    expect(second.log).toMatch(/::debug::.*\$ sha256sum -- /)
    expect(second.log).not.toMatch(/::debug::.*: upload /)
    expect(sb.readPid(h)).toBe(servingPid)
    expect(sha256Of(onHost(live()))).toBe(sha256Of(build))
  })

  /** Runs the action and calls `cut` once the transfer to the staging file is under way. */
  async function runAndCut(inputs: Record<string, string>, cut: () => void | Promise<void>) {
    const staging = onHost(sidePaths(live()).staging)
    let cutDone = false
    let finished = false
    const running = runAction(inputs).finally(() => (finished = true))
    const uploading = () => existsSync(staging) && statSync(staging).size > 0
    await until(() => finished || uploading(), 60_000, 2)
    if (!finished && uploading()) {
      await cut()
      cutDone = true
    }
    const run = await running
    return { run, cutDone }
  }

  it('a run killed mid-upload leaves the live binary intact and nginx serving; the next run upgrades', async () => {
    sb.nginxStart(h, { reset: true })
    const staging = onHost(sidePaths(live()).staging)
    rmSync(staging, { force: true })
    const build = bigBuild('killed', 60)
    const inputs = { ...sandboxInputs(sb, [h]), binary: build }
    const liveBefore = readFileSync(onHost(live()))
    const master = sb.readPid(h)!

    const { run: killed, cutDone } = await runAndCut(inputs, () => {
      const [action] = childPids(/dist\/index\.js/)
      expect(action).toBeDefined()
      process.kill(action!, 'SIGKILL')
    })
    expect(cutDone).toBe(true)
    expect(killed.signal).toBe('SIGKILL')
    expect(killed.log).not.toMatch(/\[upload\] sent/)
    // Killed mid-transfer: an incomplete staging file remains; the live path never held it.
    expect(existsSync(staging)).toBe(true)
    expect(sha256Of(staging)).not.toBe(sha256Of(build))
    expect(readFileSync(onHost(live())).equals(liveBefore)).toBe(true)
    expect(sb.nginxMasters(h)).toEqual([master])
    expect(sb.readPid(h)).toBe(master)
    await serving()

    // A run killed without its post step keeps the host's deploy lock until the lease ends; the
    // next run refuses before changing anything and says how to remove it by hand.
    let next = await runAction(inputs)
    const lock = /rm -r -- '([^']+)'/.exec(next.log)
    if (next.outputs.result !== 'upgraded' && lock) {
      expect(next.log).toMatch(/Nothing was changed on this host/)
      expect(readFileSync(onHost(live())).equals(liveBefore)).toBe(true)
      expect(sb.exec(h, ['rm', '-r', '--', lock[1]!]).status).toBe(0)
      next = await runAction(inputs)
    }
    expect(next.outputs.result).toBe('upgraded')
    expect(next.log).toMatch(/\[upload\] sent 6\d\.\d MB/)
    expect(sha256Of(onHost(live()))).toBe(sha256Of(build))
    await serving()
  })

  it('a connection cut mid-upload never touches the live binary; the action reconnects, re-sends and upgrades', async () => {
    sb.nginxStart(h, { reset: true })
    const staging = onHost(sidePaths(live()).staging)
    rmSync(staging, { force: true })
    const build = bigBuild('cut-action', 60)
    const sha = sha256Of(build)
    const inputs = { ...sandboxInputs(sb, [h]), binary: build }
    const liveBefore = readFileSync(onHost(live()))
    const master = sb.readPid(h)!
    const mine = await sshSessionPid(host)

    const { run, cutDone } = await runAndCut(inputs, async () => {
      const theirs = sshdSessions(h).filter(p => p !== mine)
      expect(theirs.length).toBeGreaterThan(0)
      // Freeze the action's connection mid-transfer, look at the host, then cut it.
      for (const p of theirs) process.kill(p, 'SIGSTOP')
      try {
        await sleep(100)
        expect(sha256Of(staging)).not.toBe(sha) // really mid-transfer
        expect(readFileSync(onHost(live())).equals(liveBefore)).toBe(true)
        expect(sb.nginxMasters(h)).toEqual([master])
        await serving()
      } finally {
        for (const p of theirs) process.kill(p, 'SIGKILL')
      }
    })
    expect(cutDone).toBe(true)
    expect(run.log).toMatch(
      /connection was lost \(the connection closed while uploading to \/srv\/app\/sbin\/\.nginx\.zerodown-new\)/
    )
    expect(run.log).toMatch(/reconnected/)
    expect(run.outputs.result).toBe('upgraded')
    expect(run.log).toMatch(/\[upload\] sent 6\d\.\d MB .*sha256 checked on the host/)
    expect(sha256Of(onHost(live()))).toBe(sha)
    expect(existsSync(staging)).toBe(false)
    await serving()
  })
})
