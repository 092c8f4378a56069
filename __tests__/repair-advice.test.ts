/**
 * Commands printed for people (repair advice after a failed rollback, pre-flight refusals) are the
 * ones they can run with their settings: with sudo-helper set, the deploy user's sudoers rule names
 * the helper alone, so `sudo kill …` would be refused; the advice gives the helper's sub-command,
 * in the form the helper itself accepts (src/sudo-helper/translate.ts maps it).
 */
import { describe, expect, it } from '@jest/globals'
import { killCommand, privilegedCommand } from '../src/host/advice.js'
import type { ExecResult, Host } from '../src/host/host.js'
import { throughHelper } from '../src/sudo-helper/check.js'
import { helperArgs } from '../src/sudo-helper/translate.js'
import { inspectMaster } from '../src/supervisors/nginx/inspect.js'
import { repairMasters } from '../src/supervisors/nginx/revert.js'
import { NginxHost } from '../src/supervisors/nginx/state.js'

const HELPER = '/usr/local/libexec/zerodown/zerodown-sudo'
const NGINX = '/usr/sbin/nginx'

type Mode = 'user' | 'sudo' | 'helper'
const modes: Mode[] = ['user', 'sudo', 'helper']

/** A host whose every command prints `probe` (the nginx probe's output). */
function fakeHost(mode: Mode, probe = ''): Host {
  return {
    name: 'fake',
    address: 'fake',
    sudo: mode !== 'user',
    ...(mode === 'helper' ? { privileged: throughHelper(HELPER) } : {}),
    run: async (): Promise<ExecResult> => ({ stdout: probe, stderr: '', code: 0 }),
    upload: async () => null,
    readFile: async () => null,
    http: async () => ({ status: 200, body: '' }),
    close: async () => undefined
  }
}

const proc = (pid: number, ppid: number, title: string) =>
  `proc\t${pid}\tS\t${ppid}\t${pid}\t${NGINX}\t${title}`
const master = (pid: number, ppid = 1) =>
  proc(pid, ppid, `nginx: master process ${NGINX} -c /etc/nginx/nginx.conf`)
const worker = (pid: number, ppid: number) => proc(pid, ppid, 'nginx: worker process')

/** The helper's argv of a printed `sudo HELPER SUB ARGS` line, as sudo would run it. */
function helperCall(line: string): string[] {
  const words = line.split(' ')
  expect(words.slice(0, 2)).toEqual(['sudo', HELPER])
  return words.slice(2)
}

describe('privileged commands printed for people', () => {
  it('are plain for the SSH user, sudo with sudo: true, and the helper sub-command with sudo-helper', () => {
    const argv = ['mv', '-f', '--', '/srv/app/sbin/.nginx.zerodown-prev', '/srv/app/sbin/nginx']
    expect(privilegedCommand(fakeHost('user'), argv)).toBe(
      'mv -f -- /srv/app/sbin/.nginx.zerodown-prev /srv/app/sbin/nginx'
    )
    expect(privilegedCommand(fakeHost('sudo'), argv)).toBe(
      'sudo mv -f -- /srv/app/sbin/.nginx.zerodown-prev /srv/app/sbin/nginx'
    )
    expect(privilegedCommand(fakeHost('helper'), argv)).toBe(
      `sudo ${HELPER} mv /srv/app/sbin/.nginx.zerodown-prev /srv/app/sbin/nginx`
    )
    expect(killCommand(fakeHost('user'), 'HUP', [42])).toBe('kill -HUP 42')
    expect(killCommand(fakeHost('sudo'), 'QUIT', [43, 44])).toBe('sudo kill -QUIT 43 44')
    // The helper's kill takes one signal name and one pid.
    expect(killCommand(fakeHost('helper'), 'QUIT', [43, 44])).toBe(
      `sudo ${HELPER} kill QUIT 43; sudo ${HELPER} kill QUIT 44`
    )
  })

  it('say that a command needs root when the helper has no sub-command for it, never a sudo that fails', () => {
    const argv = ['mv', '--', '/run/nginx.pid.oldbin', '/run/nginx.pid']
    expect(() => helperArgs(argv)).toThrow(/has no sub-command/)
    expect(privilegedCommand(fakeHost('helper'), argv)).toBe(
      'as root (the sudo helper has no sub-command for it): mv -- /run/nginx.pid.oldbin /run/nginx.pid'
    )
  })
})

describe('the nginx repair advice after a failed rollback', () => {
  // The old master 100 has lost its workers (WINCH); the new master 200, its child, serves.
  const probe = [
    'pidfile 200',
    'oldbin 100',
    'oldbinfile',
    master(100),
    master(200, 100),
    worker(201, 200),
    ''
  ].join('\n')

  async function advice(mode: Mode): Promise<string[]> {
    const s = new NginxHost(fakeHost(mode, probe), '/run/nginx.pid', 100)
    s.learn({ pid: 100 } as Parameters<NginxHost['learn']>[0])
    return (await repairMasters(s)).commands.filter(c => !c.startsWith('#'))
  }

  it.each(modes)('%s: the commands are the ones that state calls for', async mode => {
    const commands = await advice(mode)
    expect(commands).toEqual(
      {
        user: ['kill -HUP 100', 'kill -QUIT 200'],
        sudo: ['sudo kill -HUP 100', 'sudo kill -QUIT 200'],
        helper: [`sudo ${HELPER} kill HUP 100`, `sudo ${HELPER} kill QUIT 200`]
      }[mode]
    )
  })

  it('with sudo-helper: no plain sudo, and each line is a call the helper maps back to the same signal', async () => {
    const commands = await advice('helper')
    expect(commands.join('\n')).not.toMatch(/(^|; )sudo kill/m)
    expect(commands.map(helperCall)).toEqual([
      ['kill', 'HUP', '100'],
      ['kill', 'QUIT', '200']
    ])
    // The same words the action itself sends through the helper for these signals.
    expect(helperArgs(['kill', '-s', 'HUP', '--', '100'])).toEqual(['kill', 'HUP', '100'])
  })
})

describe('the pre-flight refusal of an upgrade in progress', () => {
  it.each(modes)('%s: gives the commands in the form this run can use', async mode => {
    const probe = [
      'pidfile 200',
      'oldbin 100',
      'oldbinfile',
      master(100),
      worker(101, 100),
      master(200, 100),
      ''
    ].join('\n')
    const err = (await inspectMaster(
      fakeHost(mode, probe),
      { pidFile: '/run/nginx.pid' },
      {
        note: () => undefined
      }
    ).catch((e: Error) => e)) as Error
    const expected = {
      user: 'To keep the new one: kill -QUIT 100. To go back to the old one: kill -HUP 100; kill -QUIT 200',
      sudo: 'To keep the new one: sudo kill -QUIT 100. To go back to the old one: sudo kill -HUP 100; sudo kill -QUIT 200',
      helper: `To keep the new one: sudo ${HELPER} kill QUIT 100. To go back to the old one: sudo ${HELPER} kill HUP 100; sudo ${HELPER} kill QUIT 200`
    }[mode]
    expect(err.message).toContain(expected)
  })
})
