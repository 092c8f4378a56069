/**
 * A fleet of three tableflip hosts (127.0.0.121-123) where the third fails its health gate. The
 * old processes cannot be held, so rollback-fleet (which needs that) is refused before any host is
 * touched; with rollback-fleet: false the first two commit as they pass and the third rolls back
 * by a hand-over to its old binary. Connection-per-request clients of the first host see no failed
 * request; mode: rollback then takes the two upgraded hosts back to their previous release.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { describeLoad, startLoad } from '../test/load.js'
import { sandboxUp, type Sandbox } from '../test/sandbox/sandbox.js'
import { APP, appBinary, appPid, appProcesses, appStart } from '../test/sandbox/tableflip.js'
import { runAction, sandboxInputs } from './helpers/action.js'

let sb: Sandbox
beforeAll(() => {
  sb = sandboxUp({ first: 121, count: 3 })
})
afterAll(() => sb?.down())

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))
const FAIL_FILE = '/srv/app/health-fail'

it('rollback-fleet is refused before any host is touched: tableflip cannot hold its old processes', async () => {
  const before = sb.hosts.map(h => appStart(sb, h, { variant: '1.0.0', reset: true }))
  const run = await runAction({ ...fleetInputs(), binary: appBinary('2.0.0'), version: '2.0.0' })
  expect(run.code).toBe(1)
  expect(run.log).toContain("Input 'rollback-fleet'")
  expect(run.log).toContain('cannot hold its old process until the whole fleet has passed')
  expect(sb.hosts.map(h => appPid(sb, h))).toEqual(before)
})

it('the third of three fails (rollback-fleet: false): two upgraded, the third handed back; then mode rollback takes the fleet back', async () => {
  const v1 = sha(appBinary('1.0.0'))
  const v2 = sha(appBinary('2.0.0'))
  const original = sb.hosts.map(h => {
    writeFileSync(sb.hostPath(h, FAIL_FILE), '')
    return appStart(sb, h, { variant: '1.0.0', reset: true, args: ['-health-fail-file', FAIL_FILE] })
  })
  // Only the third host's new version fails its health checks.
  writeFileSync(sb.hostPath(sb.hosts[2]!, FAIL_FILE), '2.0.0\n')
  const first = sb.hosts[0]!
  const load = startLoad({
    host: first.address,
    port: first.httpPort,
    path: '/pid',
    concurrency: 4,
    maxRequests: 300_000,
    maxMs: 180_000
  })
  while (load.count() < 100) await sleep(10)
  const inputs = { ...fleetInputs(), 'rollback-fleet': 'false' }
  const run = await runAction({ ...inputs, binary: appBinary('2.0.0'), version: '2.0.0' })
  if (run.code !== 1) console.log(run.log)
  expect(run.code).toBe(1)
  expect(run.outputs.result).toBe('failed')
  const report = JSON.parse(run.outputs.report!) as { hosts: { result: string; failedStep?: string }[] }
  expect(report.hosts.map(r => r.result)).toEqual(['upgraded', 'upgraded', 'rolled-back'])
  expect(report.hosts[2]!.failedStep).toBe('health')
  const runs = (i: number) => sha(`/proc/${appPid(sb, sb.hosts[i]!)}/exe`)
  expect([runs(0), runs(1), runs(2)]).toEqual([v2, v2, v1])
  expect(appPid(sb, sb.hosts[2]!)).not.toBe(original[2])

  // The fleet back to the previous release: a hand-over on each host, from its store.
  const back = await runAction({ ...inputs, mode: 'rollback' })
  await sleep(300)
  const traffic = await load.stop()
  console.log(describeLoad('tableflip fleet upgrade and rollback, host 1, connection per request', traffic))
  if (back.code !== 0) console.log(back.log)
  expect(back.code).toBe(0)
  for (const [i, h] of sb.hosts.entries()) {
    expect(runs(i)).toBe(v1)
    expect(sha(sb.hostPath(h, APP.binaryPath))).toBe(v1)
    const end = Date.now() + 10_000
    while (appProcesses(h).length > 1 && Date.now() < end) await sleep(50)
    expect(appProcesses(h)).toEqual([appPid(sb, h)])
  }
  expect(traffic.failed).toBe(0)
  expect(traffic.failures).toEqual({})
})

function fleetInputs(): Record<string, string> {
  return {
    ...sandboxInputs(sb),
    supervisor: 'tableflip',
    'pid-file': APP.pidFile,
    'health-url': `http://{host}:${sb.hosts[0]!.httpPort}/health`,
    'health-timeout': '2s'
  }
}
