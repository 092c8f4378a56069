/**
 * nginx's part of pre-flight (what must hold before anything on a host changes) and of verify
 * (what the staged binary must pass before it takes the live path). Every refusal says why and
 * what to do.
 */
import type { ExecResult, Host } from '../../host/host.js'
import type { TrustedServer } from '../../host/trust.js'
import { commandLine } from '../../host/quote.js'
import { GATE_CLOSED } from '../../host/remote-shell.js'
import { masterExeRun } from '../../host/exe-run.js'
import { refuseUpgradeInProgress, removeStaleOldbin } from './leftovers.js'
import { StepError } from '../../engine/step.js'
import { remoteSha256 } from '../../strategies/hot-upgrade/install.js'
import type { Running, SupervisorContext } from '../supervisor.js'
import { trustedServer } from '../trusted.js'
import { configFilesOf, workerProcessesOf } from './config-files.js'
import {
  configHazards,
  exePath,
  isAlive,
  liveChildren,
  newMasterCandidates,
  parseMasterTitle,
  parseVersion,
  probe,
  type MasterCommand,
  type Snapshot
} from './protocol.js'

/** What pre-flight learns of the running master. */
export interface MasterFacts extends Running {
  argv0: string
  configArgs: string[]
  oldWorkerPids: number[]
}

/** What pre-flight is told: the pid file, and what the trust checks need. */
export interface InspectPlan {
  pidFile: string
  binaryPath?: string
  /** The release store (default: beside the binary's name under /var/lib/zerodown): checked like the live folder. */
  releaseDir?: string
  /** One more user the master may run as (master-user). */
  masterUser?: string
}

const fail = (message: string): never => {
  throw new StepError('preflight', message)
}

/**
 * The running master's reads that need only its pid, its file and the facts that trusted it: no
 * decision lies between them, so they are issued together (one round trip, pipelined). Its
 * executable is run for its version never with more privilege than the file's owner has.
 */
export function masterReads(host: Host, server: TrustedServer) {
  const { pid, livePath, replaced, facts } = server
  const how = masterExeRun(facts, { sudo: host.sudo, livePath, replaced })
  const reads = Promise.all([
    host.run(['uname', '-m']),
    remoteSha256(host, livePath),
    remoteSha256(host, `/proc/${pid}/exe`),
    'skip' in how ? null : host.run([how.path, '-v'], { sudo: how.sudo, exe: how, timeoutMs: 15_000 })
  ])
  reads.catch(() => undefined) // awaited by inspect, or dropped when it finds another server
  // What the master was started as is most often the file it runs: resolved in the same trip.
  const realLive = host.run(['readlink', '-f', '--', livePath]).catch((e: Error) => e)
  return { server, how, reads, realLive }
}
export type MasterReads = ReturnType<typeof masterReads>

export async function inspectMaster(
  host: Host,
  plan: InspectPlan,
  ctx: Pick<SupervisorContext, 'note' | 'learn' | 'readOnly'>,
  /** The probe sent ahead (behind the deploy lock's command); a failed one is read again. */
  first?: Promise<Snapshot> | null,
  /** The master's reads sent with it: taken only for the same master trusted by the same facts. */
  early?: MasterReads | null
): Promise<MasterFacts> {
  const note = (s: string) => ctx.note(s)
  const pidFile = plan.pidFile
  let snap = await (first ? first.catch(() => probe(host, pidFile)) : probe(host, pidFile))
  const pid = masterPid(snap, pidFile, host)

  // Before anything runs with privilege or is removed: who the master is, who may write its files.
  const exe = exePath(snap.procs.get(pid)!)
  if (exe.path === '-' || exe.path === '')
    fail(
      `cannot read /proc/${pid}/exe: the master runs as another user. Deploy as that user, or set sudo: true`
    )
  const trust = await trustedServer(host, plan, pid, exe.path)

  if (snap.oldbinExists && ctx.readOnly)
    note(`a stale ${pidFile}.oldbin is left by an interrupted run: a deploy removes it`)
  else if (snap.oldbinExists) snap = await removeStaleOldbin(host, snap, pidFile, note)
  const livePath = exe.path
  ctx.learn?.({ pid, livePath })
  // Before the master's checks, so that a refusal below still reports what serves.
  const same = (s: TrustedServer) =>
    s.pid === pid && s.livePath === livePath && s.replaced === exe.replaced && s.facts === trust
  const { how, reads, realLive } =
    early && same(early.server)
      ? early
      : masterReads(host, { pid, livePath, replaced: exe.replaced, facts: trust })
  if ('skip' in how) note(`the live binary's version is not read: ${how.skip}`)
  const argv0 = parseMasterTitle(snap.procs.get(pid)!.title)?.argv0
  const argv0Real =
    argv0 === livePath
      ? realLive
      : argv0?.startsWith('/')
        ? host.run(['readlink', '-f', '--', argv0]).catch((e: Error) => e)
        : undefined
  // After a lost connection the step runs again, without what was sent ahead.
  const [uname, liveSha256, procSha256, v] = await reads
  const version = v === null ? null : parseVersion(v.stderr + v.stdout)
  ctx.learn?.({ pid, livePath, version })
  const { cmd } = await checkMaster(host, snap, pid, exe, plan, note, argv0Real)
  const arch = uname.stdout.trim()
  if (liveSha256 === null) fail(`${livePath} does not exist on the host, although the master runs it`)
  // What runs, by content: a file put back under its path (after a rollback) reads "(deleted)" in
  // /proc but is the same build; a package manager's new file is not.
  const runningSha256 = procSha256 ?? liveSha256!
  const replaced = runningSha256 !== liveSha256
  note(
    `master ${pid} runs ${livePath}, started as ${cmd.argv0}` +
      (replaced
        ? `; the file there was replaced since it started: it runs sha256 ${runningSha256.slice(0, 12)}, the file on disk is ${liveSha256!.slice(0, 12)}`
        : exe.replaced
          ? ` (/proc/${pid}/exe reads "(deleted)": the same build was put back under its path, e.g. by a rollback)`
          : '')
  )
  const workers = liveChildren(snap, pid).map(p => p.pid)
  note(
    `${workers.length} workers; version ${version ?? 'unknown'}; sha256 ${runningSha256.slice(0, 12)}; ${arch}`
  )
  return {
    pid,
    livePath,
    liveSha256: liveSha256!,
    runningSha256,
    exeReplaced: replaced,
    argv0: cmd.argv0,
    configArgs: cmd.configArgs,
    version,
    arch,
    oldWorkerPids: workers
  }
}

