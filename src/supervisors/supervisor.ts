/**
 * A Supervisor knows one server's hand-over protocol: how to find the running server, check a
 * staged binary, start the new one beside it, take the old one out of service, wait for it,
 * retire it, and go back. It knows nothing of fleets, strategies, locks or GitHub; the
 * hot-upgrade strategy (src/strategies/hot-upgrade.ts) turns these members into steps.
 *
 * Three protocols shape it (see docs/architecture.md):
 * - nginx (src/supervisors/nginx): a new master is a child of the old one; the old one stays
 *   alive with its sockets after its workers stopped, so it can be held and revived.
 * - HAProxy master-worker: the master re-executes itself (same pid, new executable read from its
 *   argv[0]) and starts new workers; the old workers soft-stop by themselves. Success is judged
 *   by the new workers' executables; a failed reload leaves the master in "wait mode".
 * - cloudflare/tableflip (Go): a handoff starts a child that inherits the fds and names itself in
 *   the pid file after Ready(); the parent drains and exits by itself. It cannot be held, and a
 *   rollback is another handoff, once the parent has gone.
 *
 * Every remote command goes through Host.run as an argv list (quoted in src/host/quote.ts).
 */
import type { StepError } from '../engine/step.js'
import type { Host } from '../host/host.js'
import type { TrustedServer } from '../host/trust.js'

/** What a supervisor can do; settings refuse pairings it cannot honour before any host is touched. */
export interface SupervisorCapabilities {
  /**
   * The old process can stay alive after the drain, holding only its sockets, until the whole
   * fleet passed (rollback-fleet). nginx: yes (the old master, workers stopped). HAProxy: no (the
   * old workers soft-stop and exit; the master is already the new executable). tableflip: no (the
   * parent exits by itself after the child's Ready()).
   */
  readonly canHold: boolean
  /**
   * Without canHold, whether a `hold: true` run can still leave the host held: the hand-over
   * completes (the old process drains and exits), the previous binary stays kept, the watchdog
   * stays armed, and mode: abort (or the watchdog at hold-timeout) hands over back to it.
   * tableflip and HAProxy: yes. nginx: not needed (it holds its old master).
   */
  readonly handBack: boolean
  /**
   * How a revert finds the old version. `old-process`: the old process is still alive and takes
   * over again (nginx: HUP it, stop the new master); the old binary goes back afterwards.
   * `handoff`: the old binary must be back at the live path first, then another hand-over runs
   * (HAProxy: its reload signal again; tableflip: HUP again, once the parent has gone).
   */
  readonly revert: 'old-process' | 'handoff'
  /**
   * The new server keeps the old pid (HAProxy's master re-exec): reports show no "new pid", and
   * the watchdog and post step judge by executables, not by which pid is alive.
   */
  readonly samePid: boolean
}

/** Report entry names and words this supervisor brings to the steps, logs and reports. */
export interface SupervisorNames {
  /** The id in the `supervisor` input: nginx, haproxy, tableflip. */
  readonly id: string
  /** For humans: "nginx (master/worker)". */
  readonly title: string
  /** Report entry of start/isolate/retire: nginx usr2, winch, quit; HAProxy reload, -, retire; tableflip handoff, -, retire. */
  readonly steps: { readonly start: string; readonly isolate?: string; readonly retire: string }
  /** How the old and new processes are called in messages: nginx "old master"/"new master"; tableflip "parent"/"child". */
  readonly old: string
  readonly new: string
  /** What retire does to the old process, in a sentence: nginx "told to QUIT"; tableflip "left to exit". */
  readonly retiring: string
}

/** What inspect found: the running server, before anything changes. */
export interface Running {
  /**
   * The pid the protocol signals. nginx and HAProxy: the master (from the pid file); tableflip:
   * the serving process named in the pid file. Never a process group.
   */
  pid: number
  /** The binary's live path (the master's real executable, or the binary-path input). */
  livePath: string
  liveSha256: string
  /** sha256 of what the process runs (/proc/<pid>/exe): the identity of the live build. */
  runningSha256: string
  /** The process runs another file than the one at the live path (a package manager replaced it). */
  exeReplaced: boolean
  /** The running binary's version, when it says. */
  version: string | null
  /** Machine architecture of the live binary (ELF), '' when unknown. */
  arch: string
}

