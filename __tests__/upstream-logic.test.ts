import { describe, expect, it } from '@jest/globals'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import fc from 'fast-check'
import { commandLine } from '../src/host/quote.js'
import {
  parsePercent,
  rateOf,
  tallyLines,
  verdict,
  formatTally
} from '../src/strategies/upstream/error-rate.js'
import * as cmd from '../src/strategies/upstream/lb-commands.js'
import { parseManagedFile } from '../src/strategies/upstream/managed-file.js'
import { LOG_FORMAT_VALUE, logProblem, parseDump } from '../src/strategies/upstream/nginx-dump.js'
import { checkPlan, serverAddress } from '../src/strategies/upstream/plan-check.js'
import { remoteText } from '../src/strategies/upstream/remote-text.js'
import { weightsChart, weightsLines } from '../src/strategies/upstream/weights-summary.js'
import type { HostReport } from '../src/engine/types.js'

const BLOCK = `upstream app {
  server web1:80 weight=4;
  server web2:80 weight=4;
  server web3:80;
  server web4:80 backup;
}
`
const file = parseManagedFile(BLOCK, 'app')
const labels = ['web1', 'web2', 'web3']
const addresses = labels.map(h => serverAddress('{host}:80', h))

describe('the plan against the block', () => {
  it('accepts a canary and one host at a time', () => {
    expect(
      checkPlan({
        file,
        addresses,
        batches: [[0], [1], [2]],
        canaryWeight: 1,
        canary: true,
        hostLabels: labels
      })
    ).toBeNull()
  })
  it('refuses a batch that takes out every serving server (a backup does not count)', () => {
    expect(
      checkPlan({
        file,
        addresses,
        batches: [[0], [1, 2]],
        canaryWeight: 1,
        canary: true,
        hostLabels: labels
      })
    ).toBeNull()
    const p = checkPlan({
      file,
      addresses,
      batches: [[0, 1, 2]],
      canaryWeight: 1,
      canary: false,
      hostLabels: labels
    })
    expect(p?.input).toBe('max-parallel')
    expect(p?.problem).toMatch(/web1, web2, web3 would be out at the same time/)
  })
  it('refuses a host whose server the block does not list, naming what it lists', () => {
    const p = checkPlan({
      file,
      addresses: ['web1:8080'],
      batches: [[0]],
      canaryWeight: 1,
      canary: false,
      hostLabels: ['web1']
    })
    expect(p?.input).toBe('upstream-server')
    expect(p?.problem).toContain(
      'web1:8080, which upstream app does not list (it lists: web1:80, web2:80, web3:80, web4:80)'
    )
  })
  it('refuses two hosts on one server line, a lone serving server, and a canary heavier than its server', () => {
    expect(
      checkPlan({
        file,
        addresses: ['web1:80', 'web1:80'],
        batches: [[0], [1]],
        canaryWeight: 1,
        canary: false,
        hostLabels: ['a', 'b']
      })?.problem
    ).toContain('both map to server web1:80')
    const lone = parseManagedFile('upstream app { server a:80; server b:80 down; }', 'app')
    expect(
      checkPlan({
        file: lone,
        addresses: ['a:80'],
        batches: [[0]],
        canaryWeight: 1,
        canary: false,
        hostLabels: ['a']
      })?.problem
    ).toContain('has one server that serves')
    const heavy = checkPlan({
      file,
      addresses,
      batches: [[2], [0], [1]],
      canaryWeight: 2,
      canary: true,
      hostLabels: labels
    })
    expect(heavy?.input).toBe('canary-weight')
    expect(heavy?.problem).toContain("2 is more than server web3:80's own weight 1")
  })
  it('writes IPv6 hosts in brackets', () => {
    expect(serverAddress('{host}:8080', '2001:db8::1')).toBe('[2001:db8::1]:8080')
  })
})