/** The running master's pid as the pid file names it, or a refusal that says what is wrong. */
function masterPid(snap: Snapshot, pidFile: string, host: Host): number {
  if (snap.pid === 1 || snap.oldbinPid === 1)
    fail(
      `pid-file ${snap.pid === 1 ? pidFile : `${pidFile}.oldbin`} names pid 1 (init), which is never a server's master. Check pid-file: it must be the path of the pid directive of the server's config`
    )
  refuseUpgradeInProgress(snap, pidFile, host)
  if (snap.pid === null)
    fail(
      `pid-file ${pidFile} holds no pid (missing or empty). Is the server running, and is pid-file the path of its pid directive?`
    )
  if (!isAlive(snap, snap.pid))
    fail(`pid-file ${pidFile} names pid ${snap.pid}, which is not running. Start the server first`)
  return snap.pid!
}

/** The master itself: a master process, daemonized, readable, started by its absolute path. */
async function checkMaster(
  host: Host,
  snap: Snapshot,
  pid: number,
  exe: { path: string; replaced: boolean },
  plan: { binaryPath?: string },
  note: (s: string) => void,
  argv0Real?: Promise<ExecResult | Error>
): Promise<{ cmd: MasterCommand }> {
  const master = snap.procs.get(pid)!
  const strays = newMasterCandidates(snap, pid)
  if (strays.length > 0)
    fail(
      `the master ${pid} has a child that is not a worker (${strays.map(p => `${p.pid} "${p.title}"`).join(', ')}): ` +
        `an upgrade may be in progress. Wait for it, or stop that process, then deploy again`
    )

  const cmd = parseMasterTitle(master.title)
  if (cmd === null) fail(`cannot read the command line of the master ${pid}`)
  if (/\bmaster_process\s+off\b/.test(master.title) || !/master process/.test(master.title))
    fail(
      `pid ${pid} is not a master process ("${master.title}"): with master_process off a binary upgrade is impossible`
    )
  if (/\bdaemon\s+off\b/.test(master.title)) fail(daemonOffMessage(pid, 'its command line sets daemon off'))

  if (plan.binaryPath !== undefined && plan.binaryPath !== exe.path) {
    // Paths as the system resolves them: on a merged-/usr host /sbin/nginx is /usr/sbin/nginx.
    const r = await host.run(['readlink', '-f', '--', plan.binaryPath])
    const real = r.code === 0 ? r.stdout.trim() : ''
    if (real !== exe.path)
      fail(
        `binary-path is ${plan.binaryPath}${real && real !== plan.binaryPath ? ` (${real} once its links are resolved)` : ''}, but the master ${pid} runs ${exe.path}. ` +
          `On USR2 nginx re-executes its argv[0] (${cmd!.argv0}), which is ${exe.path}: leave binary-path empty or set it to ${exe.path}`
      )
    note(`binary-path ${plan.binaryPath} is ${exe.path} once its links are resolved`)
  }
  const livePath = exe.path
  if (!cmd!.argv0.startsWith('/'))
    fail(
      `the master ${pid} was started as "${cmd!.argv0}", a relative path; nginx re-executes argv[0] on USR2, which then fails. ` +
        `Start it with its absolute path (${livePath}) once, then deploy`
    )
  const resolved = await (argv0Real ?? host.run(['readlink', '-f', '--', cmd!.argv0]))
  if (resolved instanceof Error) throw resolved
  if (resolved.code === 0 && resolved.stdout.trim() !== livePath && !exe.replaced)
    fail(
      `the master's argv[0] ${cmd!.argv0} resolves to ${resolved.stdout.trim()}, not to the file it runs (${livePath})`
    )

  // A daemonized master was re-parented to init, or to a subreaper (systemd --user, a container's
  // init): only a hint, not a refusal. daemon off itself is caught for certain by the command line
  // above and the config dump at verify, and an ignored WINCH fails its step (and rolls back).
  if (master.ppid !== 1 && master.sid !== pid) {
    const parent = await host.readFile(`/proc/${master.ppid}/comm`).catch(() => null)
    note(
      `the master's parent is pid ${master.ppid} (${(parent ?? '?').trim()}), not init, and it does not lead its own session: ` +
        'a subreaper, or nginx started in the foreground; the config test tells whether daemon is off'
    )
  }

  return { cmd: cmd! }
}

