/**
 * The tableflip supervisor on a real Go server built on Debian's cloudflare/tableflip (the
 * sandbox host 127.0.0.120, test/servers/tableflip), driven by the bundle under Node 24 as GitHub
 * runs it: zero failed connection-per-request clients during an upgrade and during an automatic
 * rollback (a hand-over back), a new binary that exits at once or never gets ready, a drain that
 * outlasts its timeout, verify-command, and a hand-over refused while an old process still drains.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { APP, appBinary, appPid, appProcesses, appStart, type AppVariant } from '../test/sandbox/tableflip.js'
import { runAction, sandboxInputs } from './helpers/action.js'
import { actionUnderLoad } from './helpers/load.js'

let sb: Sandbox
let h: SandboxHost
let originalPid = 0

/** The file that ends a /slow?until request (the server sees it at this path). */
const DONE = '/srv/app/slow-done'
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')
const liveSha = () => sha(sb.hostPath(h, APP.binaryPath))
const exeSha = (pid: number) => sha(`/proc/${pid}/exe`)

async function until<T>(fn: () => T | Promise<T>, ms: number): Promise<T | undefined> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) return undefined
    await sleep(50)
  }
}

beforeAll(() => {
  sb = sandboxUp({ first: 120, count: 1 })
  h = sb.hosts[0]!
})
afterAll(() => sb?.down())
beforeEach(() => {
  originalPid = appStart(sb, h, { variant: '1.0.0', reset: true })
})

function inputs(variant: AppVariant, over: Record<string, string> = {}): Record<string, string> {
  return {
    ...sandboxInputs(sb, [h]),
    supervisor: 'tableflip',
    'pid-file': APP.pidFile,
    'health-url': `http://{host}:${h.httpPort}/health`,
    'health-timeout': '2s',
    binary: appBinary(variant),
    version: variant.includes('.') ? variant : '9.0.0',
    ...over
  }
}

/** The action under connection-per-request load on /pid; a rollback is expected to exit 1. */
const underLoad = (label: string, input: Record<string, string>) =>
  actionUnderLoad(h, label, input, { expectCode: label.includes('rollback') ? 1 : 0, countBodies: true })

describe('tableflip: connection-per-request clients see no failed request', () => {
  it('during a hot upgrade (HUP, pid file, health gate, the old process drains and exits)', async () => {
    const { run, load } = await underLoad('tableflip upgrade, connection per request', {
      ...inputs('2.0.0'),
      'verify-command': '{binary} -version'
    })
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(load.failed).toBe(0)
    expect(load.failures).toEqual({})
    const newPid = appPid(sb, h)!
    expect(newPid).not.toBe(originalPid)
    expect(Number(run.outputs['new-pid'])).toBe(newPid)
    expect(sb.isAlive(originalPid)).toBe(false)
    expect(exeSha(newPid)).toBe(sha(appBinary('2.0.0')))
    expect(liveSha()).toBe(sha(appBinary('2.0.0')))
    expect((await httpGet(h.address, h.httpPort, '/version')).body.trim()).toBe('2.0.0')
    // The load spanned the hand-over: the old and the new process both answered it.
    expect(load.bodies[String(originalPid)] ?? 0).toBeGreaterThan(0)
    expect(load.bodies[String(newPid)] ?? 0).toBeGreaterThan(0)
    expect(run.log).toMatch(/\[verify\].*verify-command passed/)
    expect(run.log).toMatch(new RegExp(`sent HUP to ${originalPid}`))
  })

  it('during an automatic rollback (the new binary answers /health with 500): a hand-over back to the old binary', async () => {
    const { run, load } = await underLoad(
      'tableflip rollback (health 500), connection per request',
      inputs('unhealthy')
    )
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(load.failed).toBe(0)
    expect(load.failures).toEqual({})
    expect(run.log).toMatch(/hand-over back to the old binary/)
    // The old version serves again, as a new process, alone once the unhealthy one drained.
    const back = appPid(sb, h)!
    expect(back).not.toBe(originalPid)
    expect(exeSha(back)).toBe(sha(appBinary('1.0.0')))
    expect(liveSha()).toBe(sha(appBinary('1.0.0')))
    expect(await until(() => appProcesses(h).length === 1, 10_000)).toBe(true)
    expect(appProcesses(h)).toEqual([back])
    expect((await httpGet(h.address, h.httpPort, '/health')).status).toBe(200)
  })
})

