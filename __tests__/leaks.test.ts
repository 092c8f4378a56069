/**
 * Issue #13, item 6: what must not leak. A malformed key's error shows none of its bytes;
 * credentials in health-url appear in no log line, report or summary; a pid file naming pid 1
 * does not print the command lines of init's children. The last two on a real host (127.0.0.172).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { rmSync, writeFileSync } from 'node:fs'
import { checkKeys } from '../src/keys.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { settingsWith } from './helpers/inputs.js'

describe('a malformed key', () => {
  it('is refused without quoting any of its decoded bytes', () => {
    const body = Buffer.from('opensshXkey-v1\0TOPSECRETKEYMATERIAL').toString('base64')
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----\n`
    let message = ''
    try {
      checkKeys(settingsWith({ 'private-key': key }))
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toMatch(
      /^Input 'private-key': cannot be read as a private key \(Unsupported OpenSSH key magic\)/
    )
    expect(message).not.toMatch(/opensshX|key-v1|TOPSECRET/)
  })
})

let sb: Sandbox
let h: SandboxHost
let dir: string
beforeAll(() => {
  sb = sandboxUp({ first: 172, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-leaks-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** The log without the runner's own mask commands (which must carry the secret to mask it). */
const logOf = (run: ActionRun) => run.log.replace(/^::add-mask::.*\n/gm, '')

describe('on a host', () => {
  it('never shows the credentials of health-url in the log, the JSON report or the summary', async () => {
    const run = await runAction({
      ...sandboxInputs(sb, [h]),
      binary: nginxBuild(dir, 'creds'),
      'health-url': 'http://gate-user:s3cret-Pw-42@{host}:8080/no-such-page',
      'health-checks': '1',
      'health-timeout': '2s'
    })
    expect(run.code).toBe(1)
    expect(logOf(run)).toContain('http://***@127.0.0.172:8080/no-such-page answered 404')
    for (const text of [logOf(run), run.outputs.report ?? '', run.summary]) {
      expect(text).not.toContain('s3cret-Pw-42')
      expect(text).not.toContain('gate-user')
    }
    expect(run.log).toMatch(/^::add-mask::s3cret-Pw-42$/m) // and the runner masks it too
  })

  it("refuses a pid file naming pid 1 without listing init's children", async () => {
    sb.nginxStart(h, { reset: true })
    writeFileSync(sb.hostPath(h, '/run/nginx.pid'), '1\n')
    try {
      const run = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'init') })
      expect(run.code).toBe(1)
      expect(run.log).toContain(
        "pid-file /run/nginx.pid names pid 1 (init), which is never a server's master. Check pid-file"
      )
      expect(run.log).not.toMatch(/has a child|sshd|nginx: worker/)
      expect(run.log).not.toMatch(/took the deploy lock/)
    } finally {
      sb.nginxStart(h, { reset: true })
    }
  })
})
