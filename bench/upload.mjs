#!/usr/bin/env node
// Upload benchmark: the action's upload path (SshHost.upload: the file streamed on an SSH channel
// of its own to `cat` on the host, src/host/stream-upload.ts) against OpenSSH's scp (SFTP protocol, the default since
// OpenSSH 9), scp -O (the legacy scp protocol) and sftp, to the same sandbox host with the same key
// and the same known_hosts (and scp once more with ssh2's cipher, aes128-gcm); then the round trip of Host.run on the long-lived shell against a
// fresh `ssh host true`.
//
//   node bench/upload.mjs [--mb 100] [--rounds 3] [--first 19]
//
// Needs root (it brings up one sandbox host on 127.0.0.<first>, see test/sandbox/README.md) and
// the npm packages (npm ci). It bundles src/host/ssh-host.ts and test/sandbox/sandbox.ts with
// esbuild into node_modules/.cache/zerodown-bench/ (so that node-ssh and ssh2 resolve from this
// repository's node_modules), then imports that. Every upload is checked by its sha256 on the host.
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { median, numberArgs, quantile, ROOT } from './lib.mjs'

const { mb: MB, rounds: ROUNDS, first: FIRST } = numberArgs({ mb: 100, rounds: 3, first: 19 })

// 1. The TypeScript this bench needs, bundled once.
const outfile = join(ROOT, 'node_modules/.cache/zerodown-bench/lib.mjs')
await build({
  stdin: {
    contents: "export * from './src/host/ssh-host.ts'\nexport * from './test/sandbox/sandbox.ts'\n",
    resolveDir: ROOT,
    loader: 'ts'
  },
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  packages: 'external',
  logLevel: 'warning'
})
process.env.ZERODOWN_SANDBOX_SH ??= join(ROOT, 'test/sandbox/sandbox.sh')
const { SshHost, sandboxUp } = await import(pathToFileURL(outfile).href)

// 2. A random file of MB megabytes (10^6 bytes).
const work = mkdtempSync(join(tmpdir(), 'zerodown-bench-'))
const file = join(work, `random-${MB}MB`)
await new Promise((resolve, reject) => {
  const out = createWriteStream(file)
  out.on('error', reject).on('finish', resolve)
  let left = MB * 1e6
  const write = () => {
    while (left > 0) {
      const n = Math.min(left, 1 << 20)
      left -= n
      if (!out.write(randomBytes(n))) return out.once('drain', write)
    }
    out.end()
  }
  write()
})
const sha = createHash('sha256').update(readFileSync(file)).digest('hex')

const sb = sandboxUp({ first: FIRST, count: 1 })
const h = sb.hosts[0]
const sshOpts = [
  '-i',
  sb.privateKeyPath,
  '-o',
  `UserKnownHostsFile=${sb.knownHostsPath}`,
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  'BatchMode=yes',
  '-o',
  'IdentitiesOnly=yes',
  '-o',
  'LogLevel=ERROR'
]
const dest = name => `/srv/app/bench-${name}`
const remote = name => `${sb.user}@${h.address}:${dest(name)}`

