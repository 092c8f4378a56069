/**
 * Integration tests of the SSH layer (SshHost) against the sandbox's real OpenSSH sshd and nginx:
 * host key checks that fail closed before anything is sent, every way to log in, argv quoting
 * through a real remote shell (property test), sudo -n, the HTTP tunnel, timeouts and lost
 * connections. Sandbox hosts 127.0.0.11 and 127.0.0.12.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import fc from 'fast-check'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { CommandTimeoutError, ConnectionLostError, SudoPasswordError } from '../src/host/host.js'
import { GATE_CLOSED } from '../src/host/remote-shell.js'
import { HostKeyError, SshHost } from '../src/host/ssh-host.js'
import { scratchDir } from './helpers/action.js'
import { hostOptions, sleep, sshSessionPid, sshdLogMark, sshdLogSince, until } from './helpers/ssh.js'

let sb: Sandbox
let h: SandboxHost
let other: SandboxHost
let scratch: string
/** Every line SshHost logged during this file (checked for secrets at the end). */
const logged: string[] = []
const log = (m: string) => logged.push(m)

beforeAll(() => {
  sb = sandboxUp({ first: 11, count: 2 })
  ;[h, other] = sb.hosts as [SandboxHost, SandboxHost]
  scratch = scratchDir('zerodown-ssh-test-')
})

afterAll(() => {
  sb?.down()
  if (scratch) rmSync(scratch, { recursive: true, force: true })
})

/** sshd lines that show a client got as far as authenticating, or ran something. */
const AUTH_OR_SESSION = /Accepted|Postponed|Failed|publickey|password|User child|Starting session/

/**
 * A key that, once authenticated, creates a marker file (a forced command), so that a session
 * leaves a trace even if sshd logged nothing; the marker's path on this machine, not there yet.
 */
function forcedKey(name: string): { credentials: { privateKey: string }; markerOnMachine: string } {
  const keyFile = join(scratch, name)
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', keyFile])
  const marker = `/tmp/zd-hostkey-${name}`
  appendFileSync(
    sb.hostPath(h, '/run/zerodown-sandbox/authorized_keys'),
    `command="touch ${marker}" ${readFileSync(keyFile + '.pub', 'utf8')}`
  )
  const markerOnMachine = sb.hostPath(h, marker)
  rmSync(markerOnMachine, { force: true })
  return { credentials: { privateKey: readFileSync(keyFile, 'utf8') }, markerOnMachine }
}

