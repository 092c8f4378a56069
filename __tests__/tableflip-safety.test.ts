/**
 * Safety for a protocol that cannot hold its old process (tableflip, sandbox host 127.0.0.124):
 * a runner that vanishes after the hand-over, during the health gate, leaves the host on its old
 * version: the watchdog on the host puts the old binary back and hands over to it once the old
 * process has gone. No connection-per-request client fails meanwhile, and the post step of the
 * killed run finds the host rolled back and releases the lock.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { httpGet, sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { APP, appBinary, appPid, appProcesses, appStart } from '../test/sandbox/tableflip.js'
import { sandboxInputs } from './helpers/action.js'
import { loadGenerator, processesOf, runMain, runPost, stateFile, type LoadResult } from './helpers/safety.js'
import { sleep, until } from './helpers/ssh.js'

const RELEASE_DIR = '/var/lib/zerodown/app'
const LOCK = `${RELEASE_DIR}/lock`
const WATCHDOG = `${RELEASE_DIR}/watchdog`

let sb: Sandbox
let h: SandboxHost
beforeAll(() => {
  sb = sandboxUp({ first: 124, count: 1 })
  h = sb.hosts[0]!
})
afterAll(() => sb?.down())

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')
const real = (p: string) => sb.hostPath(h, p)
const github = (run: string) => ({
  GITHUB_REPOSITORY: 'acme/app',
  GITHUB_RUN_ID: run,
  GITHUB_RUN_ATTEMPT: '1',
  GITHUB_SHA: 'f'.repeat(40),
  GITHUB_WORKFLOW: 'deploy'
})

it('SIGKILL of the runner after the hand-over: the watchdog hands back to the old binary; no request fails; post releases the lock', async () => {
  const oldPid = appStart(sb, h, { variant: '1.0.0', reset: true })
  const v1 = sha(appBinary('1.0.0'))
  const inputs = {
    ...sandboxInputs(sb, [h]),
    supervisor: 'tableflip',
    'pid-file': APP.pidFile,
    'health-url': `http://{host}:${h.httpPort}/health`,
    binary: appBinary('2.0.0'),
    version: '2.0.0',
    // The watchdog's lease is these plus a margin; the health gate is slow enough to be killed in.
    'start-timeout': '2s',
    'health-interval': '1s',
    'health-timeout': '5s',
    'drain-timeout': '2s'
  }
  const state = stateFile()
  const load = loadGenerator(h.address, h.httpPort, { concurrency: 4, maxMs: 120_000 })
  let traffic: LoadResult
  let handedTo = 0
  try {
    const run = await runMain(inputs, state, {
      env: github('7001'),
      kill: { when: /\[handoff\] \d+ is ready/, signal: 'SIGKILL' }
    })
    expect(run.signal).toBe('SIGKILL')
    expect(run.log).toMatch(/watchdog \d+ armed on the host/)
    // The runner is gone after the hand-over: the new binary serves, the old process drains away.
    handedTo = appPid(sb, h)!
    expect(handedTo).not.toBe(oldPid)
    expect(sha(`/proc/${handedTo}/exe`)).toBe(sha(appBinary('2.0.0')))
    const result = await until(
      () => existsSync(real(`${WATCHDOG}/result`)) && readFileSync(real(`${WATCHDOG}/result`), 'utf8'),
      60_000,
      200
    )
    expect(result).toBe('rolled-back\n')
    await sleep(500)
  } finally {
    traffic = await load.stop()
  }
  const back = appPid(sb, h)!
  expect(back).not.toBe(handedTo)
  expect(back).not.toBe(oldPid)
  expect(sha(`/proc/${back}/exe`)).toBe(v1)
  expect(sha(real(APP.binaryPath))).toBe(v1)
  expect(await until(() => appProcesses(h).length === 1, 15_000)).toBe(true)
  expect((await httpGet(h.address, h.httpPort, '/version')).body.trim()).toBe('1.0.0')
  expect(await until(() => processesOf(sb, h, /zerodown-watchdog/).length === 0, 5000)).toBe(true)
  expect(traffic.ok).toBeGreaterThan(50)
  expect(traffic).toMatchObject({ failed: 0, errors: [] })
  // The killed run still holds the lock: its post step finds the host rolled back and releases it.
  expect(existsSync(real(`${LOCK}/owner`))).toBe(true)
  const post = await runPost(inputs, state, { env: github('7001') })
  expect(post.code).toBe(0)
  expect(post.log).toContain('the watchdog already ended: rolled-back')
  expect(post.log).toContain(`released the deploy lock ${LOCK}`)
  expect(existsSync(real(LOCK))).toBe(false)
  expect(appPid(sb, h)).toBe(back)
})
