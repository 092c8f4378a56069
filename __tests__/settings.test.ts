import { describe, expect, it } from '@jest/globals'
import { parseDuration, formatDuration } from '../src/duration.js'
import { parseHostTarget, readSettings, SettingsError } from '../src/settings.js'
import { settingsWith } from './helpers/inputs.js'
import { checkPairings, supervisorOf } from '../src/app.js'

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
    const s = settingsWith({
      hosts: 'a, b:2200\n# comment\nops@c',
      'host-fingerprints': ['a', '[b]:2200', 'c'].map(h => `${h}=SHA256:${'A'.repeat(43)}`).join(' ')
    })
    expect(s.hosts.map(h => h.label)).toEqual(['root@a', 'root@b:2200', 'ops@c'])
    expect(s).toMatchObject({
      mode: 'deploy',
      supervisor: 'nginx',
      pidFile: '/run/nginx.pid',
      upgradeSignal: 'HUP',
      verifyCommand: undefined,
      drainTimeoutAction: 'rollback',
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
    [{ hosts: 'web1\0' }, 'hosts', 'NUL byte'],
    [
      { 'health-checks': '5', 'health-interval': '2s', 'health-timeout': '7s' },
      'health-timeout',
      '7.0s can never be enough: 5 checks in a row, one every 2.0s, take at least 8.0s'
    ],
    [{ 'health-checks': '62' }, 'health-timeout', 'Raise health-timeout above 1m01s'],
    [{ 'known-hosts': '# only a comment\n\n' }, 'known-hosts', 'has no host key line'],
    [{ 'known-hosts': 'web1.example.com' }, 'known-hosts', 'Paste the output of ssh-keyscan'],
    [{ 'known-hosts': 'SHA256:' + 'A'.repeat(43) }, 'known-hosts', 'fingerprints go in host-fingerprints'],
    [{ supervisor: 'apache' }, 'supervisor', 'not one of nginx, haproxy, tableflip'],
    [{ supervisor: 'tableflip' }, 'pid-file', 'required with supervisor tableflip'],
    [{ 'upgrade-signal': 'TERM' }, 'upgrade-signal', 'not one of HUP, USR1, USR2'],
    [{ 'upgrade-signal': 'USR1' }, 'upgrade-signal', 'only supervisor tableflip takes it'],
    [
      { supervisor: 'tableflip', 'pid-file': '/run/app.pid', 'drain-timeout-action': 'rollback' },
      'drain-timeout-action',
      'supervisor tableflip cannot honour'
    ]
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

  it('a health gate that can just pass is accepted: (health-checks - 1) x health-interval = health-timeout', () => {
    const s = settingsWith({ 'health-checks': '5', 'health-interval': '2s', 'health-timeout': '8s' })
    expect(s.healthTimeoutMs).toBe(8000)
    expect(
      settingsWith({ 'health-checks': '1', 'health-interval': '5s', 'health-timeout': '1s' }).healthChecks
    ).toBe(1)
  })

  it('known-hosts is accepted with one host key line among comments, markers and hashed names', () => {
    const text = [
      '# web1, checked against the console on 2027-01-15',
      '@revoked old.example.com ssh-rsa AAAAB3NzaC1yc2E=',
      '|1|c2FsdA==|aGFzaA== ecdsa-sha2-nistp256 AAAAE2VjZHNh',
      '[web1.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5'
    ].join('\n')
    expect(settingsWith({ 'known-hosts': text }).knownHosts).toBe(text)
  })

  it('verify-command is kept as written; upgrade-signal takes SIG names in any case', () => {
    const s = settingsWith({ 'verify-command': "{binary} -t -c '/etc/app conf'", 'upgrade-signal': 'sighup' })
    expect(s.verifyCommand).toBe("{binary} -t -c '/etc/app conf'")
    expect(s.upgradeSignal).toBe('HUP')
  })

  it('tableflip: the pid file is required, drain-timeout-action defaults to proceed', () => {
    const s = settingsWith({ supervisor: 'tableflip', 'pid-file': '/run/app.pid', 'upgrade-signal': 'USR2' })
    expect(s).toMatchObject({
      supervisor: 'tableflip',
      pidFile: '/run/app.pid',
      upgradeSignal: 'USR2',
      drainTimeoutAction: 'proceed'
    })
  })

  it('insecure-skip-host-key-check allows no known hosts', () => {
    const s = settingsWith({ 'known-hosts': '', 'insecure-skip-host-key-check': 'true' })
    expect(s.insecureSkipHostKeyCheck).toBe(true)
  })
})

describe('supervisor: haproxy and rollback-fleet', () => {
  it('defaults to nginx, its pid file and rollback-fleet', () => {
    const s = settingsWith({ hosts: 'web1\nweb2' })
    expect(s.supervisor).toBe('nginx')
    expect(s.pidFile).toBe('/run/nginx.pid')
    expect(s.rollbackFleet).toBe(true)
  })

  it("haproxy: HAProxy's pid file, and no rollback-fleet by default (it cannot hold its old workers)", () => {
    const s = settingsWith({ hosts: 'web1\nweb2', supervisor: 'haproxy' })
    expect(s.pidFile).toBe('/run/haproxy.pid')
    expect(s.rollbackFleet).toBe(false)
    expect(settingsWith({ supervisor: 'haproxy', 'pid-file': '/var/run/hap.pid' }).pidFile).toBe(
      '/var/run/hap.pid'
    )
  })

  it('haproxy refuses rollback-fleet: true for a fleet, before any host is touched; one host is fine', () => {
    const fleet = settingsWith({ hosts: 'web1\nweb2', supervisor: 'haproxy', 'rollback-fleet': 'true' })
    expect(() => checkPairings(fleet, supervisorOf(fleet))).toThrow(
      /Input 'rollback-fleet'.*HAProxy \(master-worker\) cannot hold its old process.*Set rollback-fleet: false/
    )
    const one = settingsWith({ supervisor: 'haproxy', 'rollback-fleet': 'true' })
    expect(() => checkPairings(one, supervisorOf(one))).not.toThrow()
  })

  it('an unknown supervisor names the ones there are', () => {
    expect(() => settingsWith({ supervisor: 'apache' })).toThrow(
      /Input 'supervisor'.*not one of nginx, haproxy, tableflip/
    )
  })
})
