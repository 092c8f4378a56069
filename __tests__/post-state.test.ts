/**
 * What the main step hands its post step, through a store that keeps GitHub's rules: every save
 * is appended to one file (GITHUB_STATE), and the post step sees the last value of each name.
 * A 1,000-host rollout must not write that file hosts × changes times over.
 */
import { describe, expect, it } from '@jest/globals'
import { Journal, type SafetyPhase } from '../src/safety/journal.js'
import { savedRecords, stateSaver, type StateStore } from '../src/state.js'

/** GITHUB_STATE: the bytes appended (a name, a delimiter line, the value, the delimiter), and the last value of each name. */
function githubState() {
  const last = new Map<string, string>()
  let bytes = 0
  const store: StateStore = {
    save(name, value) {
      bytes += `${name}<<ghadelimiter_0000\n${value}\nghadelimiter_0000\n`.length
      last.set(name, value)
    },
    get: name => last.get(name) ?? ''
  }
  return { store, bytes: () => bytes }
}

const phases: SafetyPhase[] = ['locked', 'changing', 'parked', 'committing', 'settled']

function rollout(hosts: number) {
  const state = githubState()
  const saver = stateSaver(state.store, m => {
    throw new Error(m)
  })
  const journal = new Journal({ token: 'run-1', pidFile: '/run/nginx.pid' }, saver.persist)
  let changes = 0
  // Hosts in batches, as a rollout goes: each host's changes, one host after another.
  for (const phase of phases)
    for (let i = 0; i < hosts; i++) {
      journal.update(`deploy@10.0.${i >> 8}.${i & 255}:22`, {
        phase,
        ...(phase === 'changing'
          ? { oldPid: 1000 + i, livePath: '/usr/sbin/nginx', oldSha256: 'a'.repeat(64) }
          : {})
      })
      changes++
    }
  return { state, changes }
}

describe('the state saved for the post step', () => {
  it('gives the post step every host in its last phase', () => {
    const { state } = rollout(3)
    const records = savedRecords(state.store.get)
    expect(records.map(r => [r.host, r.phase])).toEqual([
      ['deploy@10.0.0.0:22', 'settled'],
      ['deploy@10.0.0.1:22', 'settled'],
      ['deploy@10.0.0.2:22', 'settled']
    ])
    expect(records[1]).toMatchObject({ token: 'run-1', oldPid: 1001, livePath: '/usr/sbin/nginx' })
  })

  it('grows with the changes, not with hosts × changes (1,000 hosts)', () => {
    const { state, changes } = rollout(1000)
    expect(changes).toBe(5000)
    // A record here is about 220 bytes: each change writes its own host's record, and the count
    // is written once per host. A list of every host at each change would be about 540 MB.
    expect(state.bytes()).toBeLessThan(changes * 400)
    expect(savedRecords(state.store.get)).toHaveLength(1000)
  })
})
