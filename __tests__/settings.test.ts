import { describe, expect, it } from '@jest/globals'
import { parseDuration, formatDuration } from '../src/duration.js'
import { parseHostTarget, readSettings, SettingsError } from '../src/settings.js'
import { settingsWith } from './helpers/inputs.js'

function errorOf(over: Record<string, string>): SettingsError {
  try {
    settingsWith(over)
  } catch (e) {
    expect(e).toBeInstanceOf(SettingsError)
    return e as SettingsError
  }
  throw new Error('expected a SettingsError')
}

describe('durations', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['90', 90_000],
    ['1.5', 1500],
    ['1h', 3_600_000]
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms))
  it.each(['', 'abc', '5 minutes', '-1s', '1e3', '5mm'])('%j is not a duration', text =>
    expect(parseDuration(text)).toBeNull()
  )
  it('formats for people', () => {
    expect(formatDuration(850)).toBe('850ms')
    expect(formatDuration(12_345)).toBe('12.3s')
    expect(formatDuration(245_000)).toBe('4m05s')
  })
})

describe('host targets', () => {
  it('parses user, host and port', () => {
    expect(parseHostTarget('hosts', 'deploy@web1.example.com:2222', 'root', 22)).toMatchObject({
      user: 'deploy',
      host: 'web1.example.com',
      port: 2222,
      label: 'deploy@web1.example.com:2222'
    })
    expect(parseHostTarget('hosts', '10.0.0.5', 'root', 22)).toMatchObject({
      user: 'root',
      port: 22,
      label: 'root@10.0.0.5'
    })
    expect(parseHostTarget('hosts', '[2001:db8::1]:2200', 'ops', 22)).toMatchObject({
      host: '2001:db8::1',
      port: 2200
    })
  })
  it.each([
    ['web1;rm -rf /', 'not a host name'],
    ['web1:99999', 'out of range'],
    ['$(id)@web1', 'not a valid user name'],
    ['2001:db8::1', 'must be in brackets'],
    ['web`id`', 'not a host name'],
    ['web1:ssh', 'not a number']
  ])('%j is refused (%s)', (item, problem) => {
    expect(() => parseHostTarget('hosts', item, 'root', 22)).toThrow(problem)
  })
})

describe('readSettings', () => {
  it('reads a minimal deploy with defaults', () => {
    const s = settingsWith({ hosts: 'a, b:2200\n# comment\nops@c' })
    expect(s.hosts.map(h => h.label)).toEqual(['root@a', 'root@b:2200', 'ops@c'])
    expect(s).toMatchObject({
      mode: 'deploy',
      pidFile: '/run/nginx.pid',
      startTimeoutMs: 30_000,
      healthChecks: 3,
      healthIntervalMs: 1000,
      healthTimeoutMs: 60_000,
      pollIntervalMs: 250,
      drainTimeoutMs: 300_000,
      canary: 1,
      maxParallel: 1,
      sudo: false,
      keepReleases: 5
    })
  })
  it('one host has no canary', () => expect(settingsWith({}).canary).toBe(0))

  it.each([
    [{ hosts: '' }, 'hosts', 'is required'],
    [{ hosts: 'a\na' }, 'hosts', 'twice'],
    [{ 'drain-timeout': '5 minutes' }, 'drain-timeout', 'not a duration'],
    [{ 'health-checks': '0' }, 'health-checks', 'whole number from 1'],
    [{ sudo: 'maybe' }, 'sudo', 'not a boolean'],
    [{ mode: 'upgrade' }, 'mode', 'not one of deploy, rollback'],
    [{ 'pid-file': 'run/nginx.pid' }, 'pid-file', 'not an absolute path'],
    [{ 'binary-path': '/srv/../etc/passwd' }, 'binary-path', "'..'"],
    [{ 'binary-path': '/srv/app\n/x' }, 'binary-path', 'line break'],
    [{ 'private-key': 'ssh-ed25519 AAAAC3Nza... me@laptop' }, 'private-key', 'not a private key'],
    [{ 'host-fingerprints': 'MD5:aa:bb' }, 'host-fingerprints', 'not a SHA256 fingerprint'],
    [{ 'host-fingerprints': '', 'known-hosts': '' }, 'known-hosts', 'cannot be verified'],
    [{ 'health-url': 'ftp://x/health' }, 'health-url', 'not http or https'],
    [{ 'health-expect': '(' }, 'health-expect', 'not a valid regular expression'],
    [{ binary: '' }, 'binary', 'required when mode is deploy'],
    [{ version: '1.x; rm' }, 'version', 'neither a semantic version nor a Debian version'],
    [{ 'jump-host': 'bastion;id' }, 'jump-host', 'not a host name'],
    [{ 'jump-password': 'pw' }, 'jump-password', 'is set but jump-host is empty'],
    [{ 'jump-host': 'bastion', 'jump-passphrase': 'pp' }, 'jump-passphrase', 'jump-private-key is empty'],
    [{ 'private-key': '' }, 'private-key', 'no ssh-agent is running (SSH_AUTH_SOCK is not set)'],
    [{ hosts: 'web1\0' }, 'hosts', 'NUL byte']
  ])('%j fails naming %s', (over, input, problem) => {
    const e = errorOf(over as Record<string, string>)
    expect(e.input).toBe(input)
    expect(e.message).toContain(`Input '${input}'`)
    expect(e.message).toContain(problem)
  })

  it('an ssh-agent stands in for a key: SSH_AUTH_SOCK from the environment', () => {
    const inputs: Record<string, string> = {
      hosts: 'web1',
      'host-fingerprints': 'SHA256:' + 'A'.repeat(43),
      binary: './nginx'
    }
    const s = readSettings(name => inputs[name] ?? '', { SSH_AUTH_SOCK: '/tmp/agent.sock' })
    expect(s.privateKey).toBeUndefined()
    expect(s.agentSocket).toBe('/tmp/agent.sock')
  })

  it('insecure-skip-host-key-check allows no known hosts', () => {
    const s = settingsWith({ 'host-fingerprints': '', 'insecure-skip-host-key-check': 'true' })
    expect(s.insecureSkipHostKeyCheck).toBe(true)
  })
})
