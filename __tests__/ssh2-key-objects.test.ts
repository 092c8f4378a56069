/**
 * scripts/ssh2-key-objects.mjs makes the bundled ssh2's session keys secret KeyObjects (Node 24
 * tests a Buffer key for KeyObject-ness by throwing, per packet). This builds ssh2 the way
 * scripts/bundle.mjs does (native parts stubbed out, the plugin on) into a small client, runs it
 * under Node 24 against a real sshd (127.0.1.240) with each cipher family the action may
 * negotiate, and checks that each one moves data both ways byte-exact and that the keys in use
 * are KeyObjects (which fails without the plugin).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { sandboxUp, type Sandbox, type SandboxHost } from '../test/sandbox/sandbox.js'
import { NODE24, ROOT } from './helpers/action.js'

let sb: Sandbox
let h: SandboxHost
let dir: string

beforeAll(() => {
  sb = sandboxUp({ net: '127.0.1', first: 240, count: 1 })
  h = sb.hosts[0]!
  dir = mkdtempSync(join(tmpdir(), 'zerodown-ssh2-keys-'))
})

afterAll(() => {
  sb?.down()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

// The client: connects with one cipher (and MAC) at a time, pipes 300 KB through `sha256sum` (many
// full packets each way) and prints, per cipher, what was negotiated, the digest the host computed,
// and whether the cipher and decipher hold their keys as KeyObjects.
const CLIENT = `
import { Client } from 'ssh2'
import { KeyObject, createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
const [host, port, username, keyFile] = process.argv.slice(2)
const KEYS = ['_encKey', '_encKeyMain', '_macKey', '_decipherKey', '_decKeyMain']
const keyObjects = o => KEYS.filter(k => o[k] !== undefined).map(k => o[k] instanceof KeyObject)
const cases = [
  { cipher: ['aes128-gcm@openssh.com'] },
  { cipher: ['aes256-gcm@openssh.com'] },
  { cipher: ['chacha20-poly1305@openssh.com'] },
  { cipher: ['aes128-ctr'], hmac: ['hmac-sha2-256-etm@openssh.com'] }
]
const out = []
for (const algorithms of cases) {
  const c = new Client()
  const data = randomBytes(300000)
  out.push(await new Promise((resolve, reject) => {
    let negotiated
    c.on('handshake', n => (negotiated = [n.cs.cipher, n.cs.mac].filter(Boolean).join(' ')))
    c.on('error', reject)
    c.on('ready', () => c.exec('sha256sum', (err, ch) => {
      if (err) return reject(err)
      let text = ''
      ch.on('data', d => (text += d))
      ch.on('close', () => {
        const p = c._protocol
        resolve({ negotiated, digest: text.split(' ')[0], sent: createHash('sha256').update(data).digest('hex'),
          keyObjects: [...keyObjects(p._cipher), ...keyObjects(p._decipher)] })
        c.end()
      })
      ch.end(data)
    }))
    c.connect({ host, port: Number(port), username, privateKey: readFileSync(keyFile), algorithms, hostVerifier: () => true })
  }))
}
console.log(JSON.stringify(out))
`

const BUILD = (entry: string, outfile: string) => `
import { build } from ${JSON.stringify(pathToFileURL(join(ROOT, 'node_modules/esbuild/lib/main.js')).href)}
import { ssh2KeyObjects } from ${JSON.stringify(pathToFileURL(join(ROOT, 'scripts/ssh2-key-objects.mjs')).href)}
const noNative = { name: 'no-native', setup(b) {
  b.onResolve({ filter: /^cpu-features$|\\.node$/ }, a => ({ path: a.path, namespace: 'no-native' }))
  b.onLoad({ filter: /.*/, namespace: 'no-native' }, () => ({ contents: 'throw new Error("not bundled")', loader: 'js' }))
} }
await build({ entryPoints: [${JSON.stringify(entry)}], outfile: ${JSON.stringify(outfile)}, bundle: true,
  platform: 'node', format: 'esm', nodePaths: [${JSON.stringify(join(ROOT, 'node_modules'))}],
  banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); const __dirname = import.meta.dirname;" },
  logLevel: 'error', plugins: [noNative, ssh2KeyObjects] })
`

describe("the bundle's ssh2 with KeyObject session keys", () => {
  it('moves data byte-exact with AES-GCM, ChaCha20-Poly1305 and AES-CTR + HMAC, every key a KeyObject', () => {
    writeFileSync(join(dir, 'client.mjs'), CLIENT)
    writeFileSync(join(dir, 'build.mjs'), BUILD(join(dir, 'client.mjs'), join(dir, 'bundle.mjs')))
    const built = spawnSync(process.execPath, [join(dir, 'build.mjs')], { encoding: 'utf8' })
    expect(built.stderr).toBe('')
    expect(built.status).toBe(0)
    const run = spawnSync(
      NODE24,
      [join(dir, 'bundle.mjs'), h.address, String(h.sshPort), sb.user, sb.privateKeyPath],
      { encoding: 'utf8', timeout: 60_000 }
    )
    expect(run.stderr).toBe('')
    const results = JSON.parse(run.stdout) as {
      negotiated: string
      digest: string
      sent: string
      keyObjects: boolean[]
    }[]
    expect(results.map(r => r.negotiated)).toEqual([
      'aes128-gcm@openssh.com',
      'aes256-gcm@openssh.com',
      'chacha20-poly1305@openssh.com',
      'aes128-ctr hmac-sha2-256-etm@openssh.com'
    ])
    for (const r of results) {
      expect(r.digest).toBe(r.sent)
      expect(r.keyObjects.length).toBeGreaterThan(0)
      expect(r.keyObjects.every(Boolean)).toBe(true)
    }
  })
})
