/**
 * The health gate, run once the old server is isolated so that only the new binary answers: `checks` consecutive
 * passes of the URL and/or command, one every `intervalMs`, within `timeoutMs`. The new server's
 * processes must stay the same processes throughout: a crash loop fails the gate at once.
 */
import { redactUrls, remoteLine } from '../remote-text.js'
import { formatDuration } from '../duration.js'
import { StepError } from '../engine/step.js'
import { sleep } from '../engine/wait.js'
import type { Host } from '../host/host.js'

export interface HealthPlan {
  url?: string
  command?: string
  expect?: RegExp
  checks: number
  intervalMs: number
  timeoutMs: number
}

interface GateContext {
  /** Throws when the new server stopped serving (its process exited, its workers crash). */
  stillServing: () => Promise<void>
  note: (s: string) => void
  record: (ok: boolean, detail: string, atMs: number) => void
}

/** `{host}` in a health URL or command becomes the host's address. */
export function forHost(template: string, address: string): string {
  return template.replaceAll('{host}', address)
}

async function checkOnce(
  host: Host,
  plan: HealthPlan,
  remainingMs: number
): Promise<{ ok: boolean; detail: string; urlMs: number }> {
  const started = Date.now()
  const r = await checkBoth(host, plan, remainingMs)
  return { ...r, urlMs: plan.url === undefined ? 0 : Date.now() - started }
}

async function checkBoth(
  host: Host,
  plan: HealthPlan,
  remainingMs: number
): Promise<{ ok: boolean; detail: string }> {
  const timeoutMs = Math.max(500, Math.min(10_000, remainingMs))
  const details: string[] = []
  if (plan.url !== undefined) {
    const target = forHost(plan.url, host.address)
    // Credentials in health-url (http://user:pw@...) never reach a log line, the report or the summary.
    const url = redactUrls(target)
    try {
      const res = await host.http(target, timeoutMs)
      if (res.status < 200 || res.status > 299) return { ok: false, detail: `${url} answered ${res.status}` }
      if (plan.expect && !plan.expect.test(res.body))
        return {
          ok: false,
          detail: `${url} answered ${res.status} but the body does not match health-expect ${plan.expect}: ${JSON.stringify(res.body.slice(0, 120))}`
        }
      details.push(`${url} ${res.status}`)
    } catch (e) {
      return { ok: false, detail: redactUrls((e as Error).message) }
    }
  }
  if (plan.command !== undefined) {
    const command = forHost(plan.command, host.address)
    const r = await host
      .run(['sh', '-c', command], { timeoutMs })
      .catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }))
    const out = remoteLine(r.stdout + r.stderr, 200)
    if (r.code !== 0) return { ok: false, detail: `health-command exited ${r.code}${out ? `: ${out}` : ''}` }
    if (plan.expect && plan.url === undefined && !plan.expect.test(r.stdout))
      return {
        ok: false,
        detail: `health-command output does not match health-expect ${plan.expect}: ${JSON.stringify(out)}`
      }
    details.push('health-command exit 0')
  }
  return { ok: true, detail: details.join(', ') || 'new master and workers up' }
}

/** The first check has no GET to measure: the next one's connection opens at most this long before it. */
const FIRST_LEAD_MS = 1000

/**
 * Opens each check's connection ahead of it by about as long as the slowest GET so far took (its
 * channel's round trip and its request's): the check's GET then pays for its request alone.
 * Opened that late, a connection waits about one round trip, far below any server's idle
 * timeout; one the server closed meanwhile is opened again by the GET.
 */
class NextCheckWarmer {
  private leadMs: number | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly host: Host,
    private readonly plan: HealthPlan
  ) {}

  /** The next check starts at `nextAt`. */
  schedule(nextAt: number): void {
    const { host, plan } = this
    if (plan.url === undefined || !host.warmHttp) return
    const url = forHost(plan.url, host.address)
    const lead = Math.min(this.leadMs ?? FIRST_LEAD_MS, plan.intervalMs)
    this.timer = setTimeout(() => host.warmHttp!(url), Math.max(0, nextAt - lead - Date.now()))
  }

  /** A GET took `ms` (the first opened its own connection; a warmed one is quicker). */
  took(ms: number): void {
    this.leadMs = Math.max(this.leadMs ?? 0, ms)
  }

  stop(): void {
    clearTimeout(this.timer)
  }
}

export async function runHealthGate(host: Host, plan: HealthPlan, ctx: GateContext): Promise<void> {
  if (plan.url === undefined && plan.command === undefined)
    ctx.note(
      'no health-url or health-command: the gate only checks that the new master and its workers stay up'
    )
  const warmer = new NextCheckWarmer(host, plan)
  try {
    await gate(host, plan, ctx, warmer)
  } finally {
    warmer.stop()
  }
}

async function gate(host: Host, plan: HealthPlan, ctx: GateContext, warmer: NextCheckWarmer): Promise<void> {
  const started = Date.now()
  let passes = 0
  let lastFailure = ''
  for (let n = 1; ; n++) {
    // Checks start every intervalMs (the time a check takes is not added to the interval).
    const checkStarted = Date.now()
    const elapsed = checkStarted - started
    // The process check (over the shell) and the health check (its own channel) run side by side.
    const checked = Promise.all([ctx.stillServing(), checkOnce(host, plan, plan.timeoutMs - elapsed)])
    // Not after what would be the last pass: that connection would never be used.
    if (passes + 1 < plan.checks) warmer.schedule(checkStarted + plan.intervalMs)
    const [, { ok, detail, urlMs }] = await checked
    warmer.took(urlMs)
    ctx.record(ok, detail, Date.now() - started)
    if (ok) {
      passes++
      ctx.note(`check ${n}: pass ${passes}/${plan.checks} (${detail})`)
      if (passes >= plan.checks) return
    } else {
      // A failure that repeats is logged once, then every 10th time, to keep the log readable.
      if (detail !== lastFailure || n % 10 === 0) ctx.note(`check ${n}: FAIL (${detail})`)
      passes = 0
      lastFailure = detail
    }
    if (checkStarted - started + plan.intervalMs > plan.timeoutMs)
      throw new StepError(
        'health',
        `the new binary did not pass ${plan.checks} health checks in a row within health-timeout ${formatDuration(plan.timeoutMs)}; last failure: ${lastFailure || 'none'}`
      )
    await sleep(Math.max(0, checkStarted + plan.intervalMs - Date.now()))
  }
}
