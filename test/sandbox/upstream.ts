// The sandbox for traffic shifting (see README.md beside this file, "Load balancer and backends"):
// host 0 is an nginx load balancer whose http {} includes the managed upstream file; the other
// hosts run a plain server (upstream/app.py) that cannot hand over its sockets, restarted by
// upstream/restart (the restart-command), listening on 127.0.0.X:8081.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as http from 'node:http'
import { fileURLToPath } from 'node:url'
// Types only: benchmarks load this file under Node 24's type stripping, which keeps no .js mapping.
import type { Sandbox, SandboxHost, SandboxUpOptions } from './sandbox.js'

export const APP_PORT = 8081
export const UPSTREAM_FILE = '/srv/app/conf/upstream.conf'
export const ACCESS_LOG = '/srv/app/logs/zerodown.log'
export const APP_PATH = '/srv/app/bin/app'
export const RESTART = '/srv/app/bin/restart'
export const UPSTREAM_NAME = 'app'

export interface BuildOptions {
  /** Answer 500 to every n-th request of / (0: never). */
  failEvery?: number
  /** false: /health answers 503 forever. */
  healthy?: boolean
}

export interface UpstreamSandbox {
  sb: Sandbox
  lb: SandboxHost
  backends: SandboxHost[]
  /** The upstream block as first written. */
  initialFile: string
  /** A "build" of the backend: a local file the action can upload as its binary. */
  build(version: string, o?: BuildOptions): string
  /** The managed file on the load balancer now. */
  upstreamFile(): string
  /** The load balancer's access log in the zerodown format (all of it). */
  accessLog(): string
  /** The version a backend answers with on /ver (directly, not through the load balancer). */
  version(h: SandboxHost): Promise<string>
  /** Puts a build on a backend and restarts it there (setup between test cases). */
  install(h: SandboxHost, binary: string): Promise<void>
  /** Resets the load balancer's file to the initial one and reloads (setup between test cases). */
  resetLoadBalancer(): void
  down(): void
}

function here(): string {
  return path.dirname(fileURLToPath(import.meta.url))
}

const asUser = (user: string) => ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--']

export function upstreamBlock(backends: SandboxHost[], weight = 3): string {
  return [
    '# the block zerodown manages (test sandbox)',
    `upstream ${UPSTREAM_NAME} {`,
    '    keepalive 8;',
    ...backends.map(
      b => `    server ${b.address}:${APP_PORT} weight=${weight} max_fails=3 fail_timeout=15s;`
    ),
    '}',
    ''
  ].join('\n')
}

function lbConf(lb: SandboxHost, nextUpstream: string): string {
  return `# the load balancer of the upstream sandbox (test/sandbox/upstream.ts)
daemon on;
master_process on;
worker_processes 2;
pid /run/nginx.pid;
error_log /srv/app/logs/error.log notice;
events { worker_connections 4096; }
http {
    default_type text/plain;
    access_log off;
    log_format zerodown '$msec\\t$status\\t$upstream_addr\\t$upstream_status';
    client_body_temp_path /srv/app/tmp/client_body;
    proxy_temp_path /srv/app/tmp/proxy;
    fastcgi_temp_path /srv/app/tmp/fastcgi;
    uwsgi_temp_path /srv/app/tmp/uwsgi;
    scgi_temp_path /srv/app/tmp/scgi;
    include ${UPSTREAM_FILE};
    server {
        listen ${lb.address}:${lb.httpPort};
        access_log ${ACCESS_LOG} zerodown;
        location = /lb-health { return 200 "lb ok\\n"; }
        location / {
            proxy_pass http://${UPSTREAM_NAME};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream ${nextUpstream};
        }
    }
}
`
}

export interface UpstreamSandboxOptions {
  /** sandboxUp of sandbox.ts (passed in: see the import above). */
  sandboxUp: (o: SandboxUpOptions) => Sandbox
  first: number
  backends: number
  /** nginx's proxy_next_upstream on the load balancer (default: error timeout http_500 http_502 http_503). */
  nextUpstream?: string
  /** The hosts' network (sandbox.sh --net), default 127.0.0. */
  net?: string
}