describe('host keys: fail closed, nothing sent on a refusal', () => {
  it('refuses a host that presents another key than known-hosts holds, naming both fingerprints, before authenticating', async () => {
    const { credentials: forced, markerOnMachine } = forcedKey('forced')

    // Control: with the right known_hosts line the key logs in and the marker appears.
    const ok = await SshHost.connect(hostOptions(sb, h, { credentials: forced, log }))
    await ok.close()
    expect(await until(() => existsSync(markerOnMachine))).toBe(true)

    // The refused attempt gets a key and marker of its own: the control's side shell may still
    // be touching the first marker after its connection closed.
    const refused = forcedKey('forced-refused')

    // The known_hosts line of ANOTHER host, written for this host's name and port.
    const wrongLine = other.hostKeyLine.replace(`[${other.address}]`, `[${h.address}]`)
    expect(wrongLine.startsWith(`[${h.address}]:${h.sshPort} ssh-ed25519 `)).toBe(true)
    const mark = sshdLogMark(h)
    const error = await SshHost.connect(
      hostOptions(sb, h, {
        credentials: refused.credentials,
        hostKeys: { knownHosts: wrongLine, fingerprints: [], insecureSkip: false },
        log
      })
    ).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HostKeyError)
    const message = (error as Error).message
    expect(message).toContain(`expected ssh-ed25519 ${other.fingerprint}`)
    expect(message).toContain(`received ssh-ed25519 ${h.fingerprint}`)
    expect(message).toContain(`[${h.address}]:${h.sshPort}`)

    // sshd saw the connection end during key exchange ([preauth]) and no authentication at all.
    const seen = await until(() => {
      const s = sshdLogSince(h, mark)
      return /Connection from/.test(s) &&
        /(Disconnected from|Connection closed by|Received disconnect).*\[preauth\]/.test(s)
        ? s
        : ''
    })
    expect(seen).toMatch(/Connection from 127\.0\.0\.1 port \d+ on 127\.0\.0\.11 port 2222/)
    expect(seen).not.toMatch(AUTH_OR_SESSION)
    await sleep(300)
    expect(existsSync(refused.markerOnMachine)).toBe(false)
  })

  it('fails closed without known-hosts or fingerprints, naming the received key and the fix', async () => {
    const mark = sshdLogMark(h)
    const error = await SshHost.connect(
      hostOptions(sb, h, { hostKeys: { fingerprints: [], insecureSkip: false }, log })
    ).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HostKeyError)
    expect((error as Error).message).toContain(h.fingerprint)
    expect((error as Error).message).toMatch(/no trusted host key.*known-hosts.*host-fingerprints/)
    const seen = await until(() => (/\[preauth\]/.test(sshdLogSince(h, mark)) ? sshdLogSince(h, mark) : ''))
    expect(seen).toMatch(/Connection from/)
    expect(seen).not.toMatch(AUTH_OR_SESSION)
  })

  it('refuses a fingerprint that is not the host key, naming the key received and where the trusted ones come from', async () => {
    const keyFile = join(scratch, 'not-the-host')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile])
    const wrong = execFileSync('ssh-keygen', ['-lf', keyFile + '.pub'], { encoding: 'utf8' }).split(' ')[1]!
    expect(wrong).toMatch(/^SHA256:/)
    const error = await SshHost.connect(
      hostOptions(sb, h, { hostKeys: { fingerprints: [wrong], insecureSkip: false }, log })
    ).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HostKeyError)
    expect((error as Error).message).toContain('HOST KEY MISMATCH')
    expect((error as Error).message).toContain(
      `ssh-ed25519 ${h.fingerprint}) has a fingerprint in host-fingerprints`
    )
    expect((error as Error).message).not.toContain(wrong)
  })

  it('accepts the host by its SHA256 fingerprint alone', async () => {
    const host = await SshHost.connect(
      hostOptions(sb, h, { hostKeys: { fingerprints: [h.fingerprint], insecureSkip: false }, log })
    )
    try {
      expect((await host.run(['echo', 'fingerprint ok'])).stdout).toBe('fingerprint ok\n')
    } finally {
      await host.close()
    }
  })

  it('accepts a known_hosts file hashed by ssh-keygen -H (real OpenSSH hashing)', async () => {
    const file = join(scratch, 'known_hosts_hashed')
    writeFileSync(file, sb.knownHosts())
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' })
    const hashed = readFileSync(file, 'utf8')
    expect(hashed).not.toContain(h.address)
    const host = await SshHost.connect(
      hostOptions(sb, h, { hostKeys: { knownHosts: hashed, fingerprints: [], insecureSkip: false }, log })
    )
    await host.close()
  })
})

describe('logging in', () => {
  async function whoami(
    credentials: Parameters<typeof hostOptions>[2]
  ): Promise<{ user: string; log: string }> {
    const mark = sshdLogMark(h)
    const host = await SshHost.connect(hostOptions(sb, h, { ...credentials, log }))
    try {
      const user = (await host.run(['id', '-un'])).stdout.trim()
      return { user, log: sshdLogSince(h, mark) }
    } finally {
      await host.close()
    }
  }

  it('with a password', async () => {
    const r = await whoami({ credentials: { password: sb.password } })
    expect(r.user).toBe('zd')
    expect(r.log).toMatch(/Accepted password for zd/)
  })

  it('with a passphrase-protected key', async () => {
    const r = await whoami({
      credentials: { privateKey: readFileSync(sb.passphraseKeyPath, 'utf8'), passphrase: sb.passphrase }
    })
    expect(r.user).toBe('zd')
    expect(r.log).toMatch(/Accepted publickey for zd .* ED25519/)
  })

  it('with an RSA key in PEM format', async () => {
    const key = readFileSync(sb.rsaKeyPath, 'utf8')
    expect(key).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/)
    const r = await whoami({ credentials: { privateKey: key } })
    expect(r.user).toBe('zd')
    expect(r.log).toMatch(/Accepted publickey for zd .* RSA/)
  })

  it('a wrong passphrase or password fails without showing it', async () => {
    const badPassphrase = 'not-the-passphrase-31337'
    const e1 = await SshHost.connect(
      hostOptions(sb, h, {
        credentials: { privateKey: readFileSync(sb.passphraseKeyPath, 'utf8'), passphrase: badPassphrase },
        reconnectAttempts: 1,
        log
      })
    ).then(
      () => new Error('connected with a wrong passphrase'),
      (e: unknown) => e as Error
    )
    expect(e1).toBeInstanceOf(Error)
    expect(e1.message).not.toMatch(/connected with a wrong/)
    expect(e1.message).not.toContain(badPassphrase)
    const badPassword = 'not-the-password-31337'
    const e2 = await SshHost.connect(
      hostOptions(sb, h, { credentials: { password: badPassword }, log })
    ).then(
      () => new Error('connected with a wrong password'),
      (e: unknown) => e as Error
    )
    expect(e2).toBeInstanceOf(Error)
    expect(e2.message).toMatch(/cannot connect over SSH/)
    expect(e2.message).not.toContain(badPassword)
  })
})

