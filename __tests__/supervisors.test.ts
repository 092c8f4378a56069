/** What a supervisor declares, and the settings a supervisor cannot honour, refused before any host is touched. */
import { describe, expect, it } from '@jest/globals'
import { checkPairings } from '../src/app.js'
import { SettingsError } from '../src/settings.js'
import { nginx } from '../src/supervisors/nginx/index.js'
import { supervisorFor } from '../src/supervisors/index.js'
import type { Supervisor } from '../src/supervisors/supervisor.js'
import { settingsWith } from './helpers/inputs.js'

/** nginx's names, but a protocol whose old process cannot wait for the fleet (tableflip, HAProxy). */
const cannotHold: Supervisor = {
  ...nginx,
  names: { ...nginx.names, id: 'no-hold', title: 'a server that cannot hold' },
  capabilities: { ...nginx.capabilities, canHold: false }
}

describe('supervisors', () => {
  it('nginx can hold its old master, reverts to the old process, and names its steps', () => {
    expect(supervisorFor('nginx')).toBe(nginx)
    expect(nginx.capabilities).toEqual({
      canHold: true,
      handBack: false,
      revert: 'old-process',
      samePid: false
    })
    expect(nginx.names.steps).toEqual({ start: 'usr2', isolate: 'winch', retire: 'quit' })
    expect(() => supervisorFor('lighttpd')).toThrow(
      'no supervisor named lighttpd (known: nginx, haproxy, tableflip)'
    )
  })

  it('refuses rollback-fleet on several hosts when the supervisor cannot hold, naming the input and the fix', () => {
    const fleet = settingsWith({ hosts: 'web1,web2' })
    expect(fleet.rollbackFleet).toBe(true)
    expect(() => checkPairings(fleet, nginx)).not.toThrow()
    const e = (() => {
      try {
        checkPairings(fleet, cannotHold)
      } catch (err) {
        return err
      }
    })()
    expect(e).toBeInstanceOf(SettingsError)
    expect((e as Error).message).toBe(
      "Input 'rollback-fleet': a server that cannot hold cannot hold its old process until the whole fleet has passed. Set rollback-fleet: false (each host commits as soon as it passes); to take a fleet back, run mode: rollback, a hand-over to the previous release from each host's store"
    )
    // One host holds nothing; without rollback-fleet nothing is held.
    expect(() => checkPairings(settingsWith({}), cannotHold)).not.toThrow()
    expect(() =>
      checkPairings(settingsWith({ hosts: 'web1,web2', 'rollback-fleet': 'false' }), cannotHold)
    ).not.toThrow()
  })
})
