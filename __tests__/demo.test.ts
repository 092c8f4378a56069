/**
 * The README's first command, `npm run demo`, runs to the end: setup, a sandbox host on
 * 127.0.0.201 under light load, a hot upgrade with its timeline and no failed request, a broken
 * build rolled back by itself, and everything torn down afterwards.
 */
import { describe, expect, it } from '@jest/globals'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { ROOT } from './helpers/action.js'

const STEPS = ['connect', 'preflight', 'upload', 'verify', 'swap', 'usr2', 'winch', 'health', 'drain', 'quit']

function npmRunDemo(): Promise<{ code: number | null; out: string }> {
  return new Promise(resolve => {
    const child = spawn('npm', ['run', 'demo'], { cwd: ROOT, env: process.env })
    let out = ''
    child.stdout.on('data', d => (out += d))
    child.stderr.on('data', d => (out += d))
    const timer = setTimeout(() => child.kill('SIGTERM'), 170_000)
    child.on('close', code => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

/** Resolves true when something accepts a TCP connection there. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const s = net.connect({ host, port })
    s.setTimeout(2000)
    s.on('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
    s.on('timeout', () => {
      s.destroy()
      resolve(false)
    })
  })
}

/** The timeline rows of one run: step → [requests, failed]. */
function timeline(section: string): Map<string, [number, number]> {
  const rows = new Map<string, [number, number]>()
  for (const m of section.matchAll(/^ {2}\+\d+\.\d{3}s +\S+ {2}(\w+) +(\d+) +(\d+)/gm))
    rows.set(m[1]!, [Number(m[2]), Number(m[3])])
  return rows
}

describe('npm run demo', () => {
  it('upgrades under load with no failed request, rolls a broken build back, and tears down', async () => {
    const t0 = Date.now()
    const { code, out } = await npmRunDemo()
    process.stdout.write(`npm run demo took ${((Date.now() - t0) / 1000).toFixed(1)}s\n`)
    expect(out).toContain('demo: bringing up a sandbox host on 127.0.0.201')
    expect(code).toBe(0)

    const one = out.slice(
      out.indexOf('Run 1, a new build:'),
      out.indexOf('$ node dist/index.js', out.indexOf('Run 1'))
    )
    const two = out.slice(out.indexOf('Run 2, a broken build:'))
    expect(one).toMatch(/^Run 1, a new build: upgraded in /)
    const rows1 = timeline(one)
    expect([...rows1.keys()]).toEqual(STEPS)
    expect([...rows1.values()].every(([, failed]) => failed === 0)).toBe(true)
    // The slow download holds an old worker: the drain's curve falls from at least 1 to 0.
    expect(one).toMatch(/drain \(old workers\): [1-9]\d* at 0ms( → \d+ at \S+)* → 0 at \S+/)
    expect(one).toMatch(/health checks: 3 of 3 passed/)
    expect(one).toMatch(/load: [1-9]\d* requests \(\d+ while the action ran\), 0 failed/)

    expect(two).toMatch(/^Run 2, a broken build: rolled-back in /)
    const rows2 = timeline(two)
    expect([...rows2.keys()]).toEqual([
      'connect',
      'preflight',
      'upload',
      'verify',
      'swap',
      'usr2',
      'rollback'
    ])
    expect(two).toMatch(/^ {2}\+\S+ +\S+ {2}usr2 +\d+ +0 {2}✗ /m)
    expect(two).toMatch(/load: [1-9]\d* requests \(\d+ while the action ran\), 0 failed/)
    expect(out).toMatch(/demo: upgraded, then rolled-back .*failed requests: 0 and 0/)

    // Torn down: no sshd or nginx left on the demo address, no scratch folder left.
    expect(out).toContain('demo: tearing the sandbox down')
    expect(await listening('127.0.0.201', 2222)).toBe(false)
    expect(await listening('127.0.0.201', 8080)).toBe(false)
    const work = /--binary (\S+)\/nginx-build-2/.exec(out)?.[1]
    expect(work).toBeDefined()
    expect(existsSync(work!)).toBe(false)
  }, 180_000)
})