describe('one connection, one long-lived shell', () => {
  let host: SshHost
  let mark: number
  beforeAll(async () => {
    mark = sshdLogMark(h)
    host = await SshHost.connect(hostOptions(sb, h, { log }))
  })
  afterAll(async () => {
    await host?.close()
  })

  it('sends any argv byte-exact through the real remote shell (property test)', async () => {
    // Pieces a shell would interpret if quoting failed, mixed with arbitrary Unicode.
    const nasty = fc.constantFrom(
      "'",
      '"',
      '\\',
      '$(id -u)',
      '`id -u`',
      '$HOME',
      '${PATH}',
      '$1',
      '$@',
      '\n',
      '\r\n',
      '\t',
      ' ',
      '*',
      '?',
      '[a-z]',
      '[',
      ']',
      '~',
      '~root',
      '-',
      '--',
      '-n',
      '-e',
      '--help',
      ';',
      '&&',
      '|',
      '>',
      '<',
      '&',
      '#',
      '!',
      '%s',
      '%b',
      '\\0',
      "'\\''",
      'é',
      '日本語',
      '😀',
      '\u200b',
      '\u00a0',
      '\x7f',
      '\x1b[31m'
    )
    const piece = fc.oneof(nasty, fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }))
    const word = fc.array(piece, { maxLength: 6 }).map(parts => parts.join('').replace(/\0/g, ''))
    let runs = 0
    await fc.assert(
      fc.asyncProperty(fc.array(word, { minLength: 1, maxLength: 8 }), async words => {
        runs++
        const r = await host.run(['printf', '%s\\0', ...words])
        expect(r.code).toBe(0)
        expect(r.stderr).toBe('')
        const expected = Buffer.concat(words.map(w => Buffer.from(w + '\0', 'utf8')))
        expect(Buffer.from(r.stdout, 'utf8').equals(expected)).toBe(true)
      }),
      { numRuns: 300 }
    )
    expect(runs).toBeGreaterThanOrEqual(300)
  })

  it('sends the same byte-exact through sudo -n', async () => {
    const privileged = await SshHost.connect(hostOptions(sb, h, { sudo: true, log }))
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 4 }),
          async raw => {
            const words = raw.map(w => w.replace(/\0/g, ''))
            const r = await privileged.run(['printf', '%s\\0', ...words], { sudo: true })
            expect(r.code).toBe(0)
            expect(r.stdout).toBe(words.map(w => w + '\0').join(''))
          }
        ),
        { numRuns: 25 }
      )
    } finally {
      await privileged.close()
    }
  })

  it('sends a 120 KB argument and a line that looks like a framing marker unchanged', async () => {
    // Linux takes at most 128 KiB per argument (MAX_ARG_STRLEN).
    const big = Array.from({ length: 120_000 }, (_, i) => String.fromCharCode(32 + ((i * 7919) % 95))).join(
      ''
    )
    const r = await host.run(['sh', '-c', 'printf %s "$1" | sha256sum', 'sh', big])
    expect(r.stderr).toBe('')
    expect(r.stdout.split(' ')[0]).toBe(createHash('sha256').update(big).digest('hex'))
    const fake = `\nZD000000000000000000000000 0\n`
    const r2 = await host.run(['printf', '%s', fake])
    expect(r2.stdout).toBe(fake)
  })

  it('keeps stdout, stderr and the exit status apart; a non-zero status is not an error', async () => {
    const r = await host.run(['sh', '-c', 'echo out; echo err >&2; exit 7'])
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', code: 7 })
    // A command cannot change the shell the next one runs in, nor read its stdin.
    await host.run(['sh', '-c', 'cd /; exit 0'])
    expect((await host.run(['cat'])).stdout).toBe('')
  })

  it('commands issued together are pipelined on the one shell: each gets its own output and status, in order', async () => {
    // Written at once, run by the shell one after the other: a later one sees what an earlier one did.
    const file = `/srv/app/pipelined-${process.pid}`
    const results = await Promise.all([
      host.run(['sh', '-c', 'printf a > "$1"; echo one; echo e1 >&2; exit 3', 'sh', file]),
      host.run(['sh', '-c', 'cat "$1"; printf b >> "$1"; exit 0', 'sh', file]),
      ...Array.from({ length: 20 }, (_, i) => host.run(['sh', '-c', `echo ${i}; exit ${i % 5}`])),
      host.run(['cat', file]),
      host.run(['rm', '-f', '--', file])
    ])
    expect(results[0]).toEqual({ stdout: 'one\n', stderr: 'e1\n', code: 3 })
    expect(results[1]).toEqual({ stdout: 'a', stderr: '', code: 0 })
    for (let i = 0; i < 20; i++) expect(results[2 + i]).toEqual({ stdout: `${i}\n`, stderr: '', code: i % 5 })
    expect(results[22]!.stdout).toBe('ab')
    expect(results[23]!.code).toBe(0)
  })

  it('gates: a command sent together with another runs only if that one succeeded, decided by the host', async () => {
    const file = `/srv/app/gated-${process.pid}`
    const [ok, after, failed, skipped, never] = await Promise.all([
      host.run(['true'], { gate: { set: 'first' } }),
      host.run(['sh', '-c', 'echo ran; exit 4'], { gate: { need: 'first' } }),
      host.run(['sh', '-c', 'echo no >&2; exit 1'], { gate: { set: 'second' } }),
      host.run(['touch', '--', file], { gate: { need: 'second' } }),
      host.run(['touch', '--', file], { gate: { need: 'unknown' } })
    ])
    expect(ok).toEqual({ stdout: '', stderr: '', code: 0 })
    expect(after).toEqual({ stdout: 'ran\n', stderr: '', code: 4 })
    expect(failed).toEqual({ stdout: '', stderr: 'no\n', code: 1 })
    expect(skipped).toEqual({ stdout: '', stderr: '', code: GATE_CLOSED })
    expect(never.code).toBe(GATE_CLOSED)
    expect(existsSync(sb.hostPath(h, file))).toBe(false)
    // A gate stays as its last command left it; a new shell (after a timeout) has none open.
    expect((await host.run(['true'], { gate: { need: 'first' } })).code).toBe(0)
    await expect(host.run(['sleep', '5'], { timeoutMs: 300 })).rejects.toThrow(CommandTimeoutError)
    expect((await host.run(['true'], { gate: { need: 'first' } })).code).toBe(GATE_CLOSED)
    await expect(host.run(['true'], { aside: true, gate: { need: 'first' } })).rejects.toThrow(/side shell/)
    await expect(host.run(['true'], { gate: { set: 'x; rm' } })).rejects.toThrow(/short lowercase word/)
  })

  it('readFile returns a file as it is, and null for a missing file', async () => {
    const name = `/srv/app/odd name 'q' $(x) ü.txt`
    writeFileSync(sb.hostPath(h, name), 'line 1\nzwei ü\n')
    expect(await host.readFile(name)).toBe('line 1\nzwei ü\n')
    expect(await host.readFile('/srv/app/does-not-exist')).toBeNull()
    expect(await host.readFile(h.confPath)).toBe(readFileSync(sb.hostPath(h, h.confPath), 'utf8'))
  })

  it('GETs http://127.0.0.11:8080/health through the SSH connection', async () => {
    expect(await host.http(`http://${h.address}:${h.httpPort}/health`, 5000)).toEqual({
      status: 200,
      body: 'ok\n'
    })
    const pid = await host.http(`http://${h.address}:${h.httpPort}/pid`, 5000)
    expect(sb.nginxWorkers(h, h.nginxPid)).toContain(Number(pid.body.trim()))
    await expect(host.http(`http://${h.address}:1/health`, 5000)).rejects.toThrow(/cannot reach/)
  })

  /** A one-page HTTP server on the host's address that sees every connection: `answer` decides per connection. */
  async function countingServer(answer: (n: number, socket: Socket) => boolean) {
    let connections = 0
    const server: Server = createServer(socket => {
      const n = ++connections
      socket.on('error', () => undefined)
      if (!answer(n, socket)) return
      socket.once('data', () =>
        socket.end('HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nwarm ok\r\n')
      )
    })
    await new Promise<void>(r => server.listen(0, h.address, r))
    const port = (server.address() as { port: number }).port
    return { url: `http://${h.address}:${port}/health`, connections: () => connections, server }
  }

  it('a GET whose connection was opened ahead (warmHttp) is sent on that connection', async () => {
    const s = await countingServer(() => true)
    try {
      host.warmHttp(s.url)
      // The forwarded channel connects from the host's side at once, before any GET.
      expect(await until(() => s.connections() === 1)).toBe(true)
      expect(await host.http(s.url, 5000)).toEqual({ status: 200, body: 'warm ok\r\n' })
      await sleep(200)
      expect(s.connections()).toBe(1)
    } finally {
      s.server.close()
    }
  })

  it('a warmed connection the server closed, before or as the GET goes, is replaced by a new one', async () => {
    // 1 (warmed): closed at once, before the GET; 2: answers. 3 (warmed): reset when the
    // request arrives, unanswered; 4: answers.
    const s = await countingServer((n, socket) => {
      if (n === 1) socket.destroy()
      if (n === 3) socket.once('data', () => socket.resetAndDestroy())
      return n === 2 || n === 4
    })
    try {
      host.warmHttp(s.url)
      expect(await until(() => s.connections() === 1)).toBe(true)
      await sleep(200)
      expect(await host.http(s.url, 5000)).toEqual({ status: 200, body: 'warm ok\r\n' })
      expect(s.connections()).toBe(2)
      host.warmHttp(s.url)
      expect(await until(() => s.connections() === 3)).toBe(true)
      expect((await host.http(s.url, 5000)).status).toBe(200)
      expect(s.connections()).toBe(4)
    } finally {
      s.server.close()
    }
  })

  it('a command that times out fails with CommandTimeoutError and the Host stays usable', async () => {
    const started = Date.now()
    const e = await host.run(['sleep', '5'], { timeoutMs: 300 }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(CommandTimeoutError)
    expect((e as Error).message).toMatch(/sleep 5.*300ms/)
    expect(Date.now() - started).toBeLessThan(4000)
    expect((await host.run(['echo', 'after timeout'])).stdout).toBe('after timeout\n')
  })

  it('an aside command runs on the side shell while the shell is busy; a timed-out one leaves it usable', async () => {
    const gate = `/tmp/zerodown-aside-gate-${process.pid}`
    rmSync(gate, { force: true })
    // The shell waits for a file that only an aside command creates: were aside commands queued
    // behind the shell, this would end by the timeout, not by the gate.
    const busy = host.run(['sh', '-c', 'while [ ! -e "$1" ]; do sleep 0.05; done; echo opened', 'sh', gate], {
      timeoutMs: 30_000
    })
    for (let i = 0; i < 3; i++)
      expect((await host.run(['echo', `aside ${i}`], { aside: true })).stdout).toBe(`aside ${i}\n`)
    await host.run(['touch', '--', gate], { aside: true })
    expect((await busy).stdout).toBe('opened\n')
    const e = await host.run(['sleep', '5'], { aside: true, timeoutMs: 300 }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(CommandTimeoutError)
    expect((await host.run(['echo', 'aside again'], { aside: true })).stdout).toBe('aside again\n')
    rmSync(gate, { force: true })
  })

  it('an upload whose channel was opened ahead (warmUpload) sends its bytes on that channel and says their sha256', async () => {
    const local = join(scratch, 'warm-upload')
    const bytes = Buffer.concat([
      Buffer.from('line one\nline two\n'),
      createHash('sha256').update('x').digest()
    ])
    writeFileSync(local, bytes)
    const remote = '/tmp/zd-warm-upload'
    const since = sshdLogMark(h)
    host.warmUpload()
    // What landed comes back with the upload's end: its sha256 as the host computed it, mode 0755.
    expect(await host.upload(local, remote)).toBe(createHash('sha256').update(bytes).digest('hex'))
    expect(readFileSync(sb.hostPath(h, remote))).toEqual(bytes)
    expect(statSync(sb.hostPath(h, remote)).mode & 0o777).toBe(0o755)
    // The warmed channel carried it: one session started, not a second for the upload.
    const sessions = () => (sshdLogSince(h, since).match(/Starting session: command/g) ?? []).length
    expect(await until(() => sessions() >= 1)).toBe(true)
    await sleep(300)
    expect(sessions()).toBe(1)
    rmSync(sb.hostPath(h, remote), { force: true })
  })

  it('round trip of a trivial command (logged)', async () => {
    const times: number[] = []
    for (let i = 0; i < 50; i++) {
      const t = performance.now()
      await host.run(['true'])
      times.push(performance.now() - t)
    }
    times.sort((a, b) => a - b)
    const median = times[25]!
    console.log(
      `SshHost.run(['true']) round trip over the long-lived shell: median ${median.toFixed(2)} ms, max ${times[49]!.toFixed(2)} ms (50 runs)`
    )
    expect(median).toBeLessThan(2000)
  })

  it('did all of that over one SSH connection with its shell and side shell (plus the timed-out ones)', async () => {
    const s = sshdLogSince(h, mark)
    expect(s.match(/Connection from/g)).toHaveLength(2) // this Host and the sudo one
    expect(s.match(/Accepted publickey for zd/g)).toHaveLength(2)
    // This Host's shell and side shell, the shell's replacements after the gates' timeout and
    // after its own, the side shell's after its own, the warmed upload's channel, the sudo Host's
    // shell and side shell: none per aside command.
    expect(s.match(/Starting session: command/g)).toHaveLength(8)
  })
})

