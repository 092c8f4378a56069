/**
 * Host keys and authentication as teams set them up, against real sshd hosts that have an
 * ed25519 and an RSA host key, as distributions install them (127.0.0.211-213): a known_hosts
 * file with only the RSA line (which OpenSSH's ssh accepts), only the RSA fingerprint,
 * @cert-authority lines, an ssh-agent instead of a key, and a jump host with its own passphrase
 * or password. Each run deploys the binary already live: it connects, checks, and ends unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'

let sb: Sandbox
let h: SandboxHost
let bastion: SandboxHost
let target: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ first: 211, count: 3, rsaHostKey: true })
  ;[h, bastion, target] = sb.hosts as [SandboxHost, SandboxHost, SandboxHost]
  dir = scratchDir('zerodown-ssh-auth-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** The line of host x in one of the sandbox's files (known_hosts, known_hosts.rsa, fingerprints.rsa). */
const lineOf = (file: string, x: SandboxHost) =>
  readFileSync(join(sb.dir, file), 'utf8')
    .split('\n')
    .find(l => l.startsWith(`[${x.address}]:`))!

/** The deploy of the binary the host already runs (the sandbox copies /usr/sbin/nginx). */
const check = (over: Record<string, string>, env: Record<string, string> = {}): Promise<ActionRun> =>
  runAction({ ...sandboxInputs(sb, [h]), binary: '/usr/sbin/nginx', ...over }, { env, timeoutMs: 60_000 })

function expectUnchanged(r: ActionRun) {
  if (r.outputs.result !== 'unchanged') console.log(r.log)
  expect(r.outputs.result).toBe('unchanged')
  expect(r.code).toBe(0)
}

/** How sshd logged each accepted login: "publickey ED25519", "password", ... */
function logins(x: SandboxHost): string[] {
  const log = readFileSync(`${x.root}/sshd.log`, 'utf8')
  return [...log.matchAll(/^Accepted (\w+) for zd from \S+ port \d+ ssh2(?:: (\S+))?/gm)].map(m =>
    [m[1], m[2]].filter(Boolean).join(' ')
  )
}

describe('host keys as OpenSSH negotiates them', () => {
  it('known-hosts with only the RSA line: OpenSSH connects, and so does the action', () => {
    const kh = join(dir, 'rsa-only')
    writeFileSync(kh, lineOf('known_hosts.rsa', h) + '\n')
    const ssh = spawnSync(
      'ssh',
      [
        '-F',
        '/dev/null',
        '-o',
        'BatchMode=yes',
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        `UserKnownHostsFile=${kh}`,
        '-i',
        sb.privateKeyPath,
        '-p',
        String(h.sshPort),
        `${sb.user}@${h.address}`,
        'true'
      ],
      { encoding: 'utf8' }
    )
    expect([ssh.status, ssh.stderr]).toEqual([0, ''])
    return check({ 'known-hosts': lineOf('known_hosts.rsa', h) }).then(expectUnchanged)
  })

  it('host-fingerprints with only the RSA fingerprint', async () => {
    const fp = lineOf('fingerprints.rsa', h).split(' ')[1]!
    expectUnchanged(await check({ 'known-hosts': '', 'host-fingerprints': fp }))
  })

  it('a fingerprint of no key of the host fails, listing every key it has', async () => {
    const other = lineOf('fingerprints.rsa', target).split(' ')[1]!
    const r = await check({ 'known-hosts': '', 'host-fingerprints': other })
    expect(r.outputs.result).toBe('failed')
    expect(r.log).toMatch(
      /HOST KEY MISMATCH for 127\.0\.0\.211:2222: none of its host keys \(ssh-ed25519 SHA256:\S+, ssh-rsa SHA256:\S+\) has a fingerprint in host-fingerprints/
    )
  })

  it('@cert-authority alone is refused with a clear message', async () => {
    const ca = `@cert-authority [${h.address}]:${h.sshPort} ${lineOf('known_hosts', h).split(' ').slice(1).join(' ')}`
    const r = await check({ 'known-hosts': ca })
    expect(r.outputs.result).toBe('failed')
    expect(r.log).toContain(
      `known-hosts trusts [${h.address}]:${h.sshPort} only through a @cert-authority line, and host certificates cannot be checked here`
    )
  })
})

describe('authentication teams use', () => {
  let agent: ChildProcess | undefined
  afterAll(() => {
    if (agent?.pid) process.kill(agent.pid, 'SIGTERM')
  })

  it('a key logs in with one signed request, not a query first: one round trip less (the bundle signs first)', async () => {
    const sshdLog = () => readFileSync(`${h.root}/sshd.log`, 'utf8')
    const mark = sshdLog().length
    expectUnchanged(await check({}))
    const since = sshdLog().slice(mark)
    expect(since).toMatch(/^Accepted publickey for zd from \S+ port \d+ ssh2: ED25519/m)
    // What sshd logs when a client asks whether a key would do before it signs (OpenSSH's ssh,
    // and ssh2 unpatched, do).
    expect(since).not.toMatch(/Postponed publickey/)
  })

  it('an ssh-agent (SSH_AUTH_SOCK) when no key is given', async () => {
    const sock = join(dir, 'agent.sock')
    agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' })
    for (let i = 0; i < 100 && spawnSync('test', ['-S', sock]).status !== 0; i++)
      await new Promise(r => setTimeout(r, 20))
    const add = spawnSync('ssh-add', [sb.privateKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: sock } })
    expect(add.status).toBe(0)
    const before = logins(h).length
    const r = await check({ 'private-key': '' }, { SSH_AUTH_SOCK: sock })
    expectUnchanged(r)
    expect(logins(h).slice(before)).toEqual(['publickey ED25519'])
  })

  const viaBastion = (over: Record<string, string>) =>
    runAction(
      {
        ...sandboxInputs(sb, [target]),
        'known-hosts': sb.knownHosts(),
        binary: '/usr/sbin/nginx',
        'jump-host': `${sb.user}@${bastion.address}:${bastion.sshPort}`,
        ...over
      },
      { timeoutMs: 60_000 }
    )

  it('a jump host with its own encrypted key and passphrase', async () => {
    const b = logins(bastion).length
    const t = logins(target).length
    const r = await viaBastion({
      'jump-private-key': readFileSync(sb.passphraseKeyPath, 'utf8'),
      'jump-passphrase': sb.passphrase
    })
    expectUnchanged(r)
    expect(logins(bastion).slice(b)).toEqual(['publickey ED25519'])
    expect(logins(target).slice(t)).toEqual(['publickey ED25519'])
  })

  it('a jump host with its own password, the hosts with their key', async () => {
    const b = logins(bastion).length
    const t = logins(target).length
    expectUnchanged(await viaBastion({ 'jump-password': sb.password }))
    expect(logins(bastion).slice(b)).toEqual(['password'])
    expect(logins(target).slice(t)).toEqual(['publickey ED25519'])
  })
})
