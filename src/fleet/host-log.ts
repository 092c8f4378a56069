/**
 * Logs of a rollout: GitHub groups cannot nest or interleave. Each host logs into its own HostLog;
 * a host running alone streams its lines live, one group per step, hosts running in parallel
 * hold theirs back and print them as one group per host when its phase ends. All output goes
 * through one queue (Printer), so groups never mix.
 */
import type { Logger, LogWhere } from '../engine/types.js'

export type Level = 'info' | 'warn' | 'error'

/** All output of a rollout goes through this queue, so that host groups never nest or interleave. */
export class Printer {
  private tail: Promise<void> = Promise.resolve()

  constructor(readonly log: Logger) {}

  /** Runs fn once everything queued before it was printed. */
  enqueue(fn: () => Promise<unknown> | void): Promise<void> {
    const next = this.tail.then(async () => {
      await fn()
    })
    this.tail = next.catch(() => undefined)
    return this.tail
  }

  line(level: Level, message: string, where?: LogWhere): void {
    void this.enqueue(() => (level === 'info' ? this.log.info(message) : this.log[level](message, where)))
  }

  idle(): Promise<void> {
    return this.tail
  }
}

/**
 * One host's log. Every line carries the host's name. Lines are held until the host's output is
 * attached, then go straight through. A host running alone (live) keeps the machine's per-step
 * groups, one collapsible group per step; a host whose lines were held prints them inside one
 * group of its own, where the steps become plain lines (groups cannot nest).
 */
export class HostLog implements Logger {
  private held: { level: Level; message: string; where?: LogWhere }[] = []
  private sink: Logger | null = null
  private live = false
  /** The latest line, for the heartbeat. */
  last = ''

  constructor(readonly name: string) {}

  info(message: string): void {
    this.emit('info', message)
  }
  warn(message: string, where?: LogWhere): void {
    this.emit('warn', message, where)
  }
  error(message: string, where?: LogWhere): void {
    this.emit('error', message, where)
  }
  group<T>(title: string, fn: () => Promise<T>): Promise<T> {
    return this.sink && this.live ? this.sink.group(title, fn) : fn()
  }

  private emit(level: Level, text: string, where?: LogWhere): void {
    const message = text.includes(this.name) ? text : `${this.name}: ${text}`
    const at = { host: this.name, ...where }
    this.last = message.replace(this.name, '').replace(/^[\s:]+/, '')
    if (!this.sink) this.held.push({ level, message, where: at })
    else if (level === 'info') this.sink.info(message)
    else this.sink[level](message, at)
  }

  /** Prints the held lines to sink, and every new line until detach; live keeps step groups. */
  attach(sink: Logger, live = false): void {
    this.sink = sink
    this.live = live
    const held = this.held
    this.held = []
    for (const l of held) {
      if (l.level === 'info') sink.info(l.message)
      else sink[l.level](l.message, l.where)
    }
  }

  /** Lines still held (a host connected ahead of a batch that never started, say). */
  get pending(): boolean {
    return this.held.length > 0
  }

  detach(): void {
    this.sink = null
    this.live = false
  }
}
