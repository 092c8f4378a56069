/**
 * The commit in one round trip (the watchdog's confirmation, with QUIT sent right behind it and run
 * by the host only if this run decided) must never QUIT an old master the watchdog went back to.
 * Real bundle, real sshd and nginx (127.0.10.2-3): the run is stopped while its canary is parked,
 * the canary's watchdog reaches its deadline meanwhile and rolls it back, then the run goes on and
 * commits the fleet.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { HostReport } from '../src/engine/types.js'
import { sandboxUp, type Sandbox } from '../test/sandbox/sandbox.js'
import { nginxBuild, runAction, sandboxInputs, scratchDir } from './helpers/action.js'
import { hostState, sha256 } from './helpers/upgrade-host.js'

let sb: Sandbox
let dir: string
beforeAll(() => {
  sb = sandboxUp({ first: 2, count: 2, net: '127.0.10' })
  dir = scratchDir('zerodown-confirm-late-')
})
afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe('the watchdog decides before the run confirms', () => {
  it('QUIT, sent behind the confirmation, never runs: the old master the watchdog went back to serves on', async () => {
    const [canary, second] = sb.hosts as [(typeof sb.hosts)[0], (typeof sb.hosts)[0]]
    const oldPid = sb.readPid(canary)!
    const wd = sb.hostPath(canary, '/var/lib/zerodown/nginx/watchdog')
    let result = ''
    const run = await runAction(
      { ...sandboxInputs(sb, [canary, second]), binary: nginxBuild(dir, 'late') },
      {
        pause: {
          // The canary is parked once its drain is done: nothing of it runs again until the commit.
          when: new RegExp(`@${canary.address.replaceAll('.', '\\.')}:\\d+ \\[drain\\] [^\\n]*left after`),
          then: async () => {
            // Written until the watchdog acts: the parked host's first heartbeat, sent as it
            // parked, may still reach the host after a first write and move the deadline again.
            for (let i = 0; i < 150 && !result; i++) {
              writeFileSync(join(wd, 'deadline'), '0\n')
              await new Promise(r => setTimeout(r, 100))
              result = existsSync(join(wd, 'result')) ? readFileSync(join(wd, 'result'), 'utf8') : ''
            }
          }
        }
      }
    )
    if (process.env.ZD_SHOW_LOG) console.log(run.log)
    expect(result).toBe('rolled-back\n')
    const hosts = (JSON.parse(run.outputs.report!) as { hosts: HostReport[] }).hosts
    const c = hosts.find(h => h.host.includes(`@${canary.address}:`))!
    expect(c.failedStep).toBe('quit')
    expect(c.error).toMatch(/the watchdog rolled the host back at its deadline/)
    expect(run.log).not.toContain(`sent QUIT to the old master ${oldPid}`)
    // The canary serves from its original master and binary, as its watchdog left it.
    const st = hostState(sb, canary)
    expect(st.pid).toBe(oldPid)
    expect(st.masters).toEqual([oldPid])
    expect(st.liveSha256).toBe(sha256('/usr/sbin/nginx'))
    expect(run.code).toBe(1)
  })
})
