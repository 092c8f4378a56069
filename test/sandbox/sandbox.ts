// Thin wrapper around test/sandbox/sandbox.sh for the jest tests, the demo and the benchmarks.
// The sandbox is N fake hosts on this machine: one real sshd per loopback address (127.0.0.X), each
// with its own real nginx and its own mount namespace, so every host has the same paths
// (/srv/app, /run, /var/lib/zerodown, /tmp). See README.md beside this file. Needs root.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as http from 'node:http'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface SandboxHost {
  name: string
  address: string
  sshPort: number
  httpPort: number
  /** real folder of the host on this machine (DIR/hosts/X) */
  root: string
  sshdPid: number
  /** master pid when the sandbox came up; nginxStart() updates it (0 on hosts of another server) */
  nginxPid: number
  /** what the host serves with: nginx, or another kind (up --server, e.g. haproxy) */
  server: string
  /** the server's master pid when the sandbox came up; serverStart() updates it */
  serverPid: number
  fingerprint: string
  hostKeyLine: string
  binaryPath: string
  pidFile: string
  prefix: string
  confPath: string
  /** the host's mount namespace, as readlink /proc/<pid>/ns/mnt prints it ("mnt:[4026532177]") */
  mntNs: string
}

export interface ExecResult {
  stdout: string
  stderr: string
  status: number
}

/** What `sandbox.sh up` prints as JSON. */
export interface SandboxInfo {
  dir: string
  user: string
  password: string
  noSudoUser: string
  /** deploys through the sudo helper: its sudoers holds exactly host/sudoers */
  helperUser: string
  privateKeyPath: string
  passphraseKeyPath: string
  passphrase: string
  /** RSA key in PEM format ("BEGIN RSA PRIVATE KEY"), no passphrase, also authorized */
  rsaKeyPath: string
  knownHostsPath: string
  /** true: every host has its own /tmp (default); false: up --shared-tmp */
  privateTmp: boolean
  hosts: SandboxHost[]
}

export interface Sandbox extends SandboxInfo {
  privateKey(): string
  knownHosts(): string
  /** maps /srv/app/x, /run/x, /var/lib/zerodown/x (and /tmp/x) inside the host to the real path */
  hostPath(host: SandboxHost, remotePath: string): string
  /** runs argv as root inside the host's mount namespace (sandbox.sh exec); never throws on exit codes */
  exec(host: SandboxHost, argv: string[]): ExecResult
  /** the same without blocking the event loop (for use while an upgrade runs in this process) */
  execAsync(host: SandboxHost, argv: string[]): Promise<ExecResult>
  /** the pid in the host's /run/nginx.pid, or null (missing, empty, garbage) */
  readPid(host: SandboxHost): number | null
  /** the process exists and is not a zombie */
  isAlive(pid: number): boolean
  /** live nginx masters of the host (old and new during an upgrade), ascending */
  nginxMasters(host: SandboxHost): number[]
  /** live "nginx: worker process" children of a master (a new master, its child, is not counted) */
  nginxWorkers(host: SandboxHost, masterPid: number): number[]
  /** starts the host's nginx if it is not running (reset: stop everything first and restore the
   *  original binary and config); updates host.nginxPid and returns it */
  nginxStart(host: SandboxHost, opts?: { reset?: boolean }): number
  /** TERM every nginx master of the host, then KILL whatever else runs there outside ssh sessions;
   *  removes /run/nginx.pid and /run/nginx.pid.oldbin */
  nginxStop(host: SandboxHost): void
  /** nginxStart for the host's own kind of server (sandbox.sh server-start); updates host.serverPid */
  serverStart(host: SandboxHost, opts?: { reset?: boolean }): number
  /** nginxStop for the host's own kind of server (sandbox.sh server-stop) */
  serverStop(host: SandboxHost): void
  /** stops everything and removes dir; safe to call twice */
  down(): void
}

export interface SandboxUpOptions {
  first: number
  count: number
  sshPort?: number
  httpPort?: number
  /** defaults to a fresh mkdtemp under os.tmpdir() named zerodown-sandbox-* */
  dir?: string
  /** hosts share the machine's /tmp instead of having their own */
  sharedTmp?: boolean
  /** each sshd also has an RSA host key: DIR/known_hosts.rsa and DIR/fingerprints.rsa list them */
  rsaHostKey?: boolean
  /** the first three octets of the hosts' addresses (default '127.0.0'; '127.0.1' for 127.0.1.X) */
  net?: string
  /** nginx workers per host (default 2; 1 for light hosts in fleet benchmarks) */
  workers?: number
  /** pass sandbox.sh's stderr through (default: captured, shown only on failure) */
  verbose?: boolean
  /** what every host serves with (sandbox.sh up --server): nginx (default), haproxy, ... */
  server?: string
}

const MAX_BUFFER = 64 * 1024 * 1024

