/**
 * Issue #13, item 1: what the action trusts on a host, attacked as a lower-privileged user
 * (the sandbox's `zdnosudo`) would, on a real sandbox host (127.0.0.170) with sudo: true.
 * Each attack must end in a clear pre-flight refusal that touches nothing: the attacker's program
 * never runs as root, no file is written through the attacker's symlink, no lock or store is made.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir, type ActionRun } from './helpers/action.js'
import { asAttacker as attack, hostState, sha256 } from './helpers/upgrade-host.js'

let sb: Sandbox
let h: SandboxHost
let dir: string
let build: string
const ORIGINAL = sha256('/usr/sbin/nginx')

beforeAll(() => {
  sb = sandboxUp({ first: 170, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-trust-')
  build = nginxBuild(dir, 'trust')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  sb.nginxStart(h, { reset: true })
  sb.exec(h, ['sh', '-c', 'rm -rf /tmp/evil /tmp/ran-as-* /var/lib/zerodown/* /srv/app/victim'])
})

const asAttacker = (line: string) => attack(sb, h, line)

function deploy(extra: Record<string, string> = {}): Promise<ActionRun> {
  return runAction({ ...sandboxInputs(sb, [h]), binary: build, sudo: 'true', ...extra })
}

function show(run: ActionRun): void {
  if (process.env.ZD_SHOW_LOG) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
}

/** What root left behind on the host: files in the store, and markers of the attacker's program. */
function storeEntries(): string[] {
  const p = sb.hostPath(h, '/var/lib/zerodown')
  return existsSync(p) ? readdirSync(p) : []
}

// A copy of python3 in the attacker's folder, beside a copy of the standard library (links) whose
// sitecustomize.py is the attacker's: python finds its library beside its real file, so whoever
// runs that "binary" (as /proc/<pid>/exe -v too) runs the attacker's code, which leaves /tmp/ran-as-<uid>.
const FAKE_MASTER = String.raw`
set -e
mkdir -p /tmp/evil/bin /tmp/evil/lib/python3.11
cp /usr/bin/python3.11 /tmp/evil/bin/nginx
for f in /usr/lib/python3.11/*; do ln -s "$f" /tmp/evil/lib/python3.11/; done
rm -f /tmp/evil/lib/python3.11/sitecustomize.py
echo "import os; open('/tmp/ran-as-%d' % os.geteuid(), 'w').close()" > /tmp/evil/lib/python3.11/sitecustomize.py
echo 'import time; time.sleep(600)' > /tmp/evil/sleep.py
setsid bash -c 'echo $$ > /tmp/evil/nginx.pid; exec -a "nginx: master process /tmp/evil/bin/nginx" /tmp/evil/bin/nginx /tmp/evil/sleep.py' </dev/null >/dev/null 2>&1 &
for i in $(seq 100); do [ -s /tmp/evil/nginx.pid ] && exit 0; sleep 0.05; done
exit 1
`

describe('attacks on the pid file and the folders root writes in', () => {
  it('never runs the executable of a fake master started by another user as root (pid file in its folder)', async () => {
    asAttacker(FAKE_MASTER)
    const run = await deploy({ 'pid-file': '/tmp/evil/nginx.pid' })
    show(run)
    expect(run.code).toBe(1)
    expect(existsSync(sb.hostPath(h, '/tmp/ran-as-0'))).toBe(false)
    expect(run.log).toMatch(
      new RegExp(
        `the master \\d+ runs as ${sb.noSudoUser} \\(uid \\d+\\), neither root nor the deploy user ${sb.user}`
      )
    )
    expect(JSON.parse(run.outputs.report!).hosts[0]).toMatchObject({
      result: 'failed',
      failedStep: 'preflight'
    })
    // Touches nothing: nothing was staged in the attacker's folder, no lock or store was made.
    expect(readdirSync(sb.hostPath(h, '/tmp/evil')).sort()).toEqual(['bin', 'lib', 'nginx.pid', 'sleep.py'])
    expect(storeEntries()).toEqual([])
  })

  it('refuses a pid file in a folder that other users can write (/run mode 1777 while nginx runs as the deploy user)', async () => {
    const mode = sb.exec(h, ['stat', '-c', '%a', '/run']).stdout.trim()
    sb.exec(h, ['chmod', '1777', '/run'])
    try {
      const run = await deploy()
      show(run)
      expect(run.code).toBe(1)
      expect(run.log).toMatch(/the folder of pid-file \/run\/nginx\.pid, \/run, is writable by every user/)
      expect(run.log).toMatch(/chmod o-w \/run/)
      expect(hostState(sb, h)).toMatchObject({ liveSha256: ORIGINAL, leftovers: [], oldbin: false })
      expect(storeEntries()).toEqual([])
    } finally {
      sb.exec(h, ['chmod', mode, '/run'])
    }
  })

  it("never writes through a symlink that another user planted at the staging path in a writable binary's folder", async () => {
    sb.exec(h, [
      'sh',
      '-c',
      'echo precious > /srv/app/victim && chmod 0644 /srv/app/victim && chmod 0777 /srv/app/sbin'
    ])
    try {
      asAttacker('ln -s /srv/app/victim /srv/app/sbin/.nginx.zerodown-new')
      const run = await deploy()
      show(run)
      expect(run.code).toBe(1)
      expect(readFileSync(sb.hostPath(h, '/srv/app/victim'), 'utf8')).toBe('precious\n')
      expect(run.log).toMatch(/the folder of the live binary, \/srv\/app\/sbin, is writable by every user/)
      expect(sha256(sb.hostPath(h, '/srv/app/sbin/nginx'))).toBe(ORIGINAL)
      expect(storeEntries()).toEqual([])
    } finally {
      sb.exec(h, [
        'sh',
        '-c',
        'chmod 0755 /srv/app/sbin; rm -f /srv/app/sbin/.nginx.zerodown-new /srv/app/victim'
      ])
    }
  })
})
