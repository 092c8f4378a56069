// Sandbox hosts that run the Go test server of the tableflip supervisor (test/servers/tableflip)
// instead of nginx: a wrapper around `sandbox.sh tableflip-*` (tableflip.sh beside this file).
// Type-only imports of sandbox.ts: the benchmarks load this file with Node 24's type stripping.
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { Sandbox, SandboxHost } from './sandbox.js'

/** Where the app lives on every tableflip host (the same paths on each, as in a real fleet). */
export const APP = {
  binaryPath: '/srv/app/sbin/app',
  pidFile: '/run/app.pid',
  log: '/srv/app/logs/app.log'
} as const

/** Build variants of the Go test server (test/servers/tableflip/build.sh). */
export type AppVariant = '1.0.0' | '2.0.0' | '3.0.0' | 'exit' | 'unhealthy' | 'hang'

export const VARIANT_VERSION: Record<AppVariant, string> = {
  '1.0.0': '1.0.0',
  '2.0.0': '2.0.0',
  '3.0.0': '3.0.0',
  exit: '9.0.0-exit',
  unhealthy: '9.0.0-unhealthy',
  hang: '9.0.0-hang'
}

/** sandbox.sh: $ZERODOWN_SANDBOX_SH, or <cwd>/test/sandbox/sandbox.sh (the tests and benches run from the repository). */
function script(): string {
  return process.env.ZERODOWN_SANDBOX_SH ?? path.join(process.cwd(), 'test', 'sandbox', 'sandbox.sh')
}

function run(args: string[]): string {
  try {
    return execFileSync('bash', [script(), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe']
    })
  } catch (err) {
    const e = err as { status?: number | null; stderr?: string | Buffer }
    throw new Error(
      `sandbox.sh ${args[0]} failed (exit ${e.status ?? '?'}): ${String(e.stderr ?? '').trim()}`,
      { cause: err }
    )
  }
}

let buildDir: string | null = null

/** Builds the variants once (nothing when the cache is current) and returns the local path of one. */
export function appBinary(variant: AppVariant): string {
  buildDir ??= run(['tableflip-build']).trim()
  const file = `${buildDir}/app-${variant}`
  if (!fs.existsSync(file)) throw new Error(`no variant ${variant} in ${buildDir}`)
  return file
}

export interface AppStartOptions {
  variant?: AppVariant
  /** Stop what runs and put the variant back even when an app already runs. */
  reset?: boolean
  /** Start the file that is at APP.binaryPath now instead of installing the variant. */
  keepBinary?: boolean
  /** More arguments for the app, e.g. ['-shutdown-timeout', '5s']. */
  args?: string[]
}

/**
 * Stops the host's nginx (or an earlier app) and starts the app at APP.binaryPath, as the deploy
 * user, detached, on the host's address and HTTP port; returns the pid once /health answers 200.
 */
export function appStart(sb: Sandbox, host: SandboxHost, opts: AppStartOptions = {}): number {
  const octet = host.address.split('.').pop()!
  const args = ['tableflip-start', '--dir', sb.dir, '--host', octet, '--variant', opts.variant ?? '1.0.0']
  if (opts.reset) args.push('--reset')
  if (opts.keepBinary) args.push('--keep-binary')
  if (opts.args?.length) args.push('--', ...opts.args)
  const pid = Number(run(args).trim())
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`tableflip-start printed no pid for ${host.name}`)
  return pid
}

export function appStop(sb: Sandbox, host: SandboxHost): void {
  run(['tableflip-stop', '--dir', sb.dir, '--host', host.address.split('.').pop()!])
}

/** The pid in the host's /run/app.pid, or null. */
export function appPid(sb: Sandbox, host: SandboxHost): number | null {
  try {
    const t = fs.readFileSync(sb.hostPath(host, APP.pidFile), 'utf8').trim()
    return /^\d+$/.test(t) ? Number(t) : null
  } catch {
    return null
  }
}

/** Live processes of the host running (or having run) the app file: old and new during a handoff. */
export function appProcesses(host: SandboxHost): number[] {
  const out: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (fs.readlinkSync(`/proc/${name}/ns/mnt`) !== host.mntNs) continue
      const exe = fs.readlinkSync(`/proc/${name}/exe`).replace(/ \(deleted\)$/, '')
      const state = fs.readFileSync(`/proc/${name}/stat`, 'utf8').split(') ').pop()![0]
      if (exe === APP.binaryPath && state !== 'Z' && state !== 'X') out.push(Number(name))
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out.sort((a, b) => a - b)
}