/** Where sandbox.sh is: $ZERODOWN_SANDBOX_SH, beside this module, or <cwd>/test/sandbox/sandbox.sh. */
export function sandboxScript(): string {
  const candidates: string[] = []
  if (process.env.ZERODOWN_SANDBOX_SH) candidates.push(process.env.ZERODOWN_SANDBOX_SH)
  try {
    candidates.push(fileURLToPath(new URL('./sandbox.sh', import.meta.url)))
  } catch {
    // not an ESM file URL (bundled, transpiled): use the fallbacks
  }
  candidates.push(path.join(process.cwd(), 'test', 'sandbox', 'sandbox.sh'))
  const found = candidates.find(c => fs.existsSync(c))
  if (!found) throw new Error(`sandbox.sh not found (looked at ${candidates.join(', ')})`)
  return found
}

function runScript(args: string[], verbose = false): string {
  try {
    return execFileSync('bash', [sandboxScript(), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', verbose ? 'inherit' : 'pipe'],
      maxBuffer: MAX_BUFFER
    })
  } catch (err) {
    const e = err as { status?: number | null; stderr?: string | Buffer }
    const stderr = e.stderr ? String(e.stderr).trim() : ''
    throw new Error(`sandbox.sh ${args[0]} failed (exit ${e.status ?? '?'})${stderr ? `:\n${stderr}` : ''}`, {
      cause: err
    })
  }
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

/** state letter of /proc/<pid>/stat (after the last ')', since comm may hold spaces and parens) */
function procState(pid: number): { state: string; ppid: number } | null {
  const stat = readText(`/proc/${pid}/stat`)
  if (stat === null) return null
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { state: rest[0] ?? '', ppid: Number(rest[1]) }
}

export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  const st = procState(pid)
  return st !== null && st.state !== 'Z' && st.state !== 'X' && st.state !== 'x'
}

function cmdline(pid: number): string[] {
  const raw = readText(`/proc/${pid}/cmdline`)
  if (!raw) return []
  return raw.replace(/\0+$/, '').split('\0')
}