export async function upstreamSandbox(o: UpstreamSandboxOptions): Promise<UpstreamSandbox> {
  const sb = o.sandboxUp({ first: o.first, count: o.backends + 1, ...(o.net ? { net: o.net } : {}) })
  const [lb, ...backends] = sb.hosts as [SandboxHost, ...SandboxHost[]]
  const builds = fs.mkdtempSync(path.join(os.tmpdir(), 'zd-builds-'))
  const template = fs.readFileSync(path.join(here(), 'upstream', 'app.py'), 'utf8')
  const write = (h: SandboxHost, remote: string, text: string | Buffer, mode = 0o644) => {
    const p = sb.hostPath(h, remote)
    // Folders made here belong to the deploy user, like the rest of /srv/app: the run uploads the
    // new binary beside the live one as that user (no sudo), as on a host set up for deploys.
    const made = fs.mkdirSync(path.dirname(p), { recursive: true })
    for (let d = path.dirname(p); made !== undefined && d.startsWith(made); d = path.dirname(d))
      fs.chownSync(d, uid(sb.user), uid(sb.user))
    fs.writeFileSync(p, text, { mode })
    fs.chmodSync(p, mode)
    fs.chownSync(p, uid(sb.user), uid(sb.user))
  }
  const initialFile = upstreamBlock(backends)
  const u: UpstreamSandbox = {
    sb,
    lb,
    backends,
    initialFile,
    build(version, b = {}) {
      const file = path.join(
        builds,
        `app-${version}-${b.failEvery ?? 0}-${b.healthy === false ? 'sick' : 'ok'}`
      )
      const text = template
        .replace('@VERSION@', version)
        .replace('@FAIL_EVERY@', String(b.failEvery ?? 0))
        .replace('@HEALTHY@', b.healthy === false ? 'no' : 'yes')
      fs.writeFileSync(file, text, { mode: 0o755 })
      return file
    },
    upstreamFile: () => fs.readFileSync(sb.hostPath(lb, UPSTREAM_FILE), 'utf8'),
    accessLog: () => {
      try {
        return fs.readFileSync(sb.hostPath(lb, ACCESS_LOG), 'utf8')
      } catch {
        return ''
      }
    },
    async version(h) {
      return (await get(h.address, APP_PORT, '/ver')).body.trim()
    },
    async install(h, binary) {
      write(h, APP_PATH, fs.readFileSync(binary), 0o755)
      const r = await sb.execAsync(h, [...asUser(sb.user), RESTART])
      if (r.status !== 0) throw new Error(`restart on ${h.name} failed: ${r.stderr}`)
      await waitHealthy(h)
    },
    resetLoadBalancer() {
      write(lb, UPSTREAM_FILE, initialFile)
      fs.rmSync(sb.hostPath(lb, '/var/lib/zerodown/upstream'), { recursive: true, force: true })
      const r = sb.exec(lb, [...asUser(sb.user), 'kill', '-HUP', String(sb.readPid(lb))])
      if (r.status !== 0) throw new Error(`reload of the load balancer failed: ${r.stderr}`)
    },
    down() {
      sb.down()
      fs.rmSync(builds, { recursive: true, force: true })
    }
  }
  try {
    for (const h of backends) {
      sb.nginxStop(h)
      write(h, '/srv/app/conf/listen', `${h.address} ${APP_PORT}\n`)
      write(h, RESTART, fs.readFileSync(path.join(here(), 'upstream', 'restart')), 0o755)
      await u.install(h, u.build('1.0.0'))
    }
    sb.nginxStop(lb)
    write(
      lb,
      '/srv/app/conf/nginx.conf',
      lbConf(lb, o.nextUpstream ?? 'error timeout http_500 http_502 http_503')
    )
    write(lb, UPSTREAM_FILE, initialFile)
    sb.nginxStart(lb)
    const r = await get(lb.address, lb.httpPort, '/')
    if (r.status !== 200) throw new Error(`the load balancer answered ${r.status}: ${r.body}`)
  } catch (e) {
    u.down()
    throw e
  }
  return u
}

function uid(user: string): number {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find(l => l.startsWith(`${user}:`))
  if (!line) throw new Error(`no user ${user}`)
  return Number(line.split(':')[2])
}

/** Waits (bounded) until a backend answers 200 on /health. */
export async function waitHealthy(h: SandboxHost, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < until) {
    try {
      const r = await get(h.address, APP_PORT, '/health', 1000)
      if (r.status === 200) return
      last = `status ${r.status}`
    } catch (e) {
      last = (e as Error).message
    }
    await new Promise(r => setTimeout(r, 50))
  }
  throw new Error(`backend ${h.name} did not become healthy within ${timeoutMs} ms (${last})`)
}

/** One GET on a fresh connection. */
export function get(
  host: string,
  port: number,
  urlPath: string,
  timeoutMs = 5000
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: timeoutMs }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () =>
      req.destroy(new Error(`GET http://${host}:${port}${urlPath}: no answer within ${timeoutMs} ms`))
    )
    req.on('error', reject)
  })
}