describe('tableflip: a new binary that fails before it is ready changes nothing that serves', () => {
  it('exits at once: the old process keeps serving, its pid file and binary unchanged', async () => {
    const run = await runAction(inputs('exit'))
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.log).toMatch(/the new binary exited (before it was ready|at once)/)
    expect(appPid(sb, h)).toBe(originalPid)
    expect(appProcesses(h)).toEqual([originalPid])
    expect(liveSha()).toBe(sha(appBinary('1.0.0')))
    expect((await httpGet(h.address, h.httpPort, '/version')).body.trim()).toBe('1.0.0')
  })

  it('never becomes ready: stopped after start-timeout (TERM, then KILL), the old process serves on', async () => {
    const run = await runAction(inputs('hang', { 'start-timeout': '2s' }))
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('rolled-back')
    expect(run.log).toMatch(/no new process named itself in the pid file within start-timeout 2/)
    expect(run.log).toMatch(/sent KILL to \d+, the child of \d+ that never became ready/)
    expect(appPid(sb, h)).toBe(originalPid)
    expect(appProcesses(h)).toEqual([originalPid])
    expect(liveSha()).toBe(sha(appBinary('1.0.0')))
  })

  it('fails verify-command: nothing changes on the host', async () => {
    const run = await runAction(inputs('2.0.0', { 'verify-command': '{binary} -version | grep -q 9.9.9' }))
    expect(run.code).toBe(1)
    expect(run.log).toMatch(/verify-command failed/)
    expect(appPid(sb, h)).toBe(originalPid)
    expect(liveSha()).toBe(sha(appBinary('1.0.0')))
  })
})

describe('tableflip: drains', () => {
  it('a drain that outlasts drain-timeout: proceed (the default): upgraded, the old process finishes its slow request and exits by itself', async () => {
    // The slow request ends when the test creates DONE, after the run: however long the run
    // takes, the old process still drains when it ends.
    rmSync(sb.hostPath(h, DONE), { force: true })
    const slow = httpGet(h.address, h.httpPort, `/slow?until=${DONE}`, 60_000)
    await sleep(200)
    const run = await runAction(inputs('2.0.0', { 'drain-timeout': '1s' }))
    if (run.code !== 0) console.log(run.log)
    expect(run.code).toBe(0)
    expect(run.outputs.result).toBe('upgraded')
    expect(run.log).toMatch(/still busy after drain-timeout/)
    expect(run.log).toMatch(/exits by itself once its last requests finish/)
    expect(sb.isAlive(originalPid)).toBe(true)
    writeFileSync(sb.hostPath(h, DONE), '')
    const answer = await slow
    expect(answer).toEqual({ status: 200, body: `slow until ${DONE} from ${originalPid}\n` })
    expect(await until(() => !sb.isAlive(originalPid), 10_000)).toBe(true)
    expect(appProcesses(h)).toEqual([appPid(sb, h)])
  })

  it('a second hand-over while the old process of the first still drains is refused before anything changes', async () => {
    rmSync(sb.hostPath(h, DONE), { force: true })
    const slow = httpGet(h.address, h.httpPort, `/slow?until=${DONE}`, 60_000)
    await sleep(200)
    // A first hand-over by hand, to v1 again: the old process keeps draining the slow request.
    sb.exec(h, ['kill', '-HUP', String(originalPid)])
    const first = await until(() => (appPid(sb, h) !== originalPid ? appPid(sb, h) : undefined), 10_000)
    expect(first).toBeDefined()
    const run = await runAction(inputs('2.0.0'))
    if (run.code !== 1) console.log(run.log)
    expect(run.code).toBe(1)
    expect(run.outputs.result).toBe('failed')
    expect(run.log).toContain(`the server ${first} still has its parent ${originalPid}`)
    expect(appPid(sb, h)).toBe(first)
    expect(liveSha()).toBe(sha(appBinary('1.0.0')))
    writeFileSync(sb.hostPath(h, DONE), '')
    expect(await slow).toEqual({ status: 200, body: `slow until ${DONE} from ${originalPid}\n` })
    expect(await until(() => !sb.isAlive(originalPid), 10_000)).toBe(true)
  })
})