function mntNs(pid: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`)
  } catch {
    return null
  }
}

function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter(n => /^[0-9]+$/.test(n))
    .map(Number)
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** pids of live processes in the host's mount namespace */
function pidsOfHost(host: SandboxHost): number[] {
  return allPids().filter(p => mntNs(p) === host.mntNs && isAlive(p))
}

const MASTER_TITLE = 'nginx: master process'

function looksLikeMaster(host: SandboxHost, pid: number): boolean {
  const argv = cmdline(pid)
  const title = argv.join(' ')
  // after the title rewrite: "nginx: master process /srv/app/sbin/nginx -p ..."; a master that was
  // just exec'd by USR2 still shows its raw argv ("/srv/app/sbin/nginx", "-p", ...) for a moment
  return title.startsWith(MASTER_TITLE) || argv[0] === host.binaryPath
}

export function nginxMasters(host: SandboxHost): number[] {
  const candidates = pidsOfHost(host).filter(p => looksLikeMaster(host, p))
  const set = new Set(candidates)
  const masters = candidates.filter(p => {
    // A worker forked a moment ago still carries its master's title until it sets its own. A real
    // master whose parent is a master is the new binary of an upgrade: it keeps its title.
    const parent = procState(p)?.ppid ?? 0
    if (!set.has(parent)) return true
    sleepMs(30)
    return isAlive(p) && looksLikeMaster(host, p)
  })
  return masters.sort((a, b) => a - b)
}

export function nginxWorkers(host: SandboxHost, masterPid: number): number[] {
  return pidsOfHost(host)
    .filter(p => procState(p)?.ppid === masterPid && cmdline(p).join(' ').startsWith('nginx: worker process'))
    .sort((a, b) => a - b)
}

const live = new Set<Sandbox>()
let hooksInstalled = false

function downAll(): void {
  for (const sb of [...live]) {
    try {
      sb.down()
    } catch {
      // best effort: the process is ending
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', downAll)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      downAll()
      // let the default action (or other listeners) run as if we had not been here
      process.kill(process.pid, sig)
    })
  }
}

function hostOctet(host: SandboxHost): string {
  return host.address.split('.').pop() ?? host.address
}

function makeSandbox(json: SandboxInfo): Sandbox {
  let isUp = true
  const mounts: Array<[string, string]> = [
    ['/srv/app', 'srv-app'],
    ['/var/lib/zerodown', 'var-lib-zerodown'],
    ['/run', 'run'],
    ['/var/run', 'run']
  ]
  if (json.privateTmp) mounts.push(['/tmp', 'tmp'])

  const sb: Sandbox = {
    ...json,
    privateKey: () => fs.readFileSync(json.privateKeyPath, 'utf8'),
    knownHosts: () => fs.readFileSync(json.knownHostsPath, 'utf8'),
    hostPath(host, remotePath) {
      if (!remotePath.startsWith('/')) throw new Error(`hostPath needs an absolute path, got ${remotePath}`)
      const p = path.posix.normalize(remotePath)
      for (const [mount, sub] of mounts) {
        if (p === mount || p.startsWith(mount + '/')) return path.join(host.root, sub, p.slice(mount.length))
      }
      if (!json.privateTmp && (p === '/tmp' || p.startsWith('/tmp/'))) return p
      throw new Error(
        `${remotePath} is not host-private in the sandbox (only ${mounts.map(m => m[0]).join(', ')})`
      )
    },
    exec(host, argv) {
      const r = spawnSync(
        'bash',
        [sandboxScript(), 'exec', '--dir', json.dir, '--host', hostOctet(host), '--', ...argv],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
          maxBuffer: MAX_BUFFER
        }
      )
      if (r.error) throw r.error
      const status = r.status ?? (r.signal ? 128 + (os.constants.signals[r.signal] ?? 0) : -1)
      return { stdout: r.stdout, stderr: r.stderr, status }
    },
    execAsync(host, argv) {
      return new Promise((resolve, reject) => {
        const child = spawn(
          'bash',
          [sandboxScript(), 'exec', '--dir', json.dir, '--host', hostOctet(host), '--', ...argv],
          {
            stdio: ['ignore', 'pipe', 'pipe']
          }
        )
        let stdout = ''
        let stderr = ''
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
        child.on('error', reject)
        child.on('close', (code, signal) => {
          const status = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1)
          resolve({ stdout, stderr, status })
        })
      })
    },
    readPid(host) {
      const text = readText(sb.hostPath(host, host.pidFile))
      if (text === null) return null
      const t = text.trim()
      return /^[0-9]+$/.test(t) ? Number(t) : null
    },
    isAlive,
    nginxMasters,
    nginxWorkers,
    nginxStart(host, opts) {
      const args = ['nginx-start', '--dir', json.dir, '--host', hostOctet(host)]
      if (opts?.reset) args.push('--reset')
      const pid = Number(runScript(args).trim())
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`nginx-start printed no pid for ${host.name}`)
      host.nginxPid = pid
      host.serverPid = pid
      return pid
    },
    nginxStop(host) {
      runScript(['nginx-stop', '--dir', json.dir, '--host', hostOctet(host)])
    },
    serverStart(host, opts) {
      const args = ['server-start', '--dir', json.dir, '--host', hostOctet(host)]
      if (opts?.reset) args.push('--reset')
      const pid = Number(runScript(args).trim())
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`server-start printed no pid for ${host.name}`)
      host.serverPid = pid
      if (host.server === 'nginx') host.nginxPid = pid
      return pid
    },
    serverStop(host) {
      runScript(['server-stop', '--dir', json.dir, '--host', hostOctet(host)])
    },
    down() {
      if (!isUp) return
      runScript(['down', '--dir', json.dir])
      isUp = false
      live.delete(sb)
    }
  }
  return sb
}

/** Brings a sandbox up (synchronously, about 0.1 s per host) and returns it. Call down() when done;
 *  an exit/SIGINT/SIGTERM hook and a watcher process (sandbox.sh up --watch-pid) take it down if
 *  this process ends first. */
export function sandboxUp(opts: SandboxUpOptions): Sandbox {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'zerodown-sandbox-'))
  const args = ['up', '--dir', dir, '--first', String(opts.first), '--count', String(opts.count)]
  if (opts.sshPort !== undefined) args.push('--ssh-port', String(opts.sshPort))
  if (opts.httpPort !== undefined) args.push('--http-port', String(opts.httpPort))
  if (opts.sharedTmp) args.push('--shared-tmp')
  if (opts.rsaHostKey) args.push('--rsa-host-key')
  if (opts.server !== undefined) args.push('--server', opts.server)
  if (opts.net !== undefined) args.push('--net', opts.net)
  if (opts.workers !== undefined) args.push('--workers', String(opts.workers))
  args.push('--watch-pid', String(process.pid))
  installHooks()
  const out = runScript(args, opts.verbose)
  const json = JSON.parse(out) as SandboxInfo
  const sb = makeSandbox(json)
  live.add(sb)
  return sb
}

/** Plain GET with node:http (no keep-alive); rejects on connection errors and after timeoutMs. */
export function httpGet(
  address: string,
  port: number,
  urlPath: string,
  timeoutMs = 5000
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let done = false
    const finish = (err: Error | null, value?: { status: number; body: string }): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(value as { status: number; body: string })
    }
    const req = http.request(
      { host: address, port, path: urlPath, method: 'GET', agent: false, headers: { connection: 'close' } },
      res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          finish(null, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })
        )
        res.on('error', e => finish(e))
      }
    )
    const timer = setTimeout(() => {
      const e = new Error(`GET http://${address}:${port}${urlPath}: no answer within ${timeoutMs} ms`)
      req.destroy(e)
      finish(e)
    }, timeoutMs)
    req.on('error', e => finish(e))
    req.end()
  })
}
