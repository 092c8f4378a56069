/**
 * mode plan and mode status, the pure parts: what the settings refuse, the command line's words
 * and help, a plan's verdict from how its run ended, the rollback target status shows, and the
 * reports (summary, outputs, terminal) built from a result. The hosts themselves are in
 * plan-status.test.ts (sandbox).
 */
import { describe, expect, it } from '@jest/globals'
import { parseArgs } from '../src/cli-args.js'
import { helpText } from '../src/cli-help.js'
import type { HostReport } from '../src/engine/types.js'
import type { ModeResult } from '../src/modes/index.js'
import { verdictOf } from '../src/modes/plan.js'
import { rollbackTargetOf } from '../src/modes/status.js'
import { emptyState, markLive, withRelease, type StoreState } from '../src/releases/state.js'
import { modeOutputsOf, modeSummaryMarkdown, modeTextReport } from '../src/report/modes.js'
import { SettingsError } from '../src/settings.js'
import { settingsWith } from './helpers/inputs.js'

function errorOf(over: Record<string, string>): string {
  try {
    settingsWith(over)
  } catch (e) {
    expect(e).toBeInstanceOf(SettingsError)
    return (e as Error).message
  }
  throw new Error('expected a SettingsError')
}

describe('settings', () => {
  it('plan needs the binary a deploy would send; status takes none', () => {
    expect(settingsWith({ mode: 'plan' }).mode).toBe('plan')
    expect(settingsWith({ mode: 'status', binary: '' }).mode).toBe('status')
    expect(errorOf({ mode: 'plan', binary: '' })).toMatch(/^Input 'binary': is required when mode is plan/)
    expect(errorOf({ mode: 'status' })).toMatch(/^Input 'binary': is set but mode is status/)
    expect(errorOf({ mode: 'status', binary: '', version: '1.2.3' })).toMatch(
      /^Input 'version': is set but mode is status/
    )
    expect(errorOf({ mode: 'plan', 'rollback-to': '1.2.3' })).toMatch(
      /^Input 'rollback-to': is set but mode is not rollback/
    )
    expect(errorOf({ mode: 'preview' })).toMatch(/is not one of deploy, rollback, plan, status/)
  })

  it('strategy upstream refuses plan and status, naming the mode', () => {
    const upstream = {
      strategy: 'upstream',
      'upstream-host': 'lb1',
      'upstream-file': '/etc/nginx/conf.d/app.conf',
      'upstream-name': 'app',
      'restart-command': 'systemctl restart app',
      'binary-path': '/srv/app/bin/app',
      'health-url': 'http://{host}:8080/health'
    }
    expect(settingsWith({ ...upstream, mode: 'deploy' }).strategy).toBe('upstream')
    expect(errorOf({ ...upstream, mode: 'plan' })).toMatch(
      /^Input 'mode': plan is not available with strategy upstream/
    )
    expect(errorOf({ ...upstream, mode: 'status', binary: '' })).toMatch(
      /^Input 'mode': status is not available/
    )
  })
})

describe('the command line', () => {
  it('plan and status are commands, and set the mode', () => {
    const plan = parseArgs(['plan', '--binary', 'build/nginx', '--version', '1.2.3'])
    expect(plan.command).toBe('plan')
    expect(plan.values.get('mode')).toBe('plan')
    expect(plan.values.get('version')).toBe('1.2.3')
    expect(parseArgs(['status', '--hosts', 'web1']).values.get('mode')).toBe('status')
    expect(parseArgs(['status', '--help'])).toMatchObject({ command: 'help', helpFor: 'status' })
    expect(parseArgs(['help', 'plan'])).toMatchObject({ command: 'help', helpFor: 'plan' })
    expect(() => parseArgs(['plan', '--mode', 'deploy'])).toThrow(/contradicts the command plan/)
    expect(() => parseArgs(['preview'])).toThrow(
      /use deploy, rollback, plan, status, commit, abort or --help/
    )
  })

  it("each command's help shows the flags that apply to it", () => {
    const plan = helpText('plan')
    expect(plan).toMatch(/^ {2}--binary VALUE/m)
    expect(plan).toMatch(/^ {2}--allow-downgrade/m)
    expect(plan).not.toMatch(/^ {2}--rollback-to/m)
    expect(plan).toMatch(/would be refused on any host/)
    const status = helpText('status')
    for (const flag of ['hosts', 'pid-file', 'release-dir', 'jump-host'])
      expect(status).toMatch(new RegExp(`^ {2}--${flag}(?![\\w-])`, 'm'))
    for (const flag of ['binary', 'version', 'health-url', 'canary', 'rollback-to'])
      expect(status).not.toMatch(new RegExp(`^ {2}--${flag}(?![\\w-])`, 'm'))
    const all = helpText()
    expect(all).toContain('zerodown-action plan --hosts HOSTS --binary FILE')
    expect(all).toContain('zerodown-action status --hosts')
  })
})

const T = '2030-01-02T03:04:05.000Z'
function report(over: Partial<HostReport>): HostReport {
  return { host: 'web1', result: 'untouched', startedAt: T, steps: [], drain: [], health: [], ...over }
}

describe("a plan's verdict", () => {
  it('from how the run ended: passed, unchanged, refused, or its clean-up failed', () => {
    expect(verdictOf(report({ result: 'untouched', plan: { verdict: 'upgrade', change: '1 → 2' } }))).toEqual(
      {
        verdict: 'upgrade',
        change: '1 → 2'
      }
    )
    expect(verdictOf(report({ result: 'unchanged' })).verdict).toBe('unchanged')
    expect(
      verdictOf(
        report({
          result: 'failed',
          failedStep: 'verify',
          error: 'the new binary fails its config test',
          plan: { verdict: 'upgrade', downgrade: 'refused' }
        })
      )
    ).toEqual({
      verdict: 'refused',
      downgrade: 'refused',
      step: 'verify',
      message: 'the new binary fails its config test'
    })
    expect(verdictOf(report({ result: 'failed', error: 'x', rollbackError: 'rm failed' })).message).toMatch(
      /could not remove what it staged: rm failed/
    )
  })
})

