// What one open, idle SSH connection of the action costs the runner: the memory a parked host
// holds while it waits for the fleet (idle-connections decides how many do).
//
//   node bench/connection-memory.mjs [--rounds 3] [--per-round 20]
//
// Bundles src/host/ssh-host.ts as the action ships it (the same esbuild plugins: pure-JS ssh2,
// its session keys as KeyObjects) and, under Node 24, opens --per-round connections at a time to
// one sandbox host (127.0.21.2), each with its two shells and one command run on each, as a parked
// host has them. After each round: full garbage collections, then the growth per connection of the
// JS heap, the buffers (ArrayBuffers, other external memory) and the RSS. The first round also
// pays for what the first connection sets up once (modules' lazy state); the later rounds are the
// cost of one more connection. Needs root (the sandbox).
import { build } from 'esbuild'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parseArgs } from 'node:util'
import { loadTypeScript, ROOT } from './lib.mjs'
import { noNative, noUndici } from '../scripts/bundle-plugins.mjs'
import { ssh2DirectPublickey } from '../scripts/ssh2-direct-publickey.mjs'
import { ssh2KeyObjects } from '../scripts/ssh2-key-objects.mjs'

const { sandboxUp } = await loadTypeScript()
const { hostOptions } = await import(join(ROOT, '__tests__/helpers/ssh.ts'))
const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, 'per-round': { type: 'string', default: '20' } }
})
const [ROUNDS, PER] = [Number(args.rounds), Number(args['per-round'])]

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
const sleep = ms => new Promise(r => setTimeout(r, ms))
/** Live memory after full collections (a few, with pauses: closed handles free on later ticks). */
async function live() {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(50)
  }
  const m = process.memoryUsage()
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers, external: m.external - m.arrayBuffers, rss: m.rss }
}

const work = mkdtempSync(join(tmpdir(), 'zd-connmem-'))
const sb = sandboxUp({ first: 2, count: 1, net: '127.0.21' })
try {
  await build({
    entryPoints: [join(ROOT, 'src/host/ssh-host.ts')],
    outfile: join(work, 'ssh-host.mjs'),
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    logLevel: 'warning',
    plugins: [noNative, noUndici, ssh2KeyObjects, ssh2DirectPublickey],
    // As scripts/bundle.mjs: ssh2 (CommonJS) calls require() for node built-ins and reads __dirname.
    banner: {
      js: [
        "import { createRequire as __r } from 'node:module';",
        "import { fileURLToPath as __f } from 'node:url';",
        "import { dirname as __d } from 'node:path';",
        'const require = __r(import.meta.url);',
        'const __dirname = __d(__f(import.meta.url));'
      ].join('\n')
    }
  })
  const { SshHost } = await import(join(work, 'ssh-host.mjs'))
  const h = sb.hosts[0]
  const options = hostOptions(sb, h)
  const hosts = []
  const kb = (a, b, k) => ((b[k] - a[k]) / PER / 1024).toFixed(1).padStart(6)
  console.log(
    `one sandbox host (${h.address}), ${PER} more connections per round, each with its two shells used once`
  )
  console.log('round | open | KB per connection: JS heap | ArrayBuffers | other external |   RSS')
  for (let round = 1; round <= ROUNDS; round++) {
    const before = await live()
    for (let i = 0; i < PER; i++) {
      const host = await SshHost.connect(options)
      await host.run(['echo', 'parked'])
      await host.run(['sh', '-c', 'echo lock'], { aside: true })
      hosts.push(host)
    }
    const after = await live()
    console.log(
      `${String(round).padStart(5)} | ${String(hosts.length).padStart(4)} |                     ${kb(before, after, 'heap')} |       ${kb(before, after, 'arrayBuffers')} |         ${kb(before, after, 'external')} | ${kb(before, after, 'rss')}`
    )
  }
  for (const host of hosts) await host.close()
} finally {
  sb.down()
  rmSync(work, { recursive: true, force: true })
}
