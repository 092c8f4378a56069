/**
 * tableflip's pre-flight: the process in the pid file, what it runs and how it was started, and
 * nothing that would make tableflip refuse or misdirect a hand-over (a child not yet ready, a
 * parent still exiting, an argv[0] that is not the live file). Every refusal says why and what to do.
 */
import { StepError } from '../../engine/step.js'
import { remoteSha256 } from '../../strategies/hot-upgrade/install.js'
import type { Running } from '../supervisor.js'
import { trustedServer } from '../trusted.js'
import { argv0Problem, exePath, exitingParent, isAlive, liveChildren } from './protocol.js'
import type { TableflipHost } from './state.js'

const fail = (message: string): never => {
  throw new StepError('preflight', message)
}

export async function inspectServer(s: TableflipHost, note: (m: string) => void): Promise<Running> {
  const { host } = s
  const pidFile = s.o.pidFile
  const sh = host.sudo ? 'sudo ' : ''
  const snap = await s.read()
  if (snap.pid === null)
    fail(
      `pid-file ${pidFile} holds no pid (missing or empty). Is the server running, and is pid-file the file it writes once ready (tableflip's Options.PIDFile)?`
    )
  const pid = snap.pid!
  if (!isAlive(snap, pid))
    fail(`pid-file ${pidFile} names pid ${pid}, which is not running. Start the server first`)
  const server = snap.procs.get(pid)!
  const exe = exePath(server)
  if (exe.path === '-' || exe.path === '')
    fail(
      `cannot read /proc/${pid}/exe: the server runs as another user. Deploy as that user, or set sudo: true`
    )
  if (s.o.binaryPath !== undefined && s.o.binaryPath !== exe.path)
    fail(
      `binary-path is ${s.o.binaryPath}, but the server ${pid} runs ${exe.path}. ` +
        `tableflip starts its own argv[0] again on a hand-over: leave binary-path empty or set it to ${exe.path}`
    )
  const livePath = exe.path
  // Before anything runs with privilege or is removed: who the server is, who may write its files.
  await trustedServer(host, s.o, pid, livePath)

  const parent = exitingParent(snap, pid)
  if (parent !== null)
    fail(
      `the server ${pid} still has its parent ${parent.pid}, the old process of an earlier hand-over, finishing its requests; ` +
        `tableflip refuses another hand-over until it has exited. Wait for it (${sh}kill -0 ${parent.pid} fails once it is gone), then deploy again`
    )
  const pending = liveChildren(snap, pid)
  if (pending.length > 0)
    fail(
      `the server ${pid} has a child that is not ready (${pending.map(p => `${p.pid} ${p.exe}`).join(', ')}): ` +
        `a hand-over may be in progress. Wait for it, or stop that process (${sh}kill ${pending.map(p => p.pid).join(' ')}), then deploy again`
    )

  let resolved: string | null = null
  if (server.argv0.startsWith('/')) {
    const r = await host.run(['readlink', '-f', '--', server.argv0], { sudo: host.sudo })
    if (r.code === 0) resolved = r.stdout.trim()
  }
  const problem = argv0Problem(server.argv0, livePath, resolved)
  if (problem !== null)
    fail(
      `the server ${pid} cannot be handed over to a new binary at ${livePath}: ${problem}. Start it once with its absolute path (${livePath}), then deploy`
    )
  note(
    `server ${pid} runs ${livePath}${exe.replaced ? ' (replaced on disk since it started)' : ''}, started as ${server.argv0}`
  )
  if (server.ppid !== 1)
    note(
      `its parent is pid ${server.ppid}, not init: a service manager or subreaper; it must let the new process outlive this one`
    )

  const arch = (await host.run(['uname', '-m'])).stdout.trim()
  const liveSha256 = await remoteSha256(host, livePath)
  if (liveSha256 === null) fail(`${livePath} does not exist on the host, although the server runs it`)
  note(`sha256 ${liveSha256!.slice(0, 12)}; ${arch}`)
  // The build that runs: the file at the live path, or what /proc keeps when it was replaced.
  const runningSha256 = exe.replaced
    ? ((await remoteSha256(host, `/proc/${pid}/exe`)) ?? liveSha256!)
    : liveSha256!
  return {
    pid,
    livePath,
    liveSha256: liveSha256!,
    runningSha256,
    exeReplaced: exe.replaced,
    version: null,
    arch
  }
}
