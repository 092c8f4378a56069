import { describe, expect, it } from '@jest/globals'
import {
  configHazards,
  newMasterCandidates,
  oldWorkers,
  parseMasterTitle,
  parseSnapshot,
  parseVersion
} from '../src/supervisors/nginx/protocol.js'
import { elfArch } from '../src/local/elf.js'

// What the remote probe prints mid-upgrade: old master 100 with 2 workers and the new master 200 (its child).
const midUpgrade = [
  'pidfile 200',
  'oldbin 100',
  'oldbinfile',
  'proc\t100\tS\t1\t100\t/srv/app/sbin/nginx (deleted)\tnginx: master process /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/nginx.conf',
  'proc\t101\tS\t100\t100\t/srv/app/sbin/nginx (deleted)\tnginx: worker process',
  'proc\t102\tZ\t100\t100\t-\t',
  'proc\t103\tS\t100\t100\t/srv/app/sbin/nginx (deleted)\tnginx: worker process is shutting down',
  'proc\t200\tS\t100\t100\t/srv/app/sbin/nginx\tnginx: master process /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/nginx.conf',
  'proc\t201\tS\t200\t100\t/srv/app/sbin/nginx\tnginx: worker process',
  ''
].join('\n')

describe('nginx protocol reading', () => {
  const snap = parseSnapshot(midUpgrade)
  it('parses pid files and processes', () => {
    expect(snap.pid).toBe(200)
    expect(snap.oldbinPid).toBe(100)
    expect(snap.oldbinExists).toBe(true)
    expect(snap.procs.get(100)?.exe).toBe('/srv/app/sbin/nginx (deleted)')
  })
  it('does not count the new master (a child of the old one) or zombies as old workers', () => {
    expect(oldWorkers(snap, 100, 200).map(p => p.pid)).toEqual([101, 103])
    expect(newMasterCandidates(snap, 100).map(p => p.pid)).toEqual([200])
  })
  it('reads the master command line from its title', () => {
    expect(
      parseMasterTitle(
        'nginx: master process /srv/app/sbin/nginx -p /srv/app -c /srv/app/conf/nginx.conf -g daemon on; worker_processes 2;'
      )
    ).toEqual({
      argv0: '/srv/app/sbin/nginx',
      args: [
        '-p',
        '/srv/app',
        '-c',
        '/srv/app/conf/nginx.conf',
        '-g',
        'daemon',
        'on;',
        'worker_processes',
        '2;'
      ],
      configArgs: ['-p', '/srv/app', '-c', '/srv/app/conf/nginx.conf', '-g', 'daemon on; worker_processes 2;']
    })
    expect(parseMasterTitle('nginx: master process nginx')?.argv0).toBe('nginx')
  })
  it('finds daemon off and master_process off in a config dump, not in comments', () => {
    expect(configHazards('# daemon off;\nevents {}\n', '')).toEqual({ daemonOff: false, masterOff: false })
    expect(configHazards('daemon off;\n', '')).toEqual({ daemonOff: true, masterOff: false })
    expect(configHazards('', 'daemon off;')).toEqual({ daemonOff: true, masterOff: false })
    expect(configHazards('master_process  off;', '')).toEqual({ daemonOff: false, masterOff: true })
  })
  it('reads versions', () => {
    expect(parseVersion('nginx version: nginx/1.27.3\n')).toBe('1.27.3')
    expect(parseVersion('nginx version: nginx/1.22.1 (Debian)')).toBe('1.22.1')
    expect(parseVersion('no version here')).toBeNull()
  })
  it('reads the architecture of ELF headers and takes #! scripts as they are', () => {
    const head = Buffer.alloc(64)
    head.writeUInt32BE(0x7f454c46, 0)
    head[5] = 1
    head.writeUInt16LE(0x3e, 18)
    expect(elfArch(head)).toBe('x86_64')
    head.writeUInt16LE(0xb7, 18)
    expect(elfArch(head)).toBe('aarch64')
    expect(elfArch(Buffer.from('#!/bin/sh\nexit 1\n'))).toBe('#!')
    expect(elfArch(Buffer.from('hello world, not a program at all'))).toBeNull()
  })
})