/** How a member reports and waits. */
export interface SupervisorContext {
  note(message: string): void
  /** A run again after a lost connection: read back what the host shows before acting. */
  readonly retrying: boolean
  /** What inspect has learnt so far, as it learns it: a host refused later still reports what serves. */
  learn?(known: { pid?: number; livePath?: string; version?: string | null }): void
  /**
   * Plan and status modes: read only. What a deploy's inspect would tidy (a stale pid file of
   * an earlier upgrade) is only noted.
   */
  readonly readOnly?: boolean
}

export interface DrainOptions {
  timeoutMs: number
  intervalMs: number
  /** Old workers (or old processes) left, over time. */
  record(atMs: number, left: number): void
}

/** One host's session with the supervisor; it keeps what it learnt (pids, what was sent). */
export interface SupervisorSession {
  /**
   * Reads the running server and refuses what the protocol cannot hand over, each with its fix.
   * nginx: pid file, master title, `daemon off`, `master_process off`, an old master still alive.
   * HAProxy: master-worker mode (-W), an argv[0] with a slash (it re-execs through PATH otherwise),
   * the master not in wait mode. tableflip: the pid file's process, no parent still exiting.
   */
  inspect(ctx: SupervisorContext): Promise<Running>
  /**
   * Optional: sends the reads `inspect` starts with now, behind a command still on its way (the
   * deploy lock's), so that they come back with its answer; `inspect` then takes them.
   * `server`: the running server as the lock's first read found and trusted it; reads of it
   * (its file's sha256, its version) may go too, and `inspect` takes them only when it finds the
   * same server trusted by the same facts.
   */
  prefetch?(server?: TrustedServer): void
  /**
   * Checks the staged binary with the running server's own arguments; returns its version.
   * nginx: `<staged> -t` + `-v`. HAProxy: `<staged> -c -f <cfg>` + `-v`. tableflip: the app's
   * own check, if any (an executable of the right architecture at least).
   */
  verify(ctx: SupervisorContext, stagedPath: string): Promise<{ version: string | null }>
  /**
   * Starts the new binary beside the old and waits until it serves; returns the pid that serves
   * now. nginx: its upgrade signal, a new master child with workers. HAProxy: the reload signal to
   * the master; new workers
   * running the live file (the master's pid is unchanged). tableflip: HUP; the pid file names a
   * child after Ready(). A start whose new process dies reports it at once.
   */
  start(ctx: SupervisorContext, options: { startTimeoutMs: number; intervalMs: number }): Promise<number>
  /**
   * Takes the old process out of service so that health checks judge the new binary alone.
   * nginx: the signal that stops the old workers, wait until none accepts. HAProxy and tableflip: absent (the old
   * workers/parent stop accepting as part of start).
   */
  isolate?(ctx: SupervisorContext): Promise<void>
  /** The processes that serve the new binary, as the health gate starts (nginx: the new master and its workers). */
  serving(): Promise<{ pid: number; workers: number[] }>
  /**
   * Throws (a StepError) when the new server stopped serving since `serving()`: its main process
   * exited, or its workers are crashing (not the same processes any more). Polled by the health
   * gate. HAProxy: the master and its new workers; tableflip: the child.
   */
  stillServing(was: { pid: number; workers: number[] }): Promise<void>
  /**
   * A failed health gate, told with what the supervisor knows that may be its cause. nginx: the
   * configuration files changed since the old master started (the new one loads them as they are).
   */
  healthFailure?(error: StepError): StepError
  /**
   * Waits until the old process holds no connection; false on timeout. nginx: the old master's
   * workers exit. HAProxy: the soft-stopping old workers exit. tableflip: the parent exits.
   */
  drain(ctx: SupervisorContext, options: DrainOptions): Promise<boolean>
  /** The old processes still busy with connections (after a drain that timed out), for its message. */
  busyOld(): Promise<number[]>
  /** Keeps the old process (only with canHold): nginx has nothing to do, its master waits with its sockets. */
  hold?(ctx: SupervisorContext): Promise<void>
  /**
   * Ends the old process: the point of no return. nginx: QUIT the old master, wait for it (with
   * `unfinished`: busy workers may still finish after it). HAProxy: check that no old worker is
   * left and the master left wait mode. tableflip: check that the parent has exited.
   */
  retire(ctx: SupervisorContext, options: { unfinished: boolean; intervalMs: number }): Promise<void>
  /**
   * Optional: sends the verify's commands for `stagingPath` now, each needing `gate` on the host's
   * shell (opened once the upload's file checks out there); `verify` then takes their answers, or
   * sends them again when the gate was closed. nginx: the config test and -v.
   */
  verifyAhead?(stagingPath: string, gate: string): void
  /**
   * Optional: sends the start's first commands now, each needing `gate` on the host's shell
   * (opened by the swap sent just before), and, where the host can tell that the new process is
   * ready as the runner would judge it, the isolation's; `start` and `isolate` then take their
   * answers, or send their commands again when a gate was closed. False when nothing was sent.
   * nginx: USR2, the host's wait for the new master, WINCH (ahead.ts).
   */
  startAhead?(gate: string): boolean
  /**
   * Optional: sends the retire's first commands now, each needing `gate` on the host's shell
   * (opened by the watchdog's confirmation sent just before); `retire` then takes their answers,
   * or sends them again when the gate was closed. nginx: QUIT and the first read of its wait.
   */
  retireAhead?(gate: string): void
  /**
   * Brings the old version back from whatever the host shows (it may run twice, and after a
   * partial start). nginx: HUP the old master if its workers stopped, stop the new master(s)
   * (QUIT/TERM/KILL), wait for the pid file. HAProxy (revert: handoff; the old binary is back
   * already): reload again, wait for workers running the old file. tableflip: wait for the parent to
   * go, then HUP again; or, if the child never got Ready, stop it.
   */
  revert(ctx: SupervisorContext): Promise<void>
  /**
   * After a revert failed: the processes' state as read now and only the commands that state
   * calls for (the strategy adds the binary file's part). nginx: HUP the old master if it has no
   * workers, QUIT the new one. HAProxy: reload with the old binary. tableflip: start a handoff
   * again once one process is left.
   */
  repairAdvice(): Promise<RepairAdvice>
  /** A one-line account of the old and new processes, for errors. */
  describe(): Promise<string>
  /**
   * For the post step finishing an interrupted run: what the host shows about the hand-over.
   * `old-gone`: the old process is gone (the retire went through); `retire-left`: the new one
   * serves alone and only the retire remained (the session then knows which pid serves, so that
   * `retire` can follow); `in-between`: anything else (revert). HAProxy: old workers left or not;
   * tableflip: the parent alive or not.
   */
  assess(): Promise<{
    state: 'old-gone' | 'retire-left' | 'in-between'
    serving: number | null
    detail: string
  }>
  /**
   * Learns the old pid and live path from an interrupted run's journal (the post step), before
   * `assess`. nginx: the old master's pid; HAProxy: the master's (unchanged) pid and the old
   * binary's sha256 to tell old workers from new; tableflip: the parent's pid.
   */
  adopt(saved: { pid: number; livePath: string; liveSha256: string }): void
}