function daemonOffMessage(pid: number, why: string): string {
  return (
    `the master ${pid} does not run daemonized (${why}). With daemon off nginx ignores WINCH, so old workers ` +
    `cannot be drained, and a supervisor (systemd Type=simple, a container) may kill the new master when the old one exits. ` +
    `Run nginx with daemon on (systemd Type=forking with PIDFile=) to use hot upgrades`
  )
}

/** The config test (-T) and -v; with `gate`, run only if it is open (null when it was closed). */
export function sendVerify(
  host: Host,
  facts: MasterFacts,
  stagingPath: string
): Promise<[ExecResult, ExecResult]>
export function sendVerify(
  host: Host,
  facts: MasterFacts,
  stagingPath: string,
  gate: string
): Promise<[ExecResult, ExecResult] | null>
export function sendVerify(
  host: Host,
  facts: MasterFacts,
  stagingPath: string,
  gate?: string
): Promise<[ExecResult, ExecResult] | null> {
  const sudo = host.sudo
  const need = gate ? { need: gate } : undefined
  const sent = Promise.all([
    host.run([stagingPath, '-T', ...facts.configArgs], { sudo, timeoutMs: 60_000, gate: need }),
    host.run([stagingPath, '-v'], { sudo, timeoutMs: 15_000, gate: need })
  ])
  return sent.then(([test, v]) => (gate && test.code === GATE_CLOSED ? null : [test, v]))
}

/** What the config dump says the new master loads. */
export interface ConfigDump {
  configFiles: string[]
  workers: number | 'auto'
}

/**
 * The config test with the new binary and the running master's own -p/-c/-g, and its hazards;
 * its version read in the same round trip (pipelined: `-v` waits behind the test on the host's
 * shell, so a test that hangs costs its timeout once; a binary that fails its test has already
 * run, so `-v` risks nothing more).
 */
export async function verifyBinary(
  host: Host,
  facts: MasterFacts,
  stagingPath: string,
  note: (s: string) => void,
  /** The same commands sent ahead behind a gate (sendVerify); null: the gate was closed. */
  early?: Promise<[ExecResult, ExecResult] | null>
): Promise<ConfigDump & { version: string | null }> {
  const testArgv = [stagingPath, '-T', ...facts.configArgs]
  const ahead = early ? await early : null
  const [test, v] = ahead ?? (await sendVerify(host, facts, stagingPath))
  if (ahead) note('the config test ran on the host as soon as the upload checked out there')
  // The command as sh reads it (-g 'daemon on; ...' quoted), so that it can be pasted on the host.
  if (test.code !== 0)
    throw new StepError(
      'verify',
      `the new binary fails its config test (${commandLine(testArgv)}): ${(test.stderr || test.stdout).trim().split('\n').slice(-3).join(' | ')}`
    )
  const gIndex = facts.configArgs.indexOf('-g')
  const hazards = configHazards(test.stdout, gIndex >= 0 ? (facts.configArgs[gIndex + 1] ?? '') : '')
  if (hazards.masterOff)
    throw new StepError(
      'verify',
      'the config sets master_process off: a binary upgrade needs a master process'
    )
  if (hazards.daemonOff)
    throw new StepError('verify', daemonOffMessage(facts.pid, 'the config sets daemon off'))
  note("config test passed with the running master's arguments")
  const dump = { configFiles: configFilesOf(test.stdout), workers: workerProcessesOf(test.stdout) }
  const version = parseVersion(v.stderr + v.stdout)
  note(`new binary: version ${version ?? 'unknown'}`)
  return { ...dump, version }
}
