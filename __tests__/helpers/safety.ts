/**
 * Helpers for the tests of locks, watchdogs and interrupted runs: a load generator of
 * connection-per-request clients, the post step run like GitHub runs it (with the state the main
 * step saved), and small readers of a sandbox host's files.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { httpGet, type Sandbox, type SandboxHost } from '../../test/sandbox/sandbox.js'
import { parseOutputs, runAction, scratchDir, type ActionRun, type RunOptions } from './action.js'

export interface LoadResult {
  ok: number
  failed: number
  /** The first few failures, for the assertion message. */
  errors: string[]
  durationMs: number
}

/**
 * Clients that open a new connection for every GET (as the protocol's zero-failure figure is
 * measured), `concurrency` at a time, until stop() or maxMs. Any status but 200 is a failure.
 */
export function loadGenerator(
  address: string,
  port: number,
  opts: { path?: string; concurrency?: number; maxMs?: number } = {}
): { stop: () => Promise<LoadResult>; counts: () => { ok: number; failed: number } } {
  const path = opts.path ?? '/health'
  const maxMs = opts.maxMs ?? 120_000
  const started = Date.now()
  let stopped = false
  let ok = 0
  let failed = 0
  const errors: string[] = []
  const worker = async () => {
    while (!stopped && Date.now() - started < maxMs) {
      try {
        const r = await httpGet(address, port, path, 5000)
        if (r.status === 200) ok++
        else {
          failed++
          if (errors.length < 5) errors.push(`status ${r.status}`)
        }
      } catch (e) {
        failed++
        if (errors.length < 5) errors.push((e as Error).message)
      }
    }
  }
  const workers = Array.from({ length: opts.concurrency ?? 4 }, worker)
  return {
    counts: () => ({ ok, failed }),
    stop: async () => {
      stopped = true
      await Promise.all(workers)
      return { ok, failed, errors, durationMs: Date.now() - started }
    }
  }
}

/** A GITHUB_STATE file for one run of the main step (runAction removes its own dir). */
export function stateFile(): string {
  const file = join(scratchDir('zerodown-state-'), 'state')
  writeFileSync(file, '')
  return file
}

/** What the main step saved (core.saveState), the last value of each name. */
export function savedState(file: string): Record<string, string> {
  return existsSync(file) ? parseOutputs(readFileSync(file, 'utf8')) : {}
}

/** Runs the main step with GITHUB_STATE in `state`. */
export function runMain(
  inputs: Record<string, string>,
  state: string,
  options: RunOptions = {}
): Promise<ActionRun> {
  return runAction(inputs, { ...options, env: { GITHUB_STATE: state, ...options.env } })
}

/** Runs the post step as GitHub does: the same bundle and inputs, with STATE_<name> for each saved value. */
export function runPost(
  inputs: Record<string, string>,
  state: string,
  options: RunOptions = {}
): Promise<ActionRun> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(savedState(state))) env[`STATE_${name}`] = value
  return runAction(inputs, { ...options, env: { ...env, ...options.env } })
}

/** The pid in the host's pid file, its .oldbin, and the live binary's bytes. */
export function hostFiles(sb: Sandbox, h: SandboxHost) {
  return {
    pid: sb.readPid(h),
    oldbin: existsSync(sb.hostPath(h, `${h.pidFile}.oldbin`)),
    binary: readFileSync(sb.hostPath(h, h.binaryPath))
  }
}

/** Live processes in the host's mount namespace whose command line matches (e.g. its watchdog). */
export function processesOf(sb: Sandbox, h: SandboxHost, pattern: RegExp): number[] {
  return readdirSync('/proc')
    .filter(n => /^\d+$/.test(n))
    .map(Number)
    .filter(pid => {
      try {
        if (readlinkSync(`/proc/${pid}/ns/mnt`) !== h.mntNs || !sb.isAlive(pid)) return false
        return pattern.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '))
      } catch {
        return false // exited meanwhile
      }
    })
}

/** A slow download of /big (20 MB at 200 KB/s) that keeps one nginx worker busy until end(). */
export function bigDownload(address: string, port: number): { started: Promise<void>; end: () => void } {
  let req: http.ClientRequest
  const started = new Promise<void>((resolve, reject) => {
    req = http.get({ host: address, port, path: '/big', agent: false }, res => {
      res.on('data', () => undefined)
      res.on('error', () => undefined)
      resolve()
    })
    req.on('error', reject)
  })
  started.catch(() => undefined)
  return { started, end: () => req.destroy() }
}