describe('sudo', () => {
  it('runs privileged commands through sudo -n', async () => {
    const host = await SshHost.connect(hostOptions(sb, h, { sudo: true, log }))
    try {
      expect(host.sudo).toBe(true)
      expect((await host.run(['id', '-u'])).stdout.trim()).not.toBe('0')
      expect((await host.run(['id', '-u'], { sudo: true })).stdout).toBe('0\n')
    } finally {
      await host.close()
    }
  })

  it('says that sudo asked for a password when the user has no NOPASSWD rule', async () => {
    const host = await SshHost.connect(hostOptions(sb, h, { user: sb.noSudoUser, sudo: true, log }))
    try {
      expect((await host.run(['id', '-un'])).stdout).toBe(`${sb.noSudoUser}\n`)
      const e = await host.run(['id', '-u'], { sudo: true }).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(SudoPasswordError)
      expect((e as Error).message).toMatch(/sudo asked for a password/)
      expect((e as Error).message).toContain(`${sb.noSudoUser}@${h.address}:${h.sshPort}`)
      expect((e as Error).message).toMatch(/NOPASSWD/)
    } finally {
      await host.close()
    }
  })
})

describe('a lost connection', () => {
  it('fails the running command with ConnectionLostError; the next command reconnects, verifying the host key again', async () => {
    const host = await SshHost.connect(hostOptions(sb, h, { log }))
    try {
      const session = await sshSessionPid(host)
      const running = host.run(['sleep', '3']).catch((x: unknown) => x)
      await sleep(100)
      const mark = sshdLogMark(h)
      process.kill(session, 'SIGKILL')
      expect(await running).toBeInstanceOf(ConnectionLostError)
      expect((await host.run(['echo', 'back'])).stdout).toBe('back\n')
      expect(logged.some(m => /reconnected/.test(m))).toBe(true)
      expect(sshdLogSince(h, mark)).toMatch(/Accepted publickey for zd/)
    } finally {
      await host.close()
    }
  })
})

describe('secrets', () => {
  it('no log line of SshHost shows a key, passphrase or password', () => {
    const secrets = [sb.password, sb.passphrase, 'not-the-passphrase-31337', 'not-the-password-31337']
    for (const key of [sb.privateKeyPath, sb.passphraseKeyPath, sb.rsaKeyPath])
      for (const line of readFileSync(key, 'utf8').split('\n'))
        if (line.length >= 8 && !line.startsWith('-----')) secrets.push(line)
    expect(logged.length).toBeGreaterThan(0)
    for (const m of logged) for (const s of secrets) expect(m).not.toContain(s)
  })
})
