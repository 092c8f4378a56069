/**
 * Issue #13, item 1, for every supervisor: the pid file is an address another user may forge.
 * A lower-privileged user (the sandbox's `zdnosudo`) starts a program that looks enough like an
 * HAProxy master (HAPROXY_MWORKER=1, an absolute argv[0], a worker child) or a tableflip server
 * (argv[0] is its own file, no child), and names it in a pid file in its own folder. With
 * sudo: true the action must refuse at pre-flight and touch nothing: the program never runs as
 * root (its `-v` would run the attacker's code), nothing is staged in the attacker's folder, no
 * store is made. On a real sandbox host, 127.0.0.175.
 *
 * Before the supervisors ran the trust checks themselves, the deploy lock's check (made before it
 * creates its folder) already refused these: the test holds both layers to it, so that a mode
 * without the lock (or a lock that skips its check) still refuses.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { asAttacker } from './helpers/upgrade-host.js'

let sb: Sandbox
let h: SandboxHost
let dir: string
let build: string

beforeAll(() => {
  sb = sandboxUp({ first: 175, count: 1 })
  h = sb.hosts[0]!
  dir = scratchDir('zerodown-trust-sup-')
  build = nginxBuild(dir, 'trust-sup')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})
beforeEach(() => {
  sb.exec(h, [
    'sh',
    '-c',
    'pkill -u "$1" -f /tmp/evil/ || true; rm -rf /tmp/evil /tmp/ran-as-* /var/lib/zerodown/*',
    'sh',
    sb.noSudoUser
  ])
})

// python3 copied into the attacker's folder with a standard library (links) whose
// sitecustomize.py is the attacker's: whoever runs that file runs the attacker's code, which
// leaves /tmp/ran-as-<euid>. NAME is the file's name, SCRIPT what the process does.
const fakeServer = (name: string, env: string, script: string) => String.raw`
set -e
mkdir -p /tmp/evil/bin /tmp/evil/lib/python3.11
cp /usr/bin/python3.11 /tmp/evil/bin/${name}
for f in /usr/lib/python3.11/*; do ln -s "$f" /tmp/evil/lib/python3.11/; done
rm -f /tmp/evil/lib/python3.11/sitecustomize.py
echo "import os; open('/tmp/ran-as-%d' % os.geteuid(), 'w').close()" > /tmp/evil/lib/python3.11/sitecustomize.py
printf '%s\n' '${script}' > /tmp/evil/serve.py
cd /tmp/evil
setsid bash -c 'echo $$ > /tmp/evil/server.pid; ${env} exec -a /tmp/evil/bin/${name} /tmp/evil/bin/${name} /tmp/evil/serve.py' </dev/null >/dev/null 2>&1 &
for i in $(seq 100); do [ -s /tmp/evil/server.pid ] && exit 0; sleep 0.05; done
exit 1
`
// A master with one worker child, both asleep.
const WITH_WORKER = 'import os, time; os.fork(); time.sleep(600)'
const ALONE = 'import time; time.sleep(600)'

function evilFiles(): string[] {
  return readdirSync(sb.hostPath(h, '/tmp/evil')).sort()
}

function storeEntries(): string[] {
  const p = sb.hostPath(h, '/var/lib/zerodown')
  return existsSync(p) ? readdirSync(p) : []
}

describe('a forged pid file, for each supervisor', () => {
  it.each([
    ['haproxy', fakeServer('haproxy', 'HAPROXY_MWORKER=1', WITH_WORKER)],
    ['tableflip', fakeServer('app', '', ALONE)]
  ])(
    '%s: never runs the forged server as root, stages nothing, and says who it runs as',
    async (supervisor, fake) => {
      asAttacker(sb, h, fake)
      const before = evilFiles()
      const run = await runAction({
        ...sandboxInputs(sb, [h]),
        binary: build,
        sudo: 'true',
        supervisor,
        'pid-file': '/tmp/evil/server.pid'
      })
      expect(run.code).toBe(1)
      expect(existsSync(sb.hostPath(h, '/tmp/ran-as-0'))).toBe(false)
      expect(run.log).toMatch(
        new RegExp(`runs as ${sb.noSudoUser} \\(uid \\d+\\), neither root nor the deploy user`)
      )
      expect(JSON.parse(run.outputs.report!).hosts[0]).toMatchObject({
        result: 'failed',
        failedStep: 'preflight'
      })
      expect(evilFiles()).toEqual(before)
      expect(storeEntries()).toEqual([])
    }
  )
})
