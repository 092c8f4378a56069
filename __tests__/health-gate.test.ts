/**
 * The health gate's order of work against a fake host (pure logic; the real GETs through sshd are
 * in ssh-host.test.ts and every upgrade test): each check's connection is opened ahead of it
 * (warmHttp) while the check before runs, and none after the check that would be the last pass.
 */
import { describe, expect, it } from '@jest/globals'
import type { Host } from '../src/host/host.js'
import { runHealthGate, type HealthPlan } from '../src/strategies/health.js'

function fakeHost(statuses: number[]) {
  const events: string[] = []
  let n = 0
  const host = {
    name: 'fake',
    address: '10.0.0.1',
    sudo: false,
    async http(url: string) {
      events.push(`get ${url}`)
      await new Promise(r => setTimeout(r, 5))
      return { status: statuses[n++] ?? 200, body: 'ok' }
    },
    warmHttp(url: string) {
      events.push(`warm ${url}`)
    }
  } as unknown as Host
  return { host, events }
}

const plan = (o: Partial<HealthPlan> = {}): HealthPlan => ({
  url: 'http://{host}:8080/health',
  checks: 3,
  intervalMs: 30,
  timeoutMs: 5000,
  ...o
})
const ctx = { stillServing: async () => undefined, note: () => undefined, record: () => undefined }
const URL = 'http://10.0.0.1:8080/health'

describe('the health gate opens the next check connection ahead', () => {
  it('one warm before each later check, none after the last pass', async () => {
    const { host, events } = fakeHost([200, 200, 200])
    await runHealthGate(host, plan(), ctx)
    expect(events).toEqual([`get ${URL}`, `warm ${URL}`, `get ${URL}`, `warm ${URL}`, `get ${URL}`])
  })

  it('a failed check starts the count again, and the checks after it are warmed too', async () => {
    const { host, events } = fakeHost([200, 503, 200, 200, 200])
    await runHealthGate(host, plan(), ctx)
    expect(events.filter(e => e.startsWith('get'))).toHaveLength(5)
    expect(events.filter(e => e.startsWith('warm'))).toHaveLength(4)
    expect(events.at(-1)).toBe(`get ${URL}`)
  })

  it('a gate that ends in failure leaves no warm pending', async () => {
    const { host, events } = fakeHost(Array(100).fill(503))
    await expect(runHealthGate(host, plan({ timeoutMs: 100, intervalMs: 30 }), ctx)).rejects.toThrow(
      /did not pass 3 health checks/
    )
    const count = events.length
    await new Promise(r => setTimeout(r, 150))
    expect(events).toHaveLength(count)
  })

  it('with health-command only, nothing is warmed', async () => {
    const { host, events } = fakeHost([])
    ;(host as unknown as { run: () => Promise<unknown> }).run = async () => ({
      code: 0,
      stdout: '',
      stderr: ''
    })
    await runHealthGate(host, plan({ url: undefined, command: 'true' }), ctx)
    expect(events).toEqual([])
  })
})
