/**
 * Two commands sent in one round trip, the second run by the host only if the first succeeded
 * (the host shell's gates): real bundle, real sshd and nginx (127.0.10.2-3).
 *
 * - The commit: the watchdog's confirmation, with QUIT right behind it. The run is stopped while
 *   its canary is parked, the canary's watchdog reaches its deadline meanwhile and rolls it back,
 *   then the run goes on and commits the fleet: QUIT must never reach the old master the watchdog
 *   went back to.
 * - The cut-over: the watchdog's start, with the swap right behind it. A watchdog that cannot
 *   start must leave the live binary as it was.
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
  dir = scratchDir('zerodown-gated-')
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

  it("the swap, sent behind the watchdog's start, never runs when the watchdog cannot start: the live binary stays", async () => {
    const h = sb.hosts[1]!
    const pid = sb.readPid(h)!
    const live = sb.hostPath(h, '/srv/app/sbin/nginx')
    const before = sha256(live)
    // The watchdog's folder cannot be made: a file of that name is in the way.
    const wd = sb.hostPath(h, '/var/lib/zerodown/nginx/watchdog')
    sb.exec(h, ['install', '-d', '-o', sb.user, '-g', sb.user, '/var/lib/zerodown/nginx'])
    rmSync(wd, { recursive: true, force: true })
    writeFileSync(wd, 'in the way\n')
    try {
      const run = await runAction({ ...sandboxInputs(sb, [h]), binary: nginxBuild(dir, 'no-watchdog') })
      if (process.env.ZD_SHOW_LOG) console.log(run.log)
      expect(run.code).toBe(1)
      const report = JSON.parse(run.outputs.report!) as { hosts: HostReport[] }
      expect(report.hosts[0]!.failedStep).toBe('swap')
      expect(report.hosts[0]!.error).toMatch(/watchdog command failed/)
      expect(sha256(live)).toBe(before)
      expect(existsSync(sb.hostPath(h, '/srv/app/sbin/.nginx.zerodown-prev'))).toBe(false)
      expect(hostState(sb, h)).toMatchObject({ pid, masters: [pid], oldbin: false, leftovers: [] })
    } finally {
      rmSync(wd, { force: true })
    }
  })
})
