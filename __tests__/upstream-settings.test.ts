import { describe, expect, it } from '@jest/globals'
import { settingsWith } from './helpers/inputs.js'

const UPSTREAM = {
  strategy: 'upstream',
  hosts: 'web1, web2, web3',
  'binary-path': '/srv/app/bin/app',
  'upstream-host': 'deploy@lb1:2222',
  'upstream-file': '/etc/nginx/conf.d/app.conf',
  'upstream-name': 'app',
  'restart-command': 'systemctl restart app',
  'health-url': 'http://{host}:8080/health'
}

describe('strategy upstream inputs', () => {
  it('reads them with their defaults', () => {
    const s = settingsWith(UPSTREAM)
    expect(s.strategy).toBe('upstream')
    expect(s.upstream).toEqual({
      host: { host: 'lb1', port: 2222, user: 'deploy', label: 'deploy@lb1:2222' },
      file: '/etc/nginx/conf.d/app.conf',
      name: 'app',
      server: '{host}:80',
      restartCommand: 'systemctl restart app',
      canaryWeight: 1,
      canaryDurationMs: 0,
      maxErrorRate: 0.01,
      watchdogLeaseMs: 120_000
    })
    expect(settingsWith({}).strategy).toBe('hot-upgrade')
    expect(settingsWith({}).upstream).toBeUndefined()
  })
  it('reads the canary settings', () => {
    const s = settingsWith({
      ...UPSTREAM,
      'canary-weight': '2',
      'canary-duration': '90s',
      'max-error-rate': '0.5%'
    })
    expect(s.upstream).toMatchObject({ canaryWeight: 2, canaryDurationMs: 90_000, maxErrorRate: 0.005 })
  })
  it("reads the load balancer watchdog's lease", () => {
    expect(settingsWith({ ...UPSTREAM, 'upstream-watchdog-lease': '30s' }).upstream?.watchdogLeaseMs).toBe(
      30_000
    )
  })
  it.each([
    [{ 'upstream-host': '' }, "Input 'upstream-host': is required when strategy is upstream"],
    [{ 'upstream-file': '' }, "Input 'upstream-file': is required when strategy is upstream"],
    [{ 'upstream-name': '' }, "Input 'upstream-name': is required when strategy is upstream"],
    [{ 'restart-command': '' }, "Input 'restart-command': is required when strategy is upstream"],
    [{ 'binary-path': '' }, "Input 'binary-path': is required when strategy is upstream"],
    [
      { 'upstream-file': 'conf.d/app.conf' },
      "Input 'upstream-file': 'conf.d/app.conf' is not an absolute path"
    ],
    [{ 'upstream-name': 'app backend' }, "Input 'upstream-name': 'app backend' is not an upstream name"],
    [{ 'upstream-server': 'web:80' }, "Input 'upstream-server': 'web:80' has no {host}"],
    [{ 'upstream-server': '{host}:80;' }, 'is not a server address'],
    [{ 'max-error-rate': '1' }, "Input 'max-error-rate': '1' is not a percentage from 0% to 100%"],
    [{ 'canary-weight': '0' }, "Input 'canary-weight': '0' is not a whole number from 1 to 1000"],
    [{ 'canary-duration': '1m', canary: '0' }, "Input 'canary-duration': is set but canary is 0"],
    [{ 'health-url': '' }, "Input 'health-url': is empty and so is health-command"],
    [{ 'upstream-watchdog-lease': 'soon' }, "Input 'upstream-watchdog-lease': 'soon' is not a duration"],
    [{ 'upstream-watchdog-lease': '1s' }, "Input 'upstream-watchdog-lease'"],
    [{ strategy: 'blue-green' }, "Input 'strategy': 'blue-green' is not one of hot-upgrade, upstream"]
  ])('refuses %p', (over, message) => {
    expect(() => settingsWith({ ...UPSTREAM, ...over })).toThrow(message)
  })
  it('refuses upstream inputs with the hot upgrade', () => {
    expect(() => settingsWith({ 'upstream-host': 'lb1' })).toThrow(
      "Input 'upstream-host': is set but strategy is hot-upgrade. Set strategy: upstream, or remove it"
    )
    expect(() => settingsWith({ 'upstream-watchdog-lease': '1m' })).toThrow(
      "Input 'upstream-watchdog-lease': is set but strategy is hot-upgrade"
    )
  })

  it("takes canary-duration's default (0s, passed along by GitHub and the CLI) as unset with the hot upgrade", () => {
    expect(settingsWith({ 'canary-duration': '0s' }).strategy).toBe('hot-upgrade')
    expect(settingsWith({ 'canary-duration': '0' }).upstream).toBeUndefined()
    expect(() => settingsWith({ 'canary-duration': '30s' })).toThrow(
      "Input 'canary-duration': is set but strategy is hot-upgrade"
    )
  })
})