describe('the canary error rate from the access log', () => {
  const line = (addr: string, st: string, status = '200') => `1733100000.123\t${status}\t${addr}\t${st}`
  it('counts tries at the backend: 5xx and tries nginx moved on from fail; an internal redirect is no failure', () => {
    const log = [
      line('10.0.0.1:80', '200'),
      line('10.0.0.1:80', '500', '500'),
      line('10.0.0.2:80', '200'),
      line('10.0.0.1:80, 10.0.0.2:80', '502, 200'),
      line('10.0.0.2:80, 10.0.0.1:80', '502, 200'),
      line('10.0.0.1:80 : 10.0.0.3:80', '404 : 200'),
      line('-', '-', '503'),
      'garbage line'
    ].join('\n')
    const t = tallyLines(log, '10.0.0.1:80')
    expect(t).toEqual({ tries: 5, failed: 2, movedOn: 1, foreign: 1 })
    expect(rateOf(t)).toBeCloseTo(0.4)
    expect(formatTally(t)).toBe('2 of 5 tries failed (40.0%), 1 moved on to another server')
  })
  it('fails early only when the failures would exceed the limit over a minimum of tries', () => {
    expect(verdict({ tries: 3, failed: 1, movedOn: 0, foreign: 0 }, 0.1, false)).toBe('watching')
    expect(verdict({ tries: 3, failed: 3, movedOn: 0, foreign: 0 }, 0.1, false)).toBe('fail')
    expect(verdict({ tries: 3, failed: 1, movedOn: 0, foreign: 0 }, 0.1, true)).toBe('fail')
    expect(verdict({ tries: 100, failed: 1, movedOn: 0, foreign: 0 }, 0.01, true)).toBe('pass')
    expect(verdict({ tries: 0, failed: 0, movedOn: 0, foreign: 0 }, 0.01, true)).toBe('pass')
  })
  it('never fails a canary whose rate stays within the limit (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 100 }),
        (tries, f, pct) => {
          const failed = Math.min(f, tries)
          const t = { tries, failed, movedOn: 0, foreign: 0 }
          const within = failed <= (pct / 100) * tries
          if (within) {
            expect(verdict(t, pct / 100, false)).toBe('watching')
            expect(verdict(t, pct / 100, true)).toBe('pass')
          } else expect(verdict(t, pct / 100, true)).toBe('fail')
        }
      )
    )
  })
  it('reads percentages', () => {
    expect(parsePercent('1%')).toBe(0.01)
    expect(parsePercent(' 0.5 % ')).toBe(0.005)
    expect(parsePercent('0%')).toBe(0)
    expect(parsePercent('1')).toBeNull()
    expect(parsePercent('101%')).toBeNull()
  })
})

describe('nginx -T', () => {
  const dump = `# configuration file /etc/nginx/nginx.conf:
http {
    log_format zerodown '$msec\\t$status\\t$upstream_addr\\t$upstream_status';
    include /etc/nginx/conf.d/*.conf;
    server { access_log /var/log/nginx/zd.log zerodown; location / { proxy_pass http://app; } }
}

# configuration file /etc/nginx/conf.d/upstream.conf:
upstream app { server a:80; }
`
  it('lists the files and finds the access log in the zerodown format', () => {
    const f = parseDump(dump)
    expect(f.files).toEqual(['/etc/nginx/nginx.conf', '/etc/nginx/conf.d/upstream.conf'])
    expect(f.accessLogs).toEqual(['/var/log/nginx/zd.log'])
    expect(f.logFormat).toBe(LOG_FORMAT_VALUE)
    expect(logProblem(f)).toBeNull()
  })
  it('says what is missing', () => {
    expect(logProblem(parseDump('http { }'))).toContain('has no log_format zerodown')
    expect(logProblem(parseDump(`log_format zerodown '$status';`))).toContain(
      'is not the one the action reads'
    )
    expect(
      logProblem(parseDump(`log_format zerodown '$msec\\t$status\\t$upstream_addr\\t$upstream_status';`))
    ).toContain('no access_log uses')
  })
})

