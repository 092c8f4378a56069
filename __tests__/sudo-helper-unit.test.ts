/**
 * The sudo helper's pure parts: the committed helper is the rendering of the action's own
 * scripts (so the two cannot drift), it is POSIX sh, every privileged command shape of the nginx
 * hot upgrade has a sub-command, and anything else is refused before it reaches a host.
 */
import { describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { SettingsError } from '../src/settings.js'
import { helperSha256, renderHelper, shQuoted } from '../src/sudo-helper/render.js'
import { HELPER_SCRIPTS, NGINX_WATCHDOG } from '../src/sudo-helper/scripts.js'
import { helperArgs, HelperUnsupportedError } from '../src/sudo-helper/translate.js'
import { watchdogScript } from '../src/safety/watchdog.js'
import { tableflip } from '../src/supervisors/tableflip/index.js'

const tableflipWatchdog = tableflip({ signal: 'HUP', parentWaitMs: 1000 }).watchdog
import { settingsWith } from './helpers/inputs.js'

const HELPER = 'host/zerodown-sudo'

describe('host/zerodown-sudo', () => {
  it('is the rendering of src/sudo-helper (npm run docs writes it), executable', () => {
    expect(readFileSync(HELPER, 'utf8')).toBe(renderHelper())
    expect(statSync(HELPER).mode & 0o111).toBe(0o111)
    expect(helperSha256()).toMatch(/^[0-9a-f]{64}$/)
  })

  it('is POSIX sh (dash parses it) and carries every script verbatim', () => {
    const r = spawnSync('dash', ['-n', HELPER], { encoding: 'utf8' })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const text = renderHelper()
    for (const script of [...Object.values(HELPER_SCRIPTS), NGINX_WATCHDOG]) {
      const trimmed = script.replace(/^\n+|\n+$/g, '')
      expect(text).toContain(`\nS=${shQuoted(trimmed)}\n`)
      // The quoted word is the script again, byte for byte, as sh reads it.
      const back = spawnSync('dash', ['-c', `printf '%s' ${shQuoted(trimmed)}`], { encoding: 'utf8' })
      expect(back.stdout).toBe(trimmed)
    }
  })

  it('runs an argument as data: a path with $(...) is compared, never evaluated', () => {
    // Without a config the helper stops before any sub-command; with one it refuses the path.
    const r = spawnSync('sh', [HELPER, 'rm', '/tmp/$(touch /tmp/zerodown-pwned)'], { encoding: 'utf8' })
    expect(r.status).not.toBe(0)
    expect(spawnSync('test', ['-e', '/tmp/zerodown-pwned']).status).not.toBe(0)
  })
})

describe('helperArgs: each privileged argv as one sub-command', () => {
  it.each([
    [
      ['rm', '-f', '--', '/a'],
      ['rm', '/a']
    ],
    [
      ['rm', '-rf', '--', '/s/releases/x'],
      ['rm-release', '/s/releases/x']
    ],
    [
      ['rmdir', '--', '/a'],
      ['rmdir', '/a']
    ],
    [
      ['mkdir', '-p', '--', '/a'],
      ['mkdir', '/a']
    ],
    [
      ['cp', '--', '/a', '/b'],
      ['cp', '/a', '/b']
    ],
    [
      ['ln', '--', '/a', '/b'],
      ['ln', '/a', '/b']
    ],
    [
      ['ln', '-f', '--', '/a', '/b'],
      ['ln-keep', '/a', '/b']
    ],
    [
      ['mv', '-f', '--', '/a', '/b'],
      ['mv', '/a', '/b']
    ],
    [
      ['chmod', '0755', '--', '/a'],
      ['chmod', '/a']
    ],
    [
      ['sha256sum', '--', '/proc/7/exe'],
      ['sha256', '/proc/7/exe']
    ],
    [
      ['head', '-c', '2', '--', '/a'],
      ['head2', '/a']
    ],
    [
      ['kill', '-s', 'USR2', '--', '42'],
      ['kill', 'USR2', '42']
    ],
    [
      ['/srv/x/.nginx.zerodown-new', '-v'],
      ['version', '/srv/x/.nginx.zerodown-new']
    ],
    [
      ['/n', '-T', '-c', '/c', '-g', 'daemon on;'],
      ['config-test', '/n', '-c', '/c', '-g', 'daemon on;']
    ]
  ])('%j → %j', (argv, want) => {
    expect(helperArgs(argv)).toEqual(want)
  })

  it('maps each of the action scripts to its sub-command, with its arguments', () => {
    for (const [sub, script] of Object.entries(HELPER_SCRIPTS)) {
      if (sub === 'watchdog-launch') continue
      expect(helperArgs(['sh', '-c', script, 'sh', '/a', 'b'])).toEqual([sub, '/a', 'b'])
    }
    const launch = HELPER_SCRIPTS['watchdog-launch']!
    expect(helperArgs(['sh', '-c', launch, 'sh', NGINX_WATCHDOG, '/d', 't'])).toEqual([
      'watchdog-launch',
      '/d',
      't'
    ])
  })

  it('refuses a script it does not carry, another watchdog, and other commands', () => {
    const launch = HELPER_SCRIPTS['watchdog-launch']!
    for (const argv of [
      ['sh', '-c', 'id', 'sh'],
      ['sh', '-c', launch, 'sh', watchdogScript(tableflipWatchdog, true), '/d'],
      ['cat', '/etc/shadow'],
      ['rm', '-f', '/a'],
      ['kill', '-USR2', '42'],
      ['nginx', '-v']
    ])
      expect(() => helperArgs(argv)).toThrow(HelperUnsupportedError)
  })
})

describe('the sudo-helper input', () => {
  const errorOf = (over: Record<string, string>): SettingsError => {
    try {
      settingsWith(over)
    } catch (e) {
      expect(e).toBeInstanceOf(SettingsError)
      return e as SettingsError
    }
    throw new Error('expected a SettingsError')
  }
  const path = '/usr/local/libexec/zerodown/zerodown-sudo'

  it('takes an absolute path with sudo: true', () => {
    expect(settingsWith({ sudo: 'true', 'sudo-helper': path }).sudoHelper).toBe(path)
    expect(settingsWith({ sudo: 'true' }).sudoHelper).toBeUndefined()
  })

  it.each([
    [{ 'sudo-helper': path }, /'sudo-helper': is set but sudo is false.*Set sudo: true/],
    [{ sudo: 'true', 'sudo-helper': 'zerodown-sudo' }, /not an absolute path/],
    [
      { sudo: 'true', 'sudo-helper': path, supervisor: 'haproxy' },
      /covers the nginx hot upgrade only, not supervisor haproxy/
    ],
    [{ sudo: 'true', 'sudo-helper': path, 'verify-command': 'true {path}' }, /cannot run verify-command/],
    [
      { sudo: 'true', 'sudo-helper': path, mode: 'plan' },
      /covers mode deploy and mode rollback only, not mode plan/
    ],
    [
      { sudo: 'true', 'sudo-helper': path, hold: 'true' },
      /covers mode deploy and mode rollback only, not hold: true/
    ]
  ])('refuses %j', (over, message) => {
    expect(errorOf(over).message).toMatch(message)
  })
})
