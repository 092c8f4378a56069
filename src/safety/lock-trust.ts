/**
 * The first read of a host's run, before the deploy lock makes its folder: which server the pid
 * file names, the binary it runs, and the trust checks (src/host/trust.ts) of the files and
 * folders involved. Without the sudo helper it is one round trip: the trust probe reads the pid
 * file itself and names the paths after the file the server runs, as the runner would; the runner
 * judges those facts only when it names the same paths (otherwise it probes again with its own).
 * The helper checks every argument before it runs anything, so through it the two stay apart.
 */
import { StepError } from '../engine/step.js'
import type { Host } from '../host/host.js'
import {
  acceptTrust,
  checkTrust,
  factsOf,
  PROBE,
  TrustError,
  type TrustedServer,
  type TrustFacts,
  type TrustPlan
} from '../host/trust.js'
import { DEFAULT_RELEASE_ROOT } from '../releases/state.js'
import { ReleaseStore } from '../releases/store.js'
import { trustPlan } from '../supervisors/trusted.js'

/** $1 pid file: its pid and that process's executable. */
export const RUNNING_EXE =
  'p=$(cat -- "$1" 2>/dev/null); case $p in ""|*[!0-9]*) exit 0;; esac; echo "$p"; readlink "/proc/$p/exe" 2>/dev/null'

export interface RunningServer {
  pid: number
  /** The file it runs (without " (deleted)"). */
  path: string
  /** /proc/<pid>/exe read "(deleted)". */
  replaced: boolean
}

export interface FirstReadOptions {
  pidFile: string
  binaryPath?: string
  releaseDir?: string
  masterUser?: string
}

/** pid and readlink output as the host printed them; null unless a real server's absolute path. */
function serverOf(pid: string | undefined, exe: string | undefined): RunningServer | null {
  const text = (exe ?? '').trim()
  const path = text.replace(/ \(deleted\)$/, '')
  // pid 1 is never a master (pre-flight refuses it): no lock is taken for it.
  return path.startsWith('/') && /^\d+$/.test(pid ?? '') && Number(pid) > 1
    ? { pid: Number(pid), path, replaced: path !== text }
    : null
}

/** The server named by the pid file and the binary it runs; null when unknown. */
export async function runningExecutable(host: Host, pidFile: string): Promise<RunningServer | null> {
  const r = await host.run(['sh', '-c', RUNNING_EXE, 'sh', pidFile], { sudo: host.sudo })
  const [pid, exe] = r.stdout.split('\n')
  return serverOf(pid, exe)
}

/** The release store of this run: the input, or the default named after the live binary. */
const storeOf = (host: Host, o: FirstReadOptions, live: string | undefined) =>
  o.releaseDir ?? (live === undefined ? undefined : ReleaseStore.forLive(host, undefined, live).dir)

const planOf = (o: FirstReadOptions, master: RunningServer, storeDir: string): TrustPlan =>
  trustPlan({ pidFile: o.pidFile, masterUser: o.masterUser }, master.pid, master.path, storeDir)

/** The trust checks of `master`'s files and `storeDir`; a refusal fails pre-flight. */
export async function trustOrRefuse(
  host: Host,
  o: FirstReadOptions,
  master: RunningServer,
  storeDir: string
): Promise<TrustFacts> {
  return checkTrust(host, planOf(o, master, storeDir)).catch(refuse)
}

const refuse = (e: unknown): never => {
  throw e instanceof TrustError ? new StepError('preflight', (e as Error).message) : e
}

export interface FirstRead {
  master: RunningServer | null
  releaseDir?: string
  /** The master with the facts that trusted it (when there is one). */
  trusted?: TrustedServer
}

const found = (master: RunningServer, releaseDir: string | undefined, facts: TrustFacts): FirstRead => ({
  master,
  releaseDir,
  trusted: { pid: master.pid, livePath: master.path, replaced: master.replaced, facts }
})

/**
 * The running server and its release store, trusted (a refusal fails pre-flight); master null
 * when the pid file names no readable server (pre-flight says why next, before anything changes).
 */
export async function firstRead(host: Host, o: FirstReadOptions): Promise<FirstRead> {
  if (host.sudo && host.privileged) {
    const master = await runningExecutable(host, o.pidFile)
    const releaseDir = storeOf(host, o, o.binaryPath ?? master?.path)
    if (master === null) return { master, releaseDir }
    return found(master, releaseDir, await trustOrRefuse(host, o, master, releaseDir!))
  }
  const given = storeOf(host, o, o.binaryPath) ?? ''
  const r = await host.run(
    ['sh', '-c', PROBE, 'sh', o.pidFile, '-', '', '', given, o.masterUser ?? '', DEFAULT_RELEASE_ROOT],
    { sudo: host.sudo, timeoutMs: 30_000 }
  )
  if (r.code !== 0) throw new Error(`${host.name}: cannot read owners and modes: ${r.stderr.trim()}`)
  // Paths come last on their line. The last line of a kind counts: the probe prints its own after
  // the executable's name, which is the host's text.
  const lines = new Map(r.stdout.split('\n').map(l => [l.split('\t')[0], l.split('\t').slice(1)] as const))
  const [pid, ...exe] = lines.get('running') ?? []
  const master = serverOf(pid, exe.join('\t'))
  const releaseDir = storeOf(host, o, o.binaryPath ?? master?.path)
  if (master === null) return { master, releaseDir }
  const plan = planOf(o, master, releaseDir!)
  const named = { staging: lines.get('staging')?.join('\t'), store: lines.get('storedir')?.join('\t') }
  if (named.staging !== plan.stagingPath || named.store !== plan.storeDir)
    return found(master, releaseDir, await trustOrRefuse(host, o, master, releaseDir!))
  try {
    return found(master, releaseDir, acceptTrust(host, plan, factsOf(host, r, master.pid, master.path)))
  } catch (e) {
    return refuse(e)
  }
}
