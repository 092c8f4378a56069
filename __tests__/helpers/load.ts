/**
 * The action run once while 4 connection-per-request loops (optionally keep-alive) hit the host's
 * /pid: bounded in requests and time, started only once the load runs, stopped 300 ms after the
 * action exits. The log is printed when a request failed or the exit code was not the expected one.
 */
import type { SandboxHost } from '../../test/sandbox/sandbox.js'
import { describeLoad, startLoad, type LoadResult } from '../../test/load.js'
import { runAction, type ActionRun } from './action.js'

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

export interface UnderLoad {
  run: ActionRun
  load: LoadResult
  /** Requests answered while the action ran. */
  duringAction: number
}

export async function actionUnderLoad(
  h: SandboxHost,
  label: string,
  inputs: Record<string, string>,
  o: { expectCode: number; keepAlive?: boolean; countBodies?: boolean }
): Promise<UnderLoad> {
  const load = startLoad({
    host: h.address,
    port: h.httpPort,
    path: '/pid',
    concurrency: 4,
    maxRequests: 200_000,
    maxMs: 60_000,
    keepAlive: o.keepAlive ?? false,
    countBodies: o.countBodies ?? false
  })
  while (load.count() < 100) await sleep(10)
  const before = load.count()
  const run = await runAction(inputs)
  const duringAction = load.count() - before
  await sleep(300)
  const result = await load.stop()
  console.log(`${describeLoad(label, result)}; ${duringAction} requests while the action ran`)
  if (result.failed > 0 || run.code !== o.expectCode) console.log(run.log.replace(/^::add-mask::.*\n/gm, ''))
  return { run, load: result, duringAction }
}