function sh(cmd, argv, input) {
  const r = spawnSync(cmd, argv, { input, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r
}

function checkOnHost(name) {
  const got = createHash('sha256')
    .update(readFileSync(sb.hostPath(h, dest(name))))
    .digest('hex')
  if (got !== sha) throw new Error(`${name}: sha256 on the host is ${got}, expected ${sha}`)
  rmSync(sb.hostPath(h, dest(name)))
}

async function timed(fn) {
  const t = performance.now()
  await fn()
  return (performance.now() - t) / 1000
}

const options = {
  target: { host: h.address, port: h.sshPort, user: sb.user, label: `${sb.user}@${h.address}:${h.sshPort}` },
  credentials: { privateKey: readFileSync(sb.privateKeyPath, 'utf8') },
  hostKeys: { knownHosts: readFileSync(sb.knownHostsPath, 'utf8'), fingerprints: [], insecureSkip: false },
  sudo: false,
  connectTimeoutMs: 20_000
}

const results = new Map() // name -> seconds[]
const add = (name, s) => results.set(name, [...(results.get(name) ?? []), s])

try {
  const host = await SshHost.connect(options)
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // The action's path: one connection per host, reused (round 1 is its first transfer).
      add('SshHost.upload (open connection)', await timed(() => host.upload(file, dest('sshhost'))))
      checkOnHost('sshhost')
      // The same with the connection set up in the timing, as scp pays for it.
      add(
        'SshHost connect + upload',
        await timed(async () => {
          const fresh = await SshHost.connect(options)
          await fresh.upload(file, dest('fresh'))
          await fresh.close()
        })
      )
      checkOnHost('fresh')
      add(
        'scp (SFTP protocol)',
        await timed(() => sh('scp', ['-q', ...sshOpts, '-P', String(h.sshPort), file, remote('scp')]))
      )
      checkOnHost('scp')
      // ssh2 negotiates aes128-gcm (AES-NI); OpenSSH prefers chacha20-poly1305: the same cipher too.
      add(
        'scp -c aes128-gcm@openssh.com',
        await timed(() =>
          sh('scp', [
            '-q',
            '-c',
            'aes128-gcm@openssh.com',
            ...sshOpts,
            '-P',
            String(h.sshPort),
            file,
            remote('scpgcm')
          ])
        )
      )
      checkOnHost('scpgcm')
      add(
        'scp -O (legacy protocol)',
        await timed(() => sh('scp', ['-q', '-O', ...sshOpts, '-P', String(h.sshPort), file, remote('scpO')]))
      )
      checkOnHost('scpO')
      add(
        'sftp -b (put)',
        await timed(() =>
          sh(
            'sftp',
            ['-q', '-b', '-', ...sshOpts, '-P', String(h.sshPort), `${sb.user}@${h.address}`],
            `put ${file} ${dest('sftp')}\n`
          )
        )
      )
      checkOnHost('sftp')
    }

    // Round trips.
    const rt = []
    for (let i = 0; i < 200; i++) {
      const t = performance.now()
      await host.run(['true'])
      rt.push(performance.now() - t)
    }
    const fresh = []
    for (let i = 0; i < 10; i++) {
      const t = performance.now()
      sh('ssh', [...sshOpts, '-p', String(h.sshPort), `${sb.user}@${h.address}`, 'true'])
      fresh.push(performance.now() - t)
    }

    const ssh = spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr.trim()
    console.log(
      `\nUpload of ${MB} MB (random bytes) to ${h.address}:${h.sshPort} (sandbox sshd on loopback), ${ROUNDS} rounds`
    )
    console.log(`node ${process.version}, ${ssh}; every file checked by sha256 on the host\n`)
    const head = [
      'method',
      ...Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}`),
      'best',
      'best MB/s',
      'median MB/s'
    ]
    const rows = [...results].map(([name, xs]) => {
      const best = Math.min(...xs)
      return [
        name,
        ...xs.map(s => `${s.toFixed(2)} s`),
        `${best.toFixed(2)} s`,
        (MB / best).toFixed(0),
        (MB / median(xs)).toFixed(0)
      ]
    })
    const widths = head.map((_, i) => Math.max(...[head, ...rows].map(r => String(r[i]).length)))
    const line = r =>
      '| ' +
      r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' | ') +
      ' |'
    console.log(line(head))
    console.log(
      '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|'
    )
    for (const r of rows) console.log(line(r))
    console.log(`\nRound trip of a trivial command:`)
    console.log(
      `| Host.run(['true']) on the long-lived shell (200 runs) | median ${median(rt).toFixed(2)} ms | p95 ${quantile(rt, 0.95).toFixed(2)} ms |`
    )
    console.log(
      `| fresh \`ssh host true\` (10 runs)                       | median ${median(fresh).toFixed(1)} ms | p95 ${quantile(fresh, 0.95).toFixed(1)} ms |`
    )
  } finally {
    await host.close()
  }
} finally {
  sb.down()
  rmSync(work, { recursive: true, force: true })
}
