/**
 * The committed bundle (dist/index.js) run the way GitHub runs it: Node 24, INPUT_* variables,
 * GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, against real sandbox hosts (127.0.0.14, .15):
 * a real hot upgrade, secrets never printed, bad inputs and wrong host keys refused before
 * anything reaches the host.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { NODE24, nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { exeInode, fileInode, sha256Of, sleep, sshdLogMark, sshdLogSince, until } from './helpers/ssh.js'

let sb: Sandbox
let h: SandboxHost
let other: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 14, count: 2 })
  ;[h, other] = sb.hosts as [SandboxHost, SandboxHost]
  dir = scratchDir('zerodown-bundle-test-')
})

afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const onHost = (p: string) => sb.hostPath(h, p)
const label = () => `${sb.user}@${h.address}:${h.sshPort}`

describe('dist/index.js as GitHub runs it', () => {
  it('runs under Node 24, as runs.using: node24 does', () => {
    expect(execFileSync(NODE24, ['--version'], { encoding: 'utf8' })).toMatch(/^v24\./)
    expect(readFileSync('action.yml', 'utf8')).toMatch(/using: ['"]?node24/)
  })

  it('hot-upgrades a sandbox host: outputs, the new master runs the new file, the old one is gone, a job summary', async () => {
    sb.nginxStart(h, { reset: true })
    const oldPid = sb.readPid(h)!
    const build = nginxBuild(dir, 'hot')
    const sha = sha256Of(build)

    const run = await runAction({ ...sandboxInputs(sb, [h]), binary: build })
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(run.outputs['old-pid']).toBe(String(oldPid))
    const newPid = Number(run.outputs['new-pid'])
    expect(newPid).not.toBe(oldPid)

    // The host: the pid file names the new master; it is alive, runs the new file, has workers.
    expect(sb.readPid(h)).toBe(newPid)
    expect(sb.isAlive(newPid)).toBe(true)
    expect(await until(() => !sb.isAlive(oldPid))).toBe(true)
    expect(sb.nginxMasters(h)).toEqual([newPid])
    expect(sha256Of(onHost(h.binaryPath))).toBe(sha)
    expect(exeInode(newPid)).toBe(fileInode(onHost(h.binaryPath)))
    const workers = sb.nginxWorkers(h, newPid)
    expect(workers.length).toBeGreaterThan(0)
    expect(await httpGet(h.address, h.httpPort, '/health')).toEqual({ status: 200, body: 'ok\n' })
    expect(workers).toContain(Number((await httpGet(h.address, h.httpPort, '/pid')).body.trim()))

    const report = JSON.parse(run.outputs.report!) as {
      result: string
      hosts: { host: string; result: string; sha256: string }[]
    }
    expect(report.result).toBe('upgraded')
    expect(report.hosts).toEqual([
      expect.objectContaining({ host: label(), result: 'upgraded', sha256: sha })
    ])
    expect(Number(run.outputs.duration)).toBeGreaterThan(0)

    expect(run.summary).toMatch(/zerodown: .*upgraded/)
    expect(run.summary).toContain(label())
    expect(leaks(run.log, keyBodyLines(sb.privateKeyPath))).toEqual([])
  })
})

/** Non-empty lines of a private key file that are secret (not the BEGIN/END lines). */
function keyBodyLines(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map(l => l.trim())
    .filter(l => l.length >= 8 && !l.startsWith('-----'))
}

/** Log lines that show a secret outside an ::add-mask:: command. */
function leaks(log: string, secrets: string[]): string[] {
  return log
    .split('\n')
    .filter(line => !line.startsWith('::add-mask::'))
    .filter(line => secrets.some(s => line.includes(s)))
}

describe('secrets', () => {
  it('never prints the private key, its passphrase or the password; the runner learns all of them as masks first', async () => {
    sb.nginxStart(h, { reset: true })
    const key = readFileSync(sb.passphraseKeyPath, 'utf8')
    const body = keyBodyLines(sb.passphraseKeyPath)
    expect(body.length).toBeGreaterThan(2)
    const run = await runAction({
      ...sandboxInputs(sb, [h]),
      'private-key': key,
      passphrase: sb.passphrase,
      password: sb.password,
      binary: nginxBuild(dir, 'secrets')
    })
    expect(run.outputs.result).toBe('upgraded')
    const secrets = [sb.passphrase, sb.password, ...body]
    expect(leaks(run.log, secrets)).toEqual([])
    expect(leaks(JSON.stringify(run.outputs), secrets)).toEqual([])
    expect(leaks(run.summary, secrets)).toEqual([])

    // Each secret (and each line of the key) is registered with ::add-mask:: before anything else is printed.
    const lines = run.log.split('\n')
    const firstOther = lines.findIndex(l => l !== '' && !l.startsWith('::add-mask::'))
    for (const s of [sb.passphrase, sb.password, ...body]) {
      const at = lines.indexOf(`::add-mask::${s}`)
      expect(at).toBeGreaterThanOrEqual(0)
      expect(at).toBeLessThan(firstOther)
    }
  })

  it('a refused password appears nowhere in the log, nor in the error', async () => {
    const wrong = 'Wr0ng-pa55word-zerodown'
    const mark = sshdLogMark(h)
    const inputs: Record<string, string> = {
      ...sandboxInputs(sb, [h]),
      password: wrong,
      binary: nginxBuild(dir, 'pw')
    }
    delete inputs['private-key']
    const run = await runAction(inputs)
    expect(run.code).not.toBe(0)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toMatch(/::error/)
    expect(run.log).toContain(`::add-mask::${wrong}`)
    expect(leaks(run.log, [wrong])).toEqual([])
    expect(sshdLogSince(h, mark)).toMatch(/Failed password for zd/)
  })
})

describe('refused before anything reaches the host', () => {
  it('a bad input (drain-timeout: 5 minutes) fails before any connection, naming the input', async () => {
    const mark = sshdLogMark(h)
    const master = sb.readPid(h)
    const run = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'bad'),
      'drain-timeout': '5 minutes'
    })
    expect(run.code).not.toBe(0)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toMatch(/::error::Input 'drain-timeout': '5 minutes' is not a duration/)
    await sleep(300)
    expect(sshdLogSince(h, mark)).toBe('')
    expect(sb.readPid(h)).toBe(master)
  })

  it('a wrong host key fails the run with both fingerprints; the host saw no login and nothing changed', async () => {
    const mark = sshdLogMark(h)
    const master = sb.readPid(h)
    const liveSha = sha256Of(onHost(h.binaryPath))
    const wrongLine = other.hostKeyLine.replace(`[${other.address}]`, `[${h.address}]`)
    const run = await runAction({
      ...sandboxInputs(sb, [h]),
      'known-hosts': wrongLine,
      binary: nginxBuild(dir, 'wrong-key')
    })
    expect(run.code).not.toBe(0)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toContain(`expected ssh-ed25519 ${other.fingerprint}`)
    expect(run.log).toContain(`received ssh-ed25519 ${h.fingerprint}`)
    const seen = await until(() => (/\[preauth\]/.test(sshdLogSince(h, mark)) ? sshdLogSince(h, mark) : ''))
    expect(seen).toMatch(/Connection from/)
    expect(seen).not.toMatch(/Accepted|Postponed|Failed|publickey|password|Starting session/)
    expect(sb.readPid(h)).toBe(master)
    expect(sha256Of(onHost(h.binaryPath))).toBe(liveSha)
  })
})