describe('the rollback target status shows', () => {
  const a = 'a'.repeat(64)
  const b = 'b'.repeat(64)
  const c = 'c'.repeat(64)
  const rel = (sha256: string, version: string) => ({
    sha256,
    version,
    deployedAt: T,
    origin: 'deploy' as const
  })
  let state: StoreState = withRelease(withRelease(emptyState('nginx'), rel(a, '1.0.0')), rel(b, '2.0.0'))
  state = markLive(markLive(state, a, T), b, T)

  it('the release under the live one', () => {
    expect(rollbackTargetOf(state, { runningSha256: b, version: '2.0.0' })?.sha256).toBe(a)
  })
  it('a build the store never saw runs: a rollback records it, then goes to the release that was live', () => {
    expect(rollbackTargetOf(state, { runningSha256: c, version: '3.0.0' })?.sha256).toBe(b)
  })
  it('an empty store: none', () => {
    expect(rollbackTargetOf(emptyState('nginx'), { runningSha256: c, version: null })).toBeNull()
  })
})

describe('reports', () => {
  const hostile = 'web2 <img src=x> [link](http://evil) ::error::x'
  const plan: ModeResult = {
    mode: 'plan',
    ok: false,
    result: 'refused',
    supervisor: 'nginx',
    durationMs: 1200,
    counts: { upgrade: 1, refused: 1 },
    hosts: [
      report({
        version: '2.0.0',
        previousVersion: '1.0.0',
        sha256: 'b'.repeat(64),
        previousSha256: 'a'.repeat(64),
        oldPid: 100,
        plan: { verdict: 'upgrade', change: '1.0.0 → 2.0.0 (higher by semver)' }
      }),
      report({
        host: hostile,
        result: 'failed',
        previousVersion: '3.0.0',
        oldPid: 200,
        plan: {
          verdict: 'refused',
          step: 'preflight',
          downgrade: 'refused',
          message: 'a downgrade is refused <b>'
        }
      })
    ]
  }

  it('plan: a row per host with what a deploy would do; outputs; terminal lines', () => {
    const md = modeSummaryMarkdown(plan)
    expect(md).toContain('## zerodown plan: ❌ a deploy would be refused on 1 of 2 hosts')
    expect(md).toContain('| web1 | ✅ upgrade | 1.0.0 → 2.0.0 (higher by semver) |')
    expect(md).toMatch(/❌ be refused at preflight/)
    expect(md).toContain('Nothing was changed on any host.')
    // Remote text stays text: no HTML element, no link.
    expect(md).not.toContain('<img')
    expect(md).not.toContain('refused <b>')
    expect(md).not.toMatch(/\]\(http:\/\/evil\)/)
    const out = modeOutputsOf(plan)
    expect(out.result).toBe('refused')
    expect(out.version).toBe('2.0.0')
    expect(out['previous-version']).toBe('1.0.0,3.0.0')
    expect(out['old-pid']).toBe('100,200')
    expect(JSON.parse(out.report!)).toMatchObject({ mode: 'plan', counts: { upgrade: 1, refused: 1 } })
    const text = modeTextReport(plan)
    expect(text).toContain('web1: would upgrade 1.0.0 → 2.0.0 (higher by semver)')
    expect(text).toContain('would be refused at preflight')
  })

  it('status: what runs, the releases, the rollback target, the lock', () => {
    const status: ModeResult = {
      mode: 'status',
      ok: true,
      result: 'listed',
      supervisor: 'nginx',
      durationMs: 300,
      counts: { listed: 1 },
      hosts: [
        report({
          result: 'unchanged',
          oldPid: 100,
          status: {
            pid: 100,
            livePath: '/usr/sbin/nginx',
            runningSha256: 'b'.repeat(64),
            liveSha256: 'c'.repeat(64),
            version: '2.0.0',
            store: '/var/lib/zerodown/nginx',
            rollbackTarget: { version: '1.0.0', sha256: 'a'.repeat(64) },
            lock: 'acme/web run 7'
          },
          releases: [
            { version: '1.0.0', sha256: 'a'.repeat(64), deployedAt: T, live: false, rollbackTarget: true },
            { version: '2.0.0', sha256: 'b'.repeat(64), deployedAt: T, live: true }
          ]
        })
      ]
    }
    const md = modeSummaryMarkdown(status)
    expect(md).toContain('## zerodown status: ✅ 1 host read')
    expect(md).toContain(
      `| web1 | 2.0.0 | 100 | /usr/sbin/nginx | ${'b'.repeat(12)} (file on disk: ${'c'.repeat(12)}) | 2 | 1.0.0 (${'a'.repeat(12)}) | acme/web run 7 |`
    )
    expect(md).toMatch(/\| rollback target \| 1\.0\.0 \|/)
    expect(md).toMatch(/\| \*\*live\*\* \| 2\.0\.0 \|/)
    expect(modeOutputsOf(status)).toMatchObject({ result: 'listed', version: '2.0.0', 'old-pid': '100' })
    const text = modeTextReport(status)
    expect(text).toMatch(/live {5}2\.0\.0/)
    expect(text).toMatch(/rollback 1\.0\.0/)
    expect(text).toContain('deploy lock held: acme/web run 7')
  })
})
