/**
 * Running a server's own executable (for its version) never with more privilege than the file's
 * owner has, and the host layer's guard that holds every code path to it.
 */
import { TrustError, type TrustFacts } from './trust.js'

/**
 * How the master's executable may be run (for its version) without more privilege than its
 * owner's: through sudo only when root owns it; as the deploy user when the deploy user owns it
 * (through /proc when the master is ours, else by its path when the file was not replaced); not at
 * all when another user owns it.
 */
export function masterExeRun(
  facts: TrustFacts,
  o: { sudo: boolean; livePath: string; replaced: boolean }
): ExeRun | { skip: string } {
  const exe = facts.paths.find(p => p.role === 'exe')
  const proc = `/proc/${facts.master.pid}/exe`
  if (exe === undefined) return { skip: 'its owner could not be read' }
  if (exe.uid === 0) return clear({ path: proc, sudo: o.sudo })
  if (exe.uid === facts.me.uid) {
    if (facts.master.euid === facts.me.uid) return clear({ path: proc, sudo: false })
    if (!o.replaced) return clear({ path: o.livePath, sudo: false })
  }
  return {
    skip: `it belongs to ${exe.owner} (uid ${exe.uid}); the action does not run it with another user's rights`
  }
}

/** How to run a server's executable; pass it as `exe` in the run's options. */
export interface ExeRun {
  readonly path: string
  readonly sudo: boolean
}

// Only masterExeRun adds to this set: an object literal with the same fields is no clearance.
const cleared = new WeakSet<object>()

function clear(run: ExeRun): ExeRun {
  const frozen = Object.freeze({ ...run })
  cleared.add(frozen)
  return frozen
}

/**
 * The guard of the host layer: a process's executable (/proc/<pid>/exe) run with sudo without
 * masterExeRun's clearance for exactly that path is refused before anything is sent. A root
 * master may run a file another user wrote; running it as root would hand that user root.
 */
export function refuseUnclearedExe(argv: readonly string[], options: { sudo?: boolean; exe?: object }): void {
  const first = argv[0] ?? ''
  if (!options.sudo || !/^\/proc\/\d+\/exe$/.test(first)) return
  const exe = options.exe as ExeRun | undefined
  if (exe !== undefined && cleared.has(exe) && exe.path === first && exe.sudo) return
  throw new TrustError(
    `refused to run ${first} with sudo: its owner was not checked (a bug of the action, reported as such; nothing was run)`
  )
}
