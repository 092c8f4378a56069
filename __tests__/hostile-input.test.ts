/**
 * Hostile and broken input: hosts, paths, versions and URLs with shell metacharacters, line
 * breaks, control characters, `..`, NUL bytes and very long values; a missing, empty or
 * non-program binary; a key in the wrong format, damaged, or locked by a passphrase not given.
 * Each gets a clear error that names the input, before any connection (the bundle is run against a
 * real sandbox host, whose sshd logs every connection), and what is accepted reaches the host's
 * shell as literal words only.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inspectBinary } from '../src/local/binary.js'
import { checkKeys } from '../src/keys.js'
import { SettingsError } from '../src/settings.js'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { settingsWith } from './helpers/inputs.js'
import { sshdLogMark, sshdLogSince } from './helpers/ssh.js'

const settingsError = (over: Record<string, string>): SettingsError => {
  try {
    settingsWith(over)
  } catch (e) {
    if (e instanceof SettingsError) return e
    throw e
  }
  throw new Error(`accepted: ${JSON.stringify(over).slice(0, 200)}`)
}

// [input, value, what the message must say]
const HOSTILE: [string, string, RegExp][] = [
  ['hosts', 'web1;rm -rf /', /'web1;rm -rf \/' is not a host name/],
  ['hosts', 'web$(id)', /is not a host name/],
  ['hosts', 'web`id`', /is not a host name/],
  ['hosts', '-oProxyCommand=touch /tmp/x', /is not a host name/],
  ['hosts', 'web1\n$(reboot)', /'\$\(reboot\)' is not a host name/],
  ['hosts', 'us;er@web1', /user 'us;er' is not a valid user name/],
  ['hosts', 'web1:22;id', /port '22;id' is not a number/],
  ['hosts', 'web1\0', /contains a NUL byte/],
  ['hosts', 'a'.repeat(300), /is not a host name/],
  ['user', 'root$(id)', /is not a valid user name/],
  ['pid-file', 'run/nginx.pid', /is not an absolute path/],
  ['pid-file', '/run/../etc/shadow', /contains a '\.\.' segment/],
  ['pid-file', '/run/nginx.pid\n/etc/passwd', /contains a line break/],
  ['pid-file', '/run/nginx.pid\0', /contains a NUL byte/],
  ['pid-file', '/run/\u001b[2Jnginx.pid', /contains a control character/],
  ['pid-file', '/run/nginx\t.pid', /contains a control character/],
  ['pid-file', '/' + 'a'.repeat(5000), /is 5001 characters long \(at most 4096\)/],
  ['binary-path', '/srv/app/sbin/../../../bin/sh', /contains a '\.\.' segment/],
  ['release-dir', 'var/lib/zerodown', /is not an absolute path/],
  ['release-dir', '/var/lib/zerodown/..', /contains a '\.\.' segment/],
  ['release-dir', '/var/lib/\u007fzerodown', /contains a control character/],
  ['version', '1.2.3;id', /is neither a semantic version nor a Debian version/],
  ['version', '$(id)', /is neither a semantic version nor a Debian version/],
  ['version', '1.2.3-../../x', /is neither a semantic version nor a Debian version/],
  ['version', '1.' + '2'.repeat(300), /at most 256/],
  ['rollback-to', '../1.0.0', /is neither a semantic version nor a Debian version/],
  ['health-url', 'file:///etc/passwd', /'file:' is not http or https/],
  ['health-url', 'http://127.0.0.1/\r\nX-Injected: 1', /contains a line break/],
  ['health-url', 'http://' + 'a'.repeat(3000), /at most 2048/],
  ['health-command', 'true\0', /contains a NUL byte/],
  ['binary', 'nginx\0', /contains a NUL byte/],
  ['binary', 'x'.repeat(5000), /at most 4096/],
  [
    'private-key',
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB user@host',
    /is not a private key in OpenSSH or PEM format/
  ],
  [
    'private-key',
    'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n',
    /is not a private key in OpenSSH or PEM format/
  ],
  ['host-fingerprints', 'SHA256:$(id)', /is not a SHA256 fingerprint/],
  ['port', '22;id', /is not a whole number/],
  ['lock-lease', '1s', /out of range/],
  ['watchdog', 'sometimes', /is not a boolean/],
  ['jump-host', 'bastion;id', /is not a host name/]
]

describe('hostile input: settings', () => {
  const named = HOSTILE.map(([input, value, says]) => {
    const shown = JSON.stringify(value)
    return [
      input,
      shown.length > 48 ? `${shown.slice(0, 40)}…" (${value.length} chars)` : shown,
      value,
      says
    ] as const
  })
  it.each(named)('%s %s is refused, naming the input', (input, _shown, value, says) => {
    const e = settingsError({ [input]: value })
    expect(e.input).toBe(input)
    expect(e.message.startsWith(`Input '${input}': `)).toBe(true)
    expect(e.message).toMatch(says)
    // The message never carries a control character into the log.
    expect(e.message).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/)
  })

  it('takes paths with shell metacharacters as they are: they are quoted, never interpreted', () => {
    const s = settingsWith({
      'pid-file': "/run/nginx.pid;touch /tmp/x'$(id)`id`",
      'release-dir': '/var/lib/zerodown/a b*?[c]'
    })
    expect(s.pidFile).toBe("/run/nginx.pid;touch /tmp/x'$(id)`id`")
    expect(s.releaseDir).toBe('/var/lib/zerodown/a b*?[c]')
  })
})

let sb: Sandbox
let h: SandboxHost
let dir: string
beforeAll(() => {
  sb = sandboxUp({ first: 68, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir()
})
afterAll(() => sb?.down())

describe('hostile input: keys and the binary, on the runner', () => {
  const settingsWithKey = (privateKey: string, passphrase?: string) =>
    settingsWith({ 'private-key': privateKey, passphrase: passphrase ?? '' })
  const keyError = (privateKey: string, passphrase?: string): SettingsError => {
    try {
      checkKeys(settingsWithKey(privateKey, passphrase))
    } catch (e) {
      if (e instanceof SettingsError) return e
      throw e
    }
    throw new Error('the key was accepted')
  }

  it('accepts working keys: ed25519, PEM RSA, and an encrypted key with its passphrase', () => {
    expect(() => checkKeys(settingsWithKey(sb.privateKey()))).not.toThrow()
    expect(() => checkKeys(settingsWithKey(readFileSync(sb.rsaKeyPath, 'utf8')))).not.toThrow()
    expect(() =>
      checkKeys(settingsWithKey(readFileSync(sb.passphraseKeyPath, 'utf8'), sb.passphrase))
    ).not.toThrow()
  })

  it('refuses a damaged key, an encrypted one without its passphrase, and a wrong passphrase, never showing them', () => {
    const good = sb.privateKey()
    const lines = good.trim().split('\n')
    const damaged =
      [lines[0], ...lines.slice(1, -1).map(l => l.replace(/[A-Za-z]/g, 'A')), lines.at(-1)].join('\n') + '\n'
    const e1 = keyError(damaged)
    expect(e1.input).toBe('private-key')
    expect(e1.message).toMatch(/cannot be read as a private key/)
    const locked = readFileSync(sb.passphraseKeyPath, 'utf8')
    const e2 = keyError(locked)
    expect(e2.input).toBe('private-key')
    expect(e2.message).toMatch(/is encrypted and no passphrase is given. Pass its passphrase in passphrase/)
    const e3 = keyError(locked, 'not-the-passphrase')
    expect(e3.input).toBe('passphrase')
    expect(e3.message).toMatch(/does not unlock private-key/)
    for (const e of [e1, e2, e3]) {
      expect(e.message).not.toContain('not-the-passphrase')
      for (const line of lines.slice(1, -1)) expect(e.message).not.toContain(line)
    }
  })

  it('refuses a missing, empty, non-file or non-program binary', async () => {
    const empty = join(dir, 'empty')
    writeFileSync(empty, '')
    const text = join(dir, 'notes.txt')
    writeFileSync(text, 'this is not a server binary\n')
    const folder = join(dir, 'folder')
    mkdirSync(folder)
    for (const [path, says] of [
      [join(dir, 'missing'), /does not exist on the runner/],
      [empty, /is empty/],
      [text, /is neither an ELF executable nor a #! script/],
      [folder, /is not a regular file/],
      ['/dev/null', /is not a regular file/]
    ] as const) {
      const e = await inspectBinary(path).catch(err => err as Error)
      expect(e).toBeInstanceOf(SettingsError)
      expect((e as SettingsError).input).toBe('binary')
      expect((e as Error).message).toMatch(says)
    }
    const ok = await inspectBinary(nginxBuild(dir, 'fine'))
    expect(ok.arch).toBe('x86_64')
  })
})

describe('hostile input: the action, against a real host', () => {
  it('fails every broken input with a clear error before any connection', async () => {
    const empty = join(dir, 'empty')
    writeFileSync(empty, '')
    const text = join(dir, 'readme.txt')
    writeFileSync(text, 'hello\n')
    const key = sb.privateKey().trim().split('\n')
    const damagedKey = [key[0], ...key.slice(1, -1).map(l => l.replace(/[a-z]/g, 'q')), key.at(-1)].join('\n')
    const good: Record<string, string> = { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'hostile') }
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ 'pid-file': 'run/nginx.pid' }, 'pid-file', /is not an absolute path/],
      [{ 'pid-file': '/' + 'p'.repeat(5000) }, 'pid-file', /at most 4096/],
      [{ 'release-dir': '/var/lib/zerodown/../../etc' }, 'release-dir', /'\.\.' segment/],
      [{ version: '1.0;reboot' }, 'version', /is neither a semantic version nor a Debian version/],
      [{ 'health-url': 'gopher://127.0.0.1/' }, 'health-url', /is not http or https/],
      [{ hosts: `${good.hosts}\nweb2;reboot` }, 'hosts', /'web2;reboot' is not a host name/],
      [{ binary: join(dir, 'missing') }, 'binary', /does not exist on the runner/],
      [{ binary: empty }, 'binary', /is empty/],
      [{ binary: text }, 'binary', /is neither an ELF executable nor a #! script/],
      [{ binary: dir }, 'binary', /is not a regular file/],
      [
        { 'private-key': readFileSync(`${sb.privateKeyPath}.pub`, 'utf8') },
        'private-key',
        /is not a private key in OpenSSH or PEM format/
      ],
      [{ 'private-key': damagedKey }, 'private-key', /cannot be read as a private key/],
      [
        { 'private-key': readFileSync(sb.passphraseKeyPath, 'utf8') },
        'private-key',
        /is encrypted and no passphrase is given/
      ],
      [
        { 'private-key': readFileSync(sb.passphraseKeyPath, 'utf8'), passphrase: 'wrong' },
        'passphrase',
        /does not unlock private-key/
      ]
    ]
    const mark = sshdLogMark(h)
    for (const [over, input, says] of cases) {
      const run = await runAction({ ...good, ...over }, { timeoutMs: 30_000 })
      const why = `${input}: ${run.log.slice(-600)}`
      expect([why, run.code]).toEqual([why, 1])
      expect(run.outputs.result).toBe('failed')
      expect(run.log).toMatch(new RegExp(`::error::Input '${input}': `))
      expect(run.log).toMatch(says)
      expect(run.log).not.toContain('[connect]')
    }
    // sshd (LogLevel VERBOSE) logs every connection: there was none.
    expect(sshdLogSince(h, mark)).not.toContain('Connection from')
    expect(readdirSync(sb.hostPath(h, '/var/lib/zerodown'))).toEqual([])
  })

  it('a release-dir and a pid-file full of shell metacharacters reach the host as literal words only', async () => {
    const weird = "/var/lib/zerodown/we ird'$(touch /tmp/pwned-1)`touch /tmp/pwned-2`;touch /tmp/pwned-3 #*"
    const good: Record<string, string> = { ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'literal') }
    const oldPid = sb.readPid(h)
    // A pid-file that names no file: refused by pre-flight, and nothing ran.
    const refused = await runAction({ ...good, 'pid-file': '/run/nginx.pid;touch /tmp/pwned-4' })
    expect(refused.code).toBe(1)
    expect(refused.log).toContain('pid-file /run/nginx.pid;touch /tmp/pwned-4 holds no pid')
    // A release store at a path that a shell would split, expand and execute: used as it is.
    const run = await runAction({ ...good, 'release-dir': weird })
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(run.log).toContain(`took the deploy lock ${weird}/lock`)
    expect(run.log).toContain(`released the deploy lock ${weird}/lock`)
    expect(existsSync(sb.hostPath(h, `${weird}/state.json`))).toBe(true)
    expect(existsSync(sb.hostPath(h, `${weird}/lock`))).toBe(false)
    expect(existsSync(sb.hostPath(h, `${weird}/watchdog/log`))).toBe(true)
    for (const n of [1, 2, 3, 4]) expect(existsSync(sb.hostPath(h, `/tmp/pwned-${n}`))).toBe(false)
    // Slashes in the value make folders, as they would for any path; nothing else is special.
    expect(readdirSync(sb.hostPath(h, '/var/lib/zerodown'))).toEqual(["we ird'$(touch "])
    expect(sb.readPid(h)).not.toBe(oldPid)
    expect(readFileSync(sb.hostPath(h, h.binaryPath)).equals(readFileSync(good.binary!))).toBe(true)
  })
})