/** The processes' part of a repair after a failed revert. */
export interface RepairAdvice {
  /** One line: what the processes look like now. */
  state: string
  /** Comment lines (`# ...`) and the commands they explain; only what the state calls for. */
  commands: string[]
  /** How to check the result: what must hold, and the command that shows it. */
  check: { says: string; command: string }
}

/** Options every session gets; a supervisor reads what its protocol needs. */
export interface SupervisorOptions {
  pidFile: string
  /** The live path when the binary-path input names it; otherwise the master's own executable. */
  binaryPath?: string
  pollIntervalMs: number
  /** The release store, checked by the trust checks (default: beside the binary's name). */
  releaseDir?: string
  /** One more user the master may run as (master-user). */
  masterUser?: string
}

/**
 * The watchdog's part: the sh that a detached watchdog runs on the host at its deadline to bring
 * the old processes back (the generic part puts the kept binary back and checks the file).
 */
export interface WatchdogPart {
  /**
   * A POSIX sh fragment defining `revert_processes` and `processes_ok` (exit 0 when the old
   * version serves again). It may use the helpers `nap`, `readpid`, `alive`, `log` and the
   * variables `$pf` (pid file) and `$old` (old pid) set by the generic script. No user data
   * in it: values come in as positional parameters. nginx: HUP the old master, QUIT/TERM/KILL
   * its new-master children, wait for the pid file. HAProxy: restore the binary first (done by
   * the generic part when revert is `handoff`), then reload. tableflip: wait for the parent to go,
   * then HUP.
   */
  readonly script: string
}

export interface Supervisor {
  readonly names: SupervisorNames
  /** Where this server's pid file usually is; undefined when servers name their own (pid-file is then required). */
  readonly defaultPidFile: string | undefined
  readonly capabilities: SupervisorCapabilities
  readonly watchdog: WatchdogPart
  /** One session per host and run. */
  open(host: Host, options: SupervisorOptions): SupervisorSession
}
