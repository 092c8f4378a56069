/**
 * nginx's pre-flight reads of the master sent ahead (behind the deploy lock's command): inspect
 * takes them only for the master it finds, trusted by the same facts; for another master (the
 * pid file changed meanwhile) it reads again. A fake host answers and counts; every upgrade test
 * on sshd takes the reads sent ahead.
 */
import { describe, expect, it } from '@jest/globals'
import type { ExecResult, Host } from '../src/host/host.js'
import { acceptTrust, parseTrust, type TrustFacts } from '../src/host/trust.js'
import { inspectMaster, masterReads } from '../src/supervisors/nginx/inspect.js'
import { parseSnapshot } from '../src/supervisors/nginx/protocol.js'
import { sidePaths } from '../src/strategies/hot-upgrade/install.js'

const LIVE = '/srv/app/sbin/nginx'
const PID_FILE = '/run/nginx.pid'
const SHA = 'a'.repeat(64)
const TITLE = `nginx: master process ${LIVE} -p /srv/app -c /srv/app/conf/nginx.conf`

/** The probe's view: master `pid` (run by root, daemonized) with two workers. */
const snapshot = (pid: number) =>
  parseSnapshot(
    [
      `pidfile ${pid}`,
      'oldbin -',
      `proc\t${pid}\tS\t1\t${pid}\t${LIVE}\t${TITLE}`,
      `proc\t${pid + 1}\tS\t${pid}\t${pid}\t${LIVE}\tnginx: worker process`,
      `proc\t${pid + 2}\tS\t${pid}\t${pid}\t${LIVE}\tnginx: worker process`,
      ''
    ].join('\n')
  )

/** Root's files, a root master: facts that pass the trust checks. */
const rootFacts = (pid: number): TrustFacts =>
  parseTrust(
    [
      'me\t0\t0\troot',
      'master\t0\t0\troot',
      `P\tpidfile\t0\t0\t644\tregular file\troot\t${PID_FILE}`,
      'P\tpiddir\t0\t0\t755\tdirectory\troot\t/run',
      `P\texe\t0\t0\t755\tregular file\troot\t${LIVE}`,
      'P\tlivedir\t0\t0\t755\tdirectory\troot\t/srv/app/sbin',
      'P\tstore\t0\t0\t755\tdirectory\troot\t/var/lib/zerodown',
      ''
    ].join('\n'),
    pid
  )

function fakeHost() {
  const sent: string[] = []
  const host = {
    name: 'web1',
    address: 'web1',
    sudo: false,
    run(argv: readonly string[]): Promise<ExecResult> {
      const what = argv.join(' ')
      sent.push(what)
      const out = what.startsWith('sha256sum')
        ? `${SHA}  ${argv.at(-1)}\n`
        : what === 'uname -m'
          ? 'x86_64\n'
          : what.startsWith('readlink')
            ? `${LIVE}\n`
            : ''
      const stderr = what.endsWith(' -v') ? 'nginx version: nginx/1.22.1\n' : ''
      return Promise.resolve({ stdout: out, stderr, code: 0 })
    }
  } as unknown as Host
  return { host, sent }
}

/** The trust checks as the lock's first read left them: judged for master `pid`, kept for pre-flight. */
function trusted(host: Host, pid: number): TrustFacts {
  const plan = {
    pidFile: PID_FILE,
    pid,
    livePath: LIVE,
    stagingPath: sidePaths(LIVE).staging,
    storeDir: '/var/lib/zerodown/nginx'
  }
  return acceptTrust(host, plan, rootFacts(pid))
}

const ctx = { note: () => undefined, retrying: false }

describe("nginx's reads of the master sent ahead", () => {
  it('are taken for the master inspect finds, trusted by the same facts: nothing read twice', async () => {
    const { host, sent } = fakeHost()
    const early = masterReads(host, { pid: 100, livePath: LIVE, replaced: false, facts: trusted(host, 100) })
    const facts = await inspectMaster(host, { pidFile: PID_FILE }, ctx, Promise.resolve(snapshot(100)), early)
    expect(facts).toMatchObject({ pid: 100, livePath: LIVE, version: '1.22.1', arch: 'x86_64' })
    expect(sent.filter(c => c === 'uname -m')).toHaveLength(1)
    expect(sent.filter(c => c.endsWith(' -v'))).toEqual(['/proc/100/exe -v'])
  })

  it('are dropped for another master: its own reads are sent', async () => {
    const { host, sent } = fakeHost()
    const early = masterReads(host, { pid: 100, livePath: LIVE, replaced: false, facts: trusted(host, 100) })
    // The pid file names another master by the time the probe reads it (a restart meanwhile).
    trusted(host, 300)
    const facts = await inspectMaster(host, { pidFile: PID_FILE }, ctx, Promise.resolve(snapshot(300)), early)
    expect(facts.pid).toBe(300)
    expect(sent.filter(c => c === 'uname -m')).toHaveLength(2)
    expect(sent.filter(c => c.endsWith(' -v'))).toEqual(['/proc/100/exe -v', '/proc/300/exe -v'])
  })
})