describe('remote commands (argv data)', () => {
  it('test and reload with the running master, never nginx from the PATH', () => {
    expect(cmd.configTest('/usr/sbin/nginx', ['-c', '/etc/nginx/nginx.conf'])).toEqual([
      '/usr/sbin/nginx',
      '-t',
      '-c',
      '/etc/nginx/nginx.conf'
    ])
    expect(cmd.reload(42)).toEqual(['kill', '-s', 'HUP', '--', '42'])
    expect(cmd.establishedTo('10.0.0.1', 8080)).toEqual([
      'ss',
      '-Htn',
      'state',
      'established',
      'dst',
      '10.0.0.1:8080'
    ])
    expect(cmd.establishedTo('2001:db8::1', 80)).toContain('[2001:db8::1]:80')
  })
  it('splits server addresses', () => {
    expect(cmd.splitAddress('web1')).toEqual({ host: 'web1', port: 80 })
    expect(cmd.splitAddress('10.0.0.1:8080')).toEqual({ host: '10.0.0.1', port: 8080 })
    expect(cmd.splitAddress('[::1]:81')).toEqual({ host: '::1', port: 81 })
    expect(cmd.splitAddress('unix:/run/app.sock')).toBeNull()
    expect(cmd.parseResolved('10.0.0.1 STREAM web1\n10.0.0.1 DGRAM\n::1 STREAM web1\n')).toEqual([
      '10.0.0.1',
      '::1'
    ])
  })

  describe('the atomic write, run by a local sh', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zd-write-'))
    const f = path.join(dir, 'upstream.conf')
    const sha = (s: string) => execFileSync('sha256sum', { input: s }).toString().split(' ')[0]!
    const sh = (argv: string[]) => {
      try {
        return { code: 0, out: execFileSync('sh', ['-c', commandLine(argv)]).toString() }
      } catch (e) {
        const err = e as { status: number; stdout: Buffer }
        return { code: err.status, out: err.stdout.toString() }
      }
    }
    it('replaces the file when it is what was read, keeps its mode, leaves no temp file', () => {
      fs.writeFileSync(f, 'old\n', { mode: 0o640 })
      fs.chmodSync(f, 0o640)
      const text = "new 'text' with $(danger) and ünïcode\n"
      const r = sh(cmd.writeManagedFile(f, sha('old\n'), text))
      expect(r).toEqual({ code: 0, out: `written ${sha(text)}\n` })
      expect(fs.readFileSync(f, 'utf8')).toBe(text)
      expect(fs.statSync(f).mode & 0o777).toBe(0o640)
      expect(fs.readdirSync(dir)).toEqual(['upstream.conf'])
    })
    it('refuses a file changed since it was read, and a symlink', () => {
      fs.writeFileSync(f, 'theirs\n')
      const r = sh(cmd.writeManagedFile(f, sha('old\n'), 'mine\n'))
      expect(r).toEqual({ code: 4, out: `changed ${sha('theirs\n')}\n` })
      expect(fs.readFileSync(f, 'utf8')).toBe('theirs\n')
      const link = path.join(dir, 'link.conf')
      fs.symlinkSync(f, link)
      expect(sh(cmd.writeManagedFile(link, sha('theirs\n'), 'mine\n'))).toEqual({ code: 3, out: 'symlink\n' })
      expect(fs.lstatSync(link).isSymbolicLink()).toBe(true)
      expect(sh(cmd.readManagedFile(link)).code).toBe(3)
      expect(sh(cmd.readManagedFile(f)).out).toBe(`sha ${sha('theirs\n')}\ntheirs\n`)
    })
    it('reads a log from a byte offset, from the start after a rotation', () => {
      const log = path.join(dir, 'access.log')
      fs.writeFileSync(log, 'a\nb\n')
      expect(sh(cmd.logSince(log, 2, 1000)).out).toBe('size 4\nb\n')
      fs.writeFileSync(log, 'c\n')
      expect(sh(cmd.logSince(log, 4, 1000)).out).toBe('size 2\nc\n')
    })
  })
})

describe('remote text', () => {
  it('makes control characters visible and disarms workflow commands', () => {
    expect(remoteText('a\u001b[31mred\r\n::set-output name=x::1')).toBe(
      'a\\x1b[31mred\n:\u200b:set-output name=x::1'
    )
    expect(remoteText('x'.repeat(50), 10)).toBe('xxxxxxxxx…')
  })
})

describe('the weights over time in the job summary', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()
  const host = (name: string, ws: [number, number | 'down', string][]) =>
    ({
      host: name,
      weights: ws.map(([s, weight, why]) => ({ at: at(s), weight, why }))
    }) as unknown as HostReport
  const hosts = [
    host('web1', [
      [0, 3, 'before the run'],
      [1, 'down', 'out for the upgrade'],
      [4, 1, 'canary'],
      [9, 3, 'full weight']
    ]),
    host('we"b2;', [
      [0, 3, 'before the run'],
      [10, 'down', 'out for the upgrade'],
      [12, 3, 'full weight']
    ])
  ]
  it('draws one line per host over the union of change times (down = 0)', () => {
    const chart = weightsChart(hosts)
    expect(chart).toContain(
      '  x-axis "seconds into the rollout" ["0.0", "1.0", "4.0", "9.0", "10.0", "12.0"]'
    )
    expect(chart).toContain('  line "web1" [3, 0, 1, 3, 3, 3]')
    expect(chart).toContain('  line "we b2" [3, 3, 3, 3, 0, 3]')
    expect(weightsChart([])).toEqual([])
  })
  it('says it in words', () => {
    expect(weightsLines(hosts)[0]).toEqual({
      host: 'web1',
      timeline:
        '+0.0s weight 3 (before the run) → +1.0s down (out for the upgrade) → +4.0s weight 1 (canary) → +9.0s weight 3 (full weight)'
    })
  })
})
