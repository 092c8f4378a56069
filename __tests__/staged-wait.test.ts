/**
 * The wait that lets the config test follow the upload on the host (STAGED_WAIT), with the real
 * upload command (UPLOAD_COMMAND) under a local sh: the gate opens only for a whole file with the
 * binary's sha256, whatever was at the path before, and the wait lets the host's shell go soon
 * after the upload failed or never came (the verify then sends its commands itself). The
 * sandbox tests (nginx-ahead, upgrade) are the proof on a real host.
 */
import { afterEach, describe, expect, it } from '@jest/globals'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UPLOAD_COMMAND } from '../src/host/stream-upload.js'
import { STAGED_WAIT } from '../src/strategies/hot-upgrade/staged-ahead.js'

const dirs: string[] = []
const mounts: string[] = []
afterEach(() => {
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m])
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'zd-staged-'))
  dirs.push(d)
  return d
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Runs a sh script with arguments and optional stdin; resolves with its exit status. */
function sh(script: string, args: string[], stdin?: Buffer[]): Promise<number | null> {
  const c = spawn('sh', ['-c', script, 'sh', ...args], { stdio: ['pipe', 'ignore', 'ignore'] })
  const done = new Promise<number | null>(resolve => c.on('close', code => resolve(code)))
  c.stdin.on('error', () => undefined) // a failed upload stops reading
  void (async () => {
    for (const chunk of stdin ?? []) {
      c.stdin.write(chunk)
      await new Promise(r => setTimeout(r, 100))
    }
    c.stdin.end()
  })()
  return done
}

/** The upload as the host runs it: the path on the first line, then the file, in slow chunks. */
const upload = (path: string, data: Buffer) =>
  sh(UPLOAD_COMMAND, [], [Buffer.from(`${path}\n`), data.subarray(0, 1000), data.subarray(1000)])

const binary = Buffer.concat([Buffer.from('#!/bin/sh\nexit 0\n'), Buffer.alloc(300_000, 7)])

describe('STAGED_WAIT: the config test follows the upload on the host', () => {
  it('opens when the upload wrote the whole file with its sha256, even over a stale one', async () => {
    const d = scratch()
    const path = join(d, '.nginx.zerodown-new')
    // An earlier run's file, executable, with other bytes: never taken for the new one.
    writeFileSync(path, 'stale', { mode: 0o755 })
    const waiting = sh(STAGED_WAIT, [path, sha(binary)])
    await new Promise(r => setTimeout(r, 300))
    const [up, wait] = await Promise.all([upload(path, binary), waiting])
    expect([up, wait]).toEqual([0, 0])
  })

  it('stays closed for a whole file with another sha256, and lets the shell go without waiting its 60 s', async () => {
    const d = scratch()
    const path = join(d, '.nginx.zerodown-new')
    const [up, wait] = await Promise.all([
      upload(path, binary),
      sh(STAGED_WAIT, [path, sha(Buffer.from('other'))])
    ])
    expect([up, wait]).toEqual([0, 1])
  }, 30_000)

  it('stays closed when the upload fails part way (it removes what it wrote) or never comes', async () => {
    const d = scratch()
    // A file system with room for a fifth of the binary: cat fails part way, as on a full disk.
    const small = join(d, 'small')
    mkdirSync(small)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', small])
    mounts.push(small)
    const path = join(small, '.nginx.zerodown-new')
    const [up, wait] = await Promise.all([upload(path, binary), sh(STAGED_WAIT, [path, sha(binary)])])
    expect([up, wait]).toEqual([92, 1])
    expect(existsSync(path)).toBe(false)
    expect(await sh(STAGED_WAIT, [join(d, 'never'), sha(binary)])).toBe(1)
  }, 30_000)
})
