/**
 * HAProxy's part of pre-flight (what must hold before anything on a host changes) and of verify
 * (the staged binary's config check with the running master's own arguments). Every refusal says
 * why and what to do.
 */
import { StepError } from '../../engine/step.js'
import { type Host } from '../../host/host.js'
import { masterExeRun } from '../../host/exe-run.js'
import { remoteSha256 } from '../../strategies/hot-upgrade/install.js'
import type { Running } from '../supervisor.js'
import { trustedServer, type TrustInputs } from '../trusted.js'
import { alive, checkArgv, parseVersion, probe, reloading, startArgs, workers } from './protocol.js'

/** What pre-flight learns of the running master. */
export interface MasterFacts extends Running {
  /** The master's command line as started (a reload's -sf/-x taken out). */
  argv0: string
  args: string[]
  /** Its working directory: relative paths in its arguments are relative to it. */
  cwd: string
  /** The workers serving before the reload: after it, they are the old ones. */
  oldWorkerPids: number[]
}

const fail = (message: string): never => {
  throw new StepError('preflight', message)
}

const stripDeleted = (exe: string) =>
  exe.endsWith(' (deleted)') ? { path: exe.slice(0, -10), replaced: true } : { path: exe, replaced: false }

export async function inspectMaster(
  host: Host,
  plan: TrustInputs & { binaryPath?: string },
  note: (s: string) => void
): Promise<MasterFacts> {
  const sudo = host.sudo
  const first = await probe(host, plan.pidFile, plan.binaryPath ?? '/', 0)
  if (first.pidFile === null)
    fail(
      `pid-file ${plan.pidFile} holds no pid (missing or empty). Is HAProxy running, and is pid-file the path of its pidfile (or -p)?`
    )
  const pid = first.pidFile!
  let snap = await probe(host, plan.pidFile, plan.binaryPath ?? '/', pid)
  const master = snap.master
  if (!alive(master))
    return fail(`pid-file ${plan.pidFile} names pid ${pid}, which is not running. Start HAProxy first`)
  if (master.exe === '-')
    fail(`cannot read /proc/${pid}/exe: HAProxy runs as another user. Deploy as that user, or set sudo: true`)
  const exe = stripDeleted(master.exe)
  const livePath = plan.binaryPath ?? exe.path
  // Before anything runs with privilege: who the master is, who may write its files.
  const trust = await trustedServer(host, plan, pid, livePath)
  snap = await probe(host, plan.pidFile, livePath, pid)
  if (!snap.mworker && workers(snap).length === 0)
    fail(
      `the HAProxy process ${pid} is not a master-worker master (no HAPROXY_MWORKER in its environment, no worker children). ` +
        `Only master-worker mode reloads in place: start it with -W (or "master-worker" in the global section)`
    )
  if (reloading(master))
    fail(
      `the master ${pid} is in the middle of a reload (its command line still carries -sf). Wait a moment and deploy again`
    )
  const { argv0, args } = startArgs(master.argv)
  await checkArgv0(host, pid, argv0, snap.cwd, livePath)
  if (plan.binaryPath !== undefined && !exe.replaced && exe.path !== plan.binaryPath)
    note(`the master runs ${exe.path}; binary-path ${plan.binaryPath} is what it re-executes`)
  const ws = workers(snap)
  if (ws.length === 0)
    fail(`the master ${pid} has no worker: it serves nothing (a failed start?). Restart HAProxy, then deploy`)
  const arch = (await host.run(['uname', '-m'])).stdout.trim()
  const liveSha256 = await remoteSha256(host, livePath)
  if (liveSha256 === null) fail(`${livePath} does not exist on the host, although the master re-executes it`)
  // Never with more privilege than the file's owner has.
  const how = masterExeRun(trust, { sudo, livePath: exe.path, replaced: exe.replaced })
  if ('skip' in how) note(`the live binary's version is not read: ${how.skip}`)
  const v =
    'skip' in how ? null : await host.run([how.path, '-v'], { sudo: how.sudo, exe: how, timeoutMs: 15_000 })
  const version = v === null ? null : parseVersion(v.stdout + v.stderr)
  note(
    `master ${pid} (${argv0} ${args.join(' ')}), workers ${ws.map(w => w.pid).join(', ')}; ` +
      `version ${version ?? 'unknown'}; sha256 ${liveSha256!.slice(0, 12)}; ${arch}`
  )
  return {
    pid,
    livePath,
    liveSha256: liveSha256!,
    // The build that runs: the file at the live path, or what /proc keeps when it was replaced.
    runningSha256: exe.replaced
      ? ((await remoteSha256(host, `/proc/${pid}/exe`)) ?? liveSha256!)
      : liveSha256!,
    exeReplaced: exe.replaced,
    version,
    arch,
    argv0,
    args,
    cwd: snap.cwd,
    oldWorkerPids: ws.map(w => w.pid)
  }
}

/** HAProxy re-executes its argv[0] on reload: it must be an absolute path that is the live file. */
async function checkArgv0(
  host: Host,
  pid: number,
  argv0: string,
  cwd: string,
  livePath: string
): Promise<void> {
  if (!argv0.includes('/'))
    fail(
      `the master ${pid} was started as "${argv0}", without a slash: HAProxy re-executes argv[0] through PATH on reload, ` +
        `which may be another file than ${livePath}. Start it with the absolute path (${livePath}) once, then deploy`
    )
  const resolved = await host.run([
    'sh',
    '-c',
    'cd -- "$1" 2>/dev/null; readlink -f -- "$2"',
    'sh',
    cwd,
    argv0
  ])
  const target = resolved.stdout.trim()
  if (resolved.code === 0 && target !== '' && target !== livePath)
    fail(
      `the master re-executes ${argv0} on reload, which is ${target}, not ${livePath}. ` +
        `Set binary-path to ${target}, or start HAProxy with ${livePath} as its argv[0]`
    )
}

/** `haproxy -c` with the staged binary and the master's own arguments, in its directory; then `-v`. */
export async function verifyBinary(
  host: Host,
  facts: MasterFacts,
  stagedPath: string,
  note: (s: string) => void
): Promise<{ version: string | null }> {
  const sudo = host.sudo
  const argv = checkArgv(stagedPath, facts.args)
  const test = await host.run(
    ['sh', '-c', 'cd -- "$1" || exit 97; shift; exec "$@"', 'sh', facts.cwd, ...argv],
    {
      sudo,
      timeoutMs: 60_000
    }
  )
  if (test.code !== 0)
    throw new StepError(
      'verify',
      `the new binary fails its config check (${argv.join(' ')}): ` +
        (test.stderr || test.stdout).trim().split('\n').slice(-3).join(' | ')
    )
  note(`config check passed with the master's arguments (${argv.slice(1).join(' ')})`)
  const v = await host.run([stagedPath, '-v'], { sudo, timeoutMs: 15_000 })
  const version = parseVersion(v.stdout + v.stderr)
  note(`new binary: version ${version ?? 'unknown'}`)
  return { version }
}
